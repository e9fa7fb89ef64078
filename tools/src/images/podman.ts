/**
 * podman as this project runs it: the settings of tools/images/containers.conf (runc, no default
 * ulimits, cgroupfs, file events) passed with CONTAINERS_CONF, so the machine's /etc is left alone.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../lab/paths.js';
import { run, type RunResult } from '../lab/sh.js';

export const CONTAINERS_CONF = join(REPO_ROOT, 'tools', 'images', 'containers.conf');

export function podmanEnv(): NodeJS.ProcessEnv {
  return { ...process.env, CONTAINERS_CONF };
}

/** podman with the project's settings; output collected. */
export function podman(args: string[], opts: { allowFail?: boolean; timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return run(['podman', ...args], { env: podmanEnv(), timeoutMs: opts.timeoutMs ?? 120_000, allowFail: opts.allowFail, input: opts.input });
}

/** Whether podman is installed and answers (with the project's settings). */
export async function podmanAvailable(): Promise<{ ok: boolean; why: string }> {
  const r = await podman(['info', '--format', '{{.Host.OCIRuntime.Name}}'], { allowFail: true, timeoutMs: 30_000 }).catch((err: Error) => ({ code: 127, stdout: '', stderr: err.message }));
  if (r.code === 0) return { ok: true, why: `podman with ${r.stdout.trim()}` };
  return { ok: false, why: r.code === 127 || /ENOENT/.test(r.stderr) ? 'podman is not installed (bash tools/setup.sh installs it: apt-get install podman runc)' : `podman info failed: ${r.stderr.trim().split('\n').pop()}` };
}

export async function imageExists(ref: string): Promise<boolean> {
  return (await podman(['image', 'exists', ref], { allowFail: true })).code === 0;
}

/**
 * Runs a long command (an image build) with its output streamed line by line behind a prefix, so a
 * build shows progress; the last lines are kept for the error when it fails.
 */
export function runStreaming(argv: string[], opts: { prefix: string; env?: NodeJS.ProcessEnv; cwd?: string; quiet?: boolean; timeoutMs?: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    let partial = '';
    const onData = (c: Buffer) => {
      const lines = (partial + c.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        tail.push(l);
        if (tail.length > 60) tail.shift();
        if (!opts.quiet) process.stdout.write(`${opts.prefix}${l}\n`);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGTERM'), opts.timeoutMs) : undefined;
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${argv.join(' ')} failed (${code ?? signal})\n${tail.join('\n')}`));
    });
  });
}
