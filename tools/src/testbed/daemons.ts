/**
 * The test bed's long-running host processes (etcd, API server, containerd, kubelet, ...): started
 * detached in their own session so they outlive `pnpm cluster up`, each in its node's network
 * namespace with `nsenter --net` (NOT `ip netns exec`, which gives a private mount namespace and a fresh
 * /sys: /sys/fs/cgroup would vanish for the kubelet and Secret mounts would diverge), logs in
 * DATA/logs/<name>.log, pids in RUN/state.json so that `down` and `status` find them.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { sleep } from '../lab/sh.js';
import { LOG_DIR, STATE_FILE } from './config.js';

export interface DaemonRecord {
  name: string;
  pid: number;
  ns?: string;
  argv: string[];
  startedAt: string;
}

export interface TestbedState {
  createdAt: string;
  daemons: DaemonRecord[];
  /** Facts found while coming up (LoadBalancer address of the entry point, phases done). */
  facts: Record<string, string>;
}

export function readState(): TestbedState | undefined {
  if (!existsSync(STATE_FILE)) return undefined;
  return JSON.parse(readFileSync(STATE_FILE, 'utf8')) as TestbedState;
}

export function writeState(s: TestbedState): void {
  mkdirSync(dirname(STATE_FILE), { recursive: true });
  writeFileSync(`${STATE_FILE}.tmp`, `${JSON.stringify(s, null, 2)}\n`);
  writeFileSync(STATE_FILE, readFileSync(`${STATE_FILE}.tmp`));
}

export function updateState(fn: (s: TestbedState) => void): TestbedState {
  const s = readState() ?? { createdAt: new Date().toISOString(), daemons: [], facts: {} };
  fn(s);
  writeState(s);
  return s;
}

export const logFile = (name: string) => join(LOG_DIR, `${name}.log`);

/** Whether the process exists and is not a zombie (PID 1 here may not reap orphans). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Starts a daemon (in `ns` when given) and records it; returns its pid. Fails when it exits within 300 ms. */
export async function startDaemon(d: { name: string; argv: string[]; ns?: string; env?: NodeJS.ProcessEnv; cwd?: string }): Promise<number> {
  mkdirSync(LOG_DIR, { recursive: true });
  const log = openSync(logFile(d.name), 'a');
  const argv = d.ns ? ['nsenter', `--net=/run/netns/${d.ns}`, '--', ...d.argv] : d.argv;
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', log, log], env: d.env ?? process.env, cwd: d.cwd });
  closeSync(log);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code ?? -1)));
  child.unref();
  const pid = child.pid!;
  const early = await Promise.race([exited, sleep(300).then(() => undefined)]);
  if (early !== undefined) {
    const tail = readFileSync(logFile(d.name), 'utf8').split('\n').slice(-15).join('\n');
    throw new Error(`${d.name} exited at once (code ${early}):\n${tail}`);
  }
  updateState((s) => {
    s.daemons = s.daemons.filter((x) => x.name !== d.name);
    s.daemons.push({ name: d.name, pid, ...(d.ns ? { ns: d.ns } : {}), argv: d.argv, startedAt: new Date().toISOString() });
  });
  return pid;
}

/** SIGTERM to the daemon's process group, SIGKILL after `graceMs`. */
export async function stopDaemon(rec: DaemonRecord, graceMs = 5000): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-rec.pid, sig);
    } catch {
      try {
        process.kill(rec.pid, sig);
      } catch {
        /* gone */
      }
    }
  };
  if (!alive(rec.pid)) return;
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive(rec.pid) && Date.now() < deadline) await sleep(100);
  if (alive(rec.pid)) signal('SIGKILL');
  while (alive(rec.pid)) await sleep(50);
}
