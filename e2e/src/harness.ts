/** Helpers shared by the e2e suites: root check, the tunnel probe, garbage senders, metric reads. */
import { isAbsolute, join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { ADDR, REPO_ROOT, run, sweep, connectHeaderValue, type Stack, type RunResult } from '@rvpn/tools';

export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('the e2e suites must run as root (network namespaces, TUN devices, nftables); run them in CI or with sudo');
  }
}

export interface ProbeResult {
  outcome: 'accepted' | 'refused';
  code?: string;
  message?: string;
  version?: string;
}

/** One tunnel handshake attempt from the shoot side through sni-proxy (tools/src/tunnel-probe.ts). */
export async function tunnelProbe(stack: Stack, opts: { cert: string; ca?: string; major?: number; minor?: number; header?: string; direct?: string }): Promise<ProbeResult> {
  const script = join(REPO_ROOT, 'tools', 'dist', 'tunnel-probe.js');
  // a name is one of the stack's certificate files; an absolute path another stack's (a two-shoot lab)
  const file = (f: string) => (isAbsolute(f) ? f : stack.file(f));
  const args = [process.execPath, script,
    ...(opts.direct ? ['--direct', opts.direct] : ['--proxy', `${ADDR.lbWan}:8132`, '--header', opts.header ?? `Reversed-VPN: ${connectHeaderValue(stack.shoot.namespace)}`]),
    '--ca', file(opts.ca ?? 'ca.crt'), '--cert', file(`${opts.cert}.crt`), '--key', file(`${opts.cert}.key`)];
  if (opts.major !== undefined) args.push('--major', String(opts.major));
  if (opts.minor !== undefined) args.push('--minor', String(opts.minor));
  const r = await run(args, { ns: stack.topo.ns.vsh, allowFail: true });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as ProbeResult;
  } catch {
    throw new Error(`tunnel-probe printed no result (exit ${r.code}): ${r.stdout}${r.stderr}`);
  }
}

/** Sends random bytes to host:port from inside a namespace, then waits for the close. */
export async function sendGarbage(ns: string, host: string, port: number, bytes = 4096): Promise<RunResult> {
  return run(['bash', '-c', `exec 3<>/dev/tcp/${host}/${port} || exit 9; head -c ${bytes} /dev/urandom >&3; timeout 6 cat <&3 >/dev/null; exit 0`], { ns, allowFail: true, timeoutMs: 15_000 });
}

/** Prometheus text parsing lives with the lab (tools); the suites import it from here. */
export { metric } from '@rvpn/tools';

/** A CONNECT to sni-proxy from the shoot side with arbitrary headers; returns the proxy's status. */
export async function rawConnect(stack: Stack, port: number, headers: string[], target = 'vpn-seed-server:1194'): Promise<number> {
  const lines = [`CONNECT ${target} HTTP/1.1`, `Host: ${target}`, ...headers, '', ''].join('\r\n');
  const r = await run(['bash', '-c', `exec 3<>/dev/tcp/${ADDR.lbWan}/${port} || exit 9; printf '%s' "$REQ" >&3; timeout 3 head -c 200 <&3`], {
    ns: stack.topo.ns.vsh, allowFail: true, env: { ...process.env, REQ: lines },
  });
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(r.stdout);
  return m ? Number(m[1]) : 0;
}

/** What labLifecycle needs of a lab (Stack or HaStack). */
interface Lab {
  start(): Promise<void>;
  down(): Promise<void>;
  keepWorkDir: boolean;
  readonly dir: string;
  readonly topo: { readonly prefix: string };
}

/**
 * The lifecycle of a lab spec, registered in the calling describe: before all, root is required, what
 * an earlier run left is swept and `make()` starts (handed to `set`); a failed test keeps the lab's
 * logs; after all, the lab goes down and no namespace of it is left.
 */
export function labLifecycle<L extends Lab>(make: () => L, set: (lab: L) => void): void {
  let lab: L | undefined;
  beforeAll(async () => {
    requireRoot();
    await sweep();
    lab = make();
    set(lab);
    await lab.start();
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail' && lab) lab.keepWorkDir = true;
  });
  afterAll(async () => {
    if (!lab) return;
    await lab.down();
    if (lab.keepWorkDir) console.log(`logs kept in ${lab.dir}`);
    expect((await run(['ip', 'netns', 'list'])).stdout).not.toContain(lab.topo.prefix);
  });
}
