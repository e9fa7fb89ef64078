/**
 * The lab on the images: every app as a container from localhost/reversed-vpn/<app> (`pnpm images`),
 * run as the Kubernetes manifests say, in the lab's network namespaces. The demo's checks (plain,
 * classic, HA), plus what only containers show: a certificate reload through the Secret volume's ..data
 * swap, the HA seed server as 65532 reading its key only through fsGroup, a read-only root filesystem
 * without podman's tmpfs, and that nothing of a run remains after down() or after a kill + `pnpm sweep`.
 * Missing images fail every test with the command that builds them; nothing is skipped.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ADDR, HaStack, LAB_STATE_DIR, REPO_ROOT, SHOOT_NAMESPACE, Stack, URLS, connectHeaderValue, labContainers, metric, missingImages, podman, run, runChecks, runHaChecks, sweep, waitFor,
  type LabMeta,
} from '@rvpn/tools';
import { caBundle, createCa, issueCertificate, seedServerDnsNames, shootIdentityUri } from '@rvpn/pki';
import { rawConnect, requireRoot } from './harness.js';

async function requireImages(): Promise<void> {
  requireRoot();
  const missing = await missingImages({ ha: true, direction: 'reversed' });
  if (missing.length > 0) throw new Error(`the container images are missing (${missing.join(', ')}): build them with \`pnpm images\``);
}

/**
 * A lab started once for a describe block. A start that fails (missing images above all) fails every
 * test of the block with its error: vitest would report the tests of a failed beforeAll as skipped.
 */
function sharedLab<T extends { down(): Promise<void>; keepWorkDir: boolean; dir: string }>(start: () => Promise<T>): () => T {
  let lab: T | undefined;
  let failure: unknown;
  beforeAll(async () => {
    try {
      lab = await start();
    } catch (err) {
      failure = err;
    }
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail' && lab) lab.keepWorkDir = true;
  });
  afterAll(async () => {
    await lab?.down();
    if (lab?.keepWorkDir) console.log(`logs kept in ${lab.dir}`);
  });
  return () => {
    if (failure !== undefined) throw failure;
    return lab!;
  };
}

/** Runs a node snippet inside an app's container (the image has node; `podman exec` keeps the container's user and capabilities). */
async function inContainer(name: string, script: string, user?: string): Promise<{ code: number; out: string }> {
  const r = await podman(['exec', ...(user ? ['--user', user] : []), name, 'node', '-e', script], { allowFail: true, timeoutMs: 30_000 });
  return { code: r.code, out: `${r.stdout}${r.stderr}`.trim() };
}

