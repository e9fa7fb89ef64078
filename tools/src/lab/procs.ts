/** The process pieces both lab stacks (non-HA and HA) share: health waits, stops, status reads, fixtures. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.js';
import { run, sleep, spawnLogged, waitFor, type Spawned } from './sh.js';
import type { Topology, Role } from './topology.js';

/** The fixture always runs from the build (the tests load the lab from source). */
const FIXTURE = join(REPO_ROOT, 'tools', 'dist', 'fixtures', 'http-fixture.js');

const CLK_TCK = 100; // USER_HZ on Linux

/** utime + stime of a process in seconds (/proc/<pid>/stat fields 14 and 15). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

export type StatusPath = 'healthz' | 'readyz' | 'metrics';

/** HTTP status of a process's status endpoint inside its namespace (0 when unreachable). */
export async function statusCode(ns: string, port: number, path: StatusPath): Promise<number> {
  const r = await run(['curl', '-s', '-o', '/dev/null', '-m', '2', '-w', '%{http_code}', `http://127.0.0.1:${port}/${path}`], { ns, allowFail: true });
  return Number(r.stdout) || 0;
}

export async function statusText(ns: string, port: number, path: StatusPath): Promise<string> {
  return (await run(['curl', '-s', '-m', '2', `http://127.0.0.1:${port}/${path}`], { ns, allowFail: true })).stdout;
}

/** What both a spawned process and an app container give: its log and its end. */
export interface AppHandle {
  pid: number;
  logFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Waits until a just-started app serves /healthz, or fails with the tail of its log if it exited first. */
export async function awaitHealthy(name: string, p: AppHandle, healthz: () => Promise<number>): Promise<void> {
  const healthy = waitFor(`${name} /healthz`, async () => (await healthz()) === 200, 20_000);
  const first = await Promise.race([healthy.then(() => 'ok' as const), p.exited]);
  if (first !== 'ok') {
    const tail = (await run(['tail', '-n', '20', p.logFile], { allowFail: true })).stdout;
    throw new Error(`${name} exited during start (code ${first.code}, signal ${first.signal}):\n${tail}`);
  }
}

/** SIGTERM (graceful: the app undoes its kernel changes) or SIGKILL (a crash); SIGKILL after 5 s anyway. */
export async function stopProcess(p: Spawned, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  p.child.kill(signal);
  if (!(await Promise.race([p.exited, sleep(5000).then(() => undefined)]))) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
}

/** Kills whatever is still running (fixtures) and forgets it. */
export async function killAll(procs: Map<string, Spawned>): Promise<void> {
  for (const [name, p] of procs) {
    p.child.kill('SIGKILL');
    await Promise.race([p.exited, sleep(2000)]);
    procs.delete(name);
  }
}

/** Starts the HTTP(S) fixture (pod, kubelet, apiserver stand-ins) in a namespace of the lab. */
export function spawnFixture(topo: Topology, role: Role, name: string, listen: string, opts: { logFile: string; cert?: string; key?: string }): Spawned {
  const args = [process.execPath, FIXTURE, '--name', name, '--listen', listen];
  if (opts.cert && opts.key) args.push('--cert', opts.cert, '--key', opts.key);
  const p = spawnLogged(args, { ns: topo.ns[role], logFile: opts.logFile });
  topo.trackPid(p.pid);
  return p;
}

