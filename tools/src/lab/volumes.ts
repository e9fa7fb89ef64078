/**
 * Secret and ConfigMap volumes the way the kubelet lays them out, for the lab's containers: a directory
 * whose files are symlinks through `..data` to a timestamped directory; an update writes a new
 * timestamped directory and swaps `..data` atomically (so an app watching the directory sees one
 * consistent set of files, never a half-written one), then removes the old one. This is what the
 * kubelet's AtomicWriter does, with its modes and owners:
 *   - the volume directory 0777 (the kubelet's emptyDir that backs it), the timestamped directory 0755,
 *     each file the volume's defaultMode (Secrets 0400 here, ConfigMaps 0644), owned by root;
 *   - with a pod fsGroup, everything is group-owned by it and gets group read (files |= 0440,
 *     directories |= 0550 and setgid) — the only way a non-root container reads a 0400 Secret.
 * A single-file bind mount would instead pin one inode (no reload) with the host file's owner and
 * mode (no permission bug would show).
 */
import { chmod, chown, lchown, mkdir, readdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface VolumeOwnership {
  /** The volume's defaultMode (the mode of every file before fsGroup). */
  defaultMode: number;
  /** The pod's fsGroup, when it has one. */
  fsGroup?: number;
}

/** Mode and group of a file or directory of the volume, after the kubelet's fsGroup pass. */
export function volumeModes(o: VolumeOwnership): { root: number; dir: number; file: number; gid: number } {
  if (o.fsGroup === undefined) return { root: 0o777, dir: 0o755, file: o.defaultMode, gid: 0 };
  // SetVolumeOwnership of a read-only volume: files |= 0440, directories |= 0550 | setgid
  return { root: 0o777 | 0o2550, dir: 0o755 | 0o2550, file: o.defaultMode | 0o440, gid: o.fsGroup };
}

const stampName = () => `..${new Date().toISOString().replace(/[-:]/g, '_').replace('T', '_').replace(/\..*$/, '')}.${Math.random().toString(36).slice(2, 12)}`;

/** Writes (or updates) a volume: new timestamped directory, atomic `..data` swap, one symlink per key. */
export async function writeAtomicVolume(dir: string, files: Record<string, string>, own: VolumeOwnership): Promise<void> {
  for (const name of Object.keys(files)) {
    if (name.includes('/') || name.startsWith('..') || name === '') throw new Error(`bad volume key ${JSON.stringify(name)}`);
  }
  const m = volumeModes(own);
  await mkdir(dir, { recursive: true });
  await chown(dir, 0, m.gid);
  await chmod(dir, m.root);
  const stamp = stampName();
  const ts = join(dir, stamp);
  await mkdir(ts);
  for (const [name, content] of Object.entries(files)) {
    const f = join(ts, name);
    await writeFile(f, content, { mode: m.file });
    await chown(f, 0, m.gid);
    await chmod(f, m.file);
  }
  await chown(ts, 0, m.gid);
  await chmod(ts, m.dir);
  const old = await readlink(join(dir, '..data')).catch(() => undefined);
  const tmp = join(dir, '..data_tmp');
  await rm(tmp, { force: true });
  await symlink(stamp, tmp);
  await lchown(tmp, 0, m.gid);
  await rename(tmp, join(dir, '..data'));
  // the user-visible names: added for new keys, removed for keys the update dropped
  for (const name of Object.keys(files)) {
    const link = join(dir, name);
    if ((await readlink(link).catch(() => undefined)) !== join('..data', name)) {
      await rm(link, { force: true });
      await symlink(join('..data', name), link);
      await lchown(link, 0, m.gid);
    }
  }
  for (const entry of await readdir(dir)) {
    if (!entry.startsWith('..') && !(entry in files)) await rm(join(dir, entry), { force: true });
  }
  if (old && old !== stamp) await rm(join(dir, old), { recursive: true, force: true });
}