/** What a lab run leaves on the host, to compare before and after: containers, namespaces, mounts, files. */
async function traces(prefix: string, extra: { mergedDirs?: string[]; workDir?: string } = {}) {
  const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
  return {
    containers: (await labContainers(prefix)).map((c) => c.name),
    namespaces: (await run(['ip', 'netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith(`${prefix}-`)),
    mounts: mountinfo.split('\n').filter((l) => l.includes(`${prefix}-`) || (extra.mergedDirs ?? []).some((d) => l.includes(d))),
    workDir: extra.workDir && existsSync(extra.workDir) ? [extra.workDir] : [],
    meta: existsSync(`${LAB_STATE_DIR}/${prefix}.json`) ? [`${prefix}.json`] : [],
  };
}
const nothing = { containers: [], namespaces: [], mounts: [], workDir: [], meta: [] };

async function mergedDirs(prefix: string): Promise<string[]> {
  const ids = (await labContainers(prefix)).map((c) => c.id);
  if (ids.length === 0) return [];
  return (await podman(['inspect', '--format', '{{.GraphDriver.Data.MergedDir}}', ...ids])).stdout.split('\n').filter(Boolean);
}

describe('the lab on the images: reversed', () => {
  const lab = sharedLab(async () => {
    await requireImages();
    await sweep();
    const s = new Stack({ images: true, seedEnv: { PROXY_HOLD_TIMEOUT: '4s' } });
    await s.start();
    return s;
  });

  it('passes the demo checks: pod, service and node through the CONNECT proxy, nothing without the tunnel, the apiserver by SNI', async () => {
    const stack = lab();
    const results = await runChecks(stack);
    for (const r of results) expect(r, `${r.name}: ${r.detail}`).toMatchObject({ ok: true });
    const ping = await run(['ping', '-c', '3', '-i', '0.2', '-W', '2', ADDR.pod], { ns: stack.topo.ns.srv, allowFail: true });
    expect(ping.stdout).toMatch(/3 received/);
  });

  it('runs each app as its manifest says: NET_ADMIN only, no new privileges, a read-only root with no tmpfs on /tmp', async () => {
    const stack = lab();
    const p = stack.topo.prefix;
    for (const [app, capEff, uid] of [['vpn-seed-server', '0000000000001000', '0'], ['vpn-shoot', '0000000000001000', '0'], ['sni-proxy', '0000000000000000', '65532']] as const) {
      const status = await inContainer(`${p}-${app}`, "console.log(require('fs').readFileSync('/proc/1/status','utf8'))");
      expect(status.out, app).toMatch(new RegExp(`CapEff:\\s+${capEff}`));
      expect(status.out, app).toMatch(new RegExp(`Uid:\\s+${uid}\\s`));
      expect(status.out, app).toMatch(/NoNewPrivs:\s+1/);
      for (const path of ['/probe', '/tmp/probe', '/run/probe', '/var/tmp/probe']) {
        const w = await inContainer(`${p}-${app}`, `try { require('fs').writeFileSync('${path}', 'x'); console.log('written') } catch (e) { console.log(e.code) }`);
        expect(w.out, `${app} writes ${path}`).toBe('EROFS');
      }
    }
    // the TUN device is the host's, bind-mounted (the manifests' hostPath), and the seed server uses it
    const tun = await inContainer(`${p}-vpn-seed-server`, "const s = require('fs').statSync('/dev/net/tun'); console.log(s.isCharacterDevice(), s.rdev)");
    expect(tun.out).toBe(`true ${(10 << 8) | 200}`);
  });

  it('reloads a renewed certificate from the Secret volume (..data swap) without dropping the tunnel', async () => {
    const stack = lab();
    const sessions = async () => metric(await stack.statusBody('vpn-seed-server', 'metrics'), 'rvpn_seed_server_tunnel_sessions_total');
    const reloads = async () => metric(await stack.statusBody('vpn-seed-server', 'metrics'), 'rvpn_seed_server_tls_reloads_total');
    const before = { sessions: await sessions(), reloads: await reloads() };
    const dataBefore = await inContainer(`${stack.topo.prefix}-vpn-seed-server`, "console.log(require('fs').readlinkSync('/srv/secrets/vpn-seed-server-tls/..data'))");
    // a client that trusts only a new CA fails against the current certificate ...
    const newCa = await createCa({ commonName: 'ca-vpn' });
    const newCaFile = join(stack.dir, 'new-ca-only.crt');
    writeFileSync(newCaFile, newCa.certPem);
    const onlyNewCa = () => run(['curl', '-sS', '-m', '10', '--proxy', `https://${ADDR.srv}:9443`, '--proxy-cacert', newCaFile, '--proxy-cert', stack.file('proxy-client.crt'), '--proxy-key', stack.file('proxy-client.key'), '--proxytunnel', URLS.pod], { ns: stack.topo.ns.kapi, allowFail: true });
    expect((await onlyNewCa()).code).not.toBe(0);
    // ... the renewed one (new CA, in the bundle beside the old) arrives through the kubelet's swap ...
    const renewed = await issueCertificate(newCa, { commonName: 'vpn-seed-server', usage: 'server', dnsNames: seedServerDnsNames(SHOOT_NAMESPACE), ipAddresses: [ADDR.srv], uris: [shootIdentityUri(SHOOT_NAMESPACE)] });
    const oldCa = stack.pkiFiles['ca.crt']!;
    const proxyClient = { crt: stack.pkiFiles['proxy-client.crt']!, key: stack.pkiFiles['proxy-client.key']! };
    await stack.updatePki({ 'ca.crt': caBundle(oldCa, newCa.certPem), 'proxy-server.crt': renewed.certPem, 'proxy-server.key': renewed.keyPem });
    await waitFor('the seed server to reload the swapped Secret', async () => (await reloads()) > before.reloads, 15_000);
    const dataAfter = await inContainer(`${stack.topo.prefix}-vpn-seed-server`, "console.log(require('fs').readlinkSync('/srv/secrets/vpn-seed-server-tls/..data'))");
    expect(dataAfter.out).not.toBe(dataBefore.out);
    // ... and now that client connects, while the tunnel made with the old certificate carries on
    const r = await onlyNewCa();
    expect(r.stdout, r.stderr).toContain('hello from pod');
    expect(proxyClient.crt).toBe(stack.pkiFiles['proxy-client.crt']); // the client side did not change
    expect(await sessions()).toBe(before.sessions);
    expect((await stack.curlViaProxy(URLS.pod)).stdout).toContain('hello from pod');
  });

  it('sni-proxy follows its route ConfigMap (..data swap): a new route is live, a broken file keeps the old table', async () => {
    const stack = lab();
    const reloads = async (result: string) => metric(await stack.statusBody('sni-proxy', 'metrics'), 'rvpn_sni_proxy_route_reloads_total', { result });
    const ok = await reloads('ok');
    const routes = stack.defaultRoutes();
    const header = `Reversed-VPN: ${connectHeaderValue('shoot--new--two')}`;
    expect(await rawConnect(stack, 8132, [header])).not.toBe(502); // no such route yet
    await stack.writeRoutes({ ...routes, connect: { ...routes.connect, [connectHeaderValue('shoot--new--two')]: `${ADDR.srv}:1` } });
    await waitFor('the reload of the swapped ConfigMap', async () => (await reloads('ok')) > ok, 10_000);
    expect(await rawConnect(stack, 8132, [header])).toBe(502); // routed; its upstream refuses
    const errors = await reloads('error');
    await stack.writeRoutes({ connect: { x: 'not-an-upstream' } });
    await waitFor('the refused reload', async () => (await reloads('error')) > errors, 10_000);
    expect(await rawConnect(stack, 8132, [header])).toBe(502);
    await stack.writeRoutes(routes);
    await waitFor('the default routes again', async () => (await reloads('ok')) > ok + 1, 10_000);
    expect((await stack.curlViaProxy(URLS.pod)).stdout).toContain('hello from pod');
  });

  it('restarts a killed app container like the kubelet (without its init container), and the tunnel comes back', async () => {
    const stack = lab();
    stack.supervise = true;
    try {
      const first = stack.app('vpn-shoot')!;
      await run(['kill', '-9', String(first.pid)]);
      const exit = await first.exited;
      expect(exit.signal).toBe('SIGKILL');
      await waitFor('the restarted vpn-shoot container', async () => stack.app('vpn-shoot') !== undefined && stack.app('vpn-shoot') !== first, 15_000);
      await waitFor('a request through the new tunnel', async () => (await stack.curlViaProxy(URLS.pod, [], 3)).stdout.includes('hello from pod'), 30_000, 100);
      const inits = readFileSync(stack.logFile('vpn-shoot-init-sysctls'), 'utf8').split('\n').filter((l) => l.includes('--init: done'));
      expect(inits).toHaveLength(1);
    } finally {
      stack.supervise = false;
    }
  });

  it('stopApp: SIGTERM lets the seed server undo its kernel changes with NET_ADMIN alone; SIGKILL is a crash; both start again', async () => {
    const stack = lab();
    const kernel = async () => {
      const tables = (await run(['nft', 'list', 'tables'], { ns: stack.topo.ns.srv })).stdout;
      const links = (await run(['ip', '-o', 'link', 'show', 'type', 'tun'], { ns: stack.topo.ns.srv })).stdout;
      return { table: tables.includes('rvpn_seed'), tun: links.trim() !== '' };
    };
    expect(await kernel()).toEqual({ table: true, tun: true });
    await stack.stopApp('vpn-seed-server', 'SIGTERM');
    expect(await kernel()).toEqual({ table: false, tun: false });
    await stack.startApp('vpn-seed-server');
    await stack.waitReady('vpn-seed-server', 30_000);
    await stack.stopApp('vpn-shoot', 'SIGKILL');
    expect((await run(['nft', 'list', 'tables'], { ns: stack.topo.ns.vsh })).stdout).toContain('rvpn_shoot'); // a crash leaves its table
    await stack.startApp('vpn-shoot'); // and the restarted client replaces it
    await stack.waitReady('vpn-seed-server', 30_000);
    expect((await stack.curlViaProxy(URLS.pod)).stdout).toContain('hello from pod');
  });

  it('down() leaves no container, namespace, mount or directory of the run', async () => {
    const stack = lab();
    const prefix = stack.topo.prefix;
    const merged = await mergedDirs(prefix);
    const before = await traces(prefix, { mergedDirs: merged, workDir: stack.dir });
    expect(before.containers).toHaveLength(3);
    expect(before.mounts.length).toBeGreaterThan(0);
    await stack.down();
    expect(await traces(prefix, { mergedDirs: merged, workDir: stack.dir })).toEqual(nothing);
  });
});

describe('the lab on the images: classic direction', () => {
  it('passes the demo checks with the seed server dialing vpn-shoot', async () => {
    await requireImages();
    const stack = new Stack({ images: true, direction: 'classic' });
    try {
      await stack.start();
      const results = await runChecks(stack);
      for (const r of results) expect(r, `${r.name}: ${r.detail}`).toMatchObject({ ok: true });
    } finally {
      await stack.down();
    }
  });
});

describe('the lab on the images: HA', () => {
  const lab = sharedLab(async () => {
    await requireImages();
    await sweep();
    const s = new HaStack({ images: true });
    await s.start();
    return s;
  });

  it('passes the demo checks through both path-controllers and the bond', async () => {
    const s = lab();
    const results = await runHaChecks(s);
    for (const r of results) expect(r, `${r.name}: ${r.detail}`).toMatchObject({ ok: true });
  });

  it('runs the seed servers as 65532 without capabilities; the 0400 key is readable only through the fsGroup', async () => {
    const s = lab();
    const name = `${s.topo.prefix}-vpn-seed-server-0`;
    const who = await inContainer(name, "const st = require('fs').readFileSync('/proc/1/status','utf8'); console.log(process.getuid(), process.getgid(), process.getgroups().join(','), /CapEff:\\s+(\\S+)/.exec(st)[1])");
    expect(who.out).toBe('65532 65532 65532 0000000000000000');
    const key = '/srv/secrets/vpn-seed-server-tls/tls.key';
    const st = await inContainer(name, `const s = require('fs').statSync('${key}'); console.log(s.uid, s.gid, (s.mode & 0o7777).toString(8))`);
    expect(st.out).toBe('0 65532 440'); // root's, group 65532 (the fsGroup), no access for others
    // the same user without the fsGroup (another primary group, no supplementary one) cannot read it
    const without = await inContainer(name, `try { require('fs').readFileSync('${key}'); console.log('read') } catch (e) { console.log(e.code) }`, '65532:65533');
    expect(without.out).toBe('EACCES');
    // and the server did read it: it serves the tunnel (its readiness needs a shoot client over TLS)
    expect(await s.status('vpn-seed-server-0', 'readyz')).toBe(200);
  });
});

describe('the lab on the images: a killed demo', () => {
  it('leaves nothing behind once `pnpm sweep` ran: no container, namespace, mount, process or directory of the run', async () => {
    await requireImages();
    const demo = spawn(process.execPath, [join(REPO_ROOT, 'tools', 'dist', 'demo.js'), '--images'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    demo.stdout.on('data', (c: Buffer) => (out += c.toString()));
    demo.stderr.on('data', (c: Buffer) => (out += c.toString()));
    try {
      await waitFor('the demo to be up', () => out.includes('Ctrl-C to stop'), 90_000);
    } catch (err) {
      demo.kill('SIGKILL');
      throw new Error(`${(err as Error).message}\n${out}`);
    }
    const prefix = /topology (rv[0-9a-f]{4})/.exec(out)![1]!;
    const meta = JSON.parse(readFileSync(`${LAB_STATE_DIR}/${prefix}.json`, 'utf8')) as LabMeta;
    const merged = await mergedDirs(prefix);
    demo.kill('SIGKILL');
    await new Promise((r) => demo.once('exit', r));
    const left = await traces(prefix, { mergedDirs: merged, workDir: meta.workDir });
    // the kill left everything running: this is what the sweeper is for
    expect(left.containers).toHaveLength(3);
    expect(left.namespaces.length).toBeGreaterThan(0);
    expect(left.workDir).toHaveLength(1);
    const swept = await run([process.execPath, join(REPO_ROOT, 'tools', 'dist', 'sweep.js')], { timeoutMs: 120_000 });
    expect(swept.stdout).toContain(`removed ${prefix}`);
    expect(await traces(prefix, { mergedDirs: merged, workDir: meta.workDir })).toEqual(nothing);
    // no process of the run either: fixtures (their arguments name the work directory), apps, podman wait
    await waitFor('the processes of the run to end', async () => (await run(['pgrep', '-f', `${meta.workDir}|${prefix}-`], { allowFail: true })).stdout.trim() === '', 10_000);
  });
});
