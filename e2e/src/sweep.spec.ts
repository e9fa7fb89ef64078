/** A killed run leaves namespaces and processes behind; the sweeper removes them (and only stale ones). */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT, Topology, run, sweep, waitFor } from '@rvpn/tools';
import { requireRoot } from './harness.js';

describe('sweeper', () => {
  it('removes the namespaces and processes of a run that was killed, but not of a live one', async () => {
    requireRoot();
    const live = new Topology();
    await live.create();
    const script = `
      import { Topology, spawnLogged } from ${JSON.stringify(join(REPO_ROOT, 'tools/dist/index.js'))};
      const t = new Topology(); await t.create();
      const p = spawnLogged(['sleep', '600'], { ns: t.ns.pod, logFile: '/dev/null' }); t.trackPid(p.pid);
      console.log(t.prefix);
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let prefix = '';
    child.stdout.on('data', (c: Buffer) => (prefix += c.toString().trim()));
    await waitFor('the child run to create its topology', () => /^rv[0-9a-f]{4}$/.test(prefix), 20_000);
    const sleeper = (await run(['ip', 'netns', 'pids', `${prefix}-pod`])).stdout.trim();
    expect(sleeper).not.toBe('');
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    const removed = await sweep();
    expect(removed).toContain(prefix);
    expect(removed).not.toContain(live.prefix);
    const left = (await run(['ip', 'netns', 'list'])).stdout;
    expect(left).not.toContain(prefix);
    expect(left).toContain(live.prefix);
    // gone, or at most a zombie waiting for a reaper that is not ours
    const state = (await run(['sh', '-c', `awk '{print $3}' /proc/${sleeper}/stat 2>/dev/null || echo gone`])).stdout.trim();
    expect(['gone', 'Z']).toContain(state);
    await live.destroy();
    expect((await run(['ip', 'netns', 'list'])).stdout).not.toContain(live.prefix);
  });
});
