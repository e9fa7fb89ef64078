/** Small process helpers for the lab: run a command (optionally inside a network namespace) and fail loudly. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';

export class CommandError extends Error {
  constructor(
    readonly argv: string[],
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(`command failed (${code}): ${argv.join(' ')}\n${stderr.trim()}`);
    this.name = 'CommandError';
  }
}

/** Prefixes argv with `ip netns exec <ns>` when ns is given. */
export function inNs(ns: string | undefined, argv: string[]): string[] {
  return ns ? ['ip', 'netns', 'exec', ns, ...argv] : argv;
}

export interface RunOptions {
  ns?: string;
  input?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Do not throw on a non-zero exit; return the result. */
  allowFail?: boolean;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const full = inNs(opts.ns, argv);
  return new Promise((resolve, reject) => {
    const child = execFile(
      full[0]!,
      full.slice(1),
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024, env: opts.env ?? process.env, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? ((err as unknown as { code: number }).code) : 1) : 0;
        if (err && !opts.allowFail) reject(new CommandError(full, code, `${stderr}${(err as Error).message ? `\n${(err as Error).message}` : ''}`));
        else resolve({ code, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Runs a batch of commands given to `ip -batch` (one line each), in one process. */
export async function ipBatch(lines: string[], ns?: string): Promise<void> {
  if (lines.length === 0) return;
  await run(['ip', ...(ns ? ['-n', ns] : []), '-batch', '-'], { input: lines.join('\n') + '\n' });
}

export interface Spawned {
  child: ChildProcess;
  pid: number;
  logFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts a long-running process (in a namespace), stdout+stderr to logFile. */
export function spawnLogged(argv: string[], opts: { ns?: string; env?: NodeJS.ProcessEnv; logFile: string; cwd?: string }): Spawned {
  const full = inNs(opts.ns, argv);
  const fd = openSync(opts.logFile, 'a');
  // own process group: a Ctrl-C in the terminal reaches the lab's owner, which stops everything in order
  const child = spawn(full[0]!, full.slice(1), { env: opts.env ?? process.env, stdio: ['ignore', fd, fd], cwd: opts.cwd, detached: true });
  closeSync(fd);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: -1, signal: null }));
  });
  if (child.pid === undefined) throw new Error(`could not start ${full.join(' ')}`);
  return { child, pid: child.pid, logFile: opts.logFile, exited };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ''}`);
    await sleep(everyMs);
  }
}

/** Which of the given tools are missing from PATH. */
export async function missingTools(tools: string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const t of tools) {
    const r = await run(['sh', '-c', `command -v ${t}`], { allowFail: true });
    if (r.code !== 0) missing.push(t);
  }
  return missing;
}
