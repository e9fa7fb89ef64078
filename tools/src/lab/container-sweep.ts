/**
 * The lab's containers by label, for the stacks' teardown and the sweeper: every container a lab run
 * starts carries rvpn.lab.prefix=<prefix>. Without podman there are none (and no error).
 */
import { podman } from '../images/podman.js';

export const PREFIX_LABEL = 'rvpn.lab.prefix';

/** Every container of a lab run (by its label), or of every lab run when no prefix is given. */
export async function labContainers(prefix?: string): Promise<Array<{ id: string; prefix: string; name: string }>> {
  const r = await podman(['ps', '--all', '--filter', `label=${PREFIX_LABEL}${prefix ? `=${prefix}` : ''}`, '--format', `{{.ID}} {{index .Labels "${PREFIX_LABEL}"}} {{.Names}}`], { allowFail: true, timeoutMs: 60_000 }).catch(() => ({ code: 1, stdout: '', stderr: '' }));
  if (r.code !== 0) return [];
  return r.stdout.split('\n').filter(Boolean).map((l) => {
    const [id, p, name] = l.split(' ');
    return { id: id!, prefix: p!, name: name! };
  });
}

/** Removes a lab run's containers, running or not, at once (no grace period: the run is gone). */
export async function removeLabContainers(prefix: string): Promise<number> {
  const ids = (await labContainers(prefix)).map((c) => c.id);
  if (ids.length > 0) await podman(['rm', '--force', '--time', '0', ...ids], { allowFail: true, timeoutMs: 120_000 });
  return ids.length;
}

