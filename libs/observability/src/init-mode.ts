/**
 * The privileged init mode of the apps that need kernel settings Kubernetes calls unsafe sysctls
 * (ip_forward, rp_filter): the pod's init container runs the app's own image with the single argument
 * `--init`, privileged, and this writes the app's sysctl table into /proc/sys of the pod's network
 * namespace and exits. No shell and no procps in the image; the unprivileged main container later reads
 * the same table and finds nothing to change (NetConfig.setSysctl writes only what differs).
 */
import { readFileSync, writeFileSync } from 'node:fs';

/** sysctl name (dotted) → value, e.g. { 'net.ipv4.ip_forward': '1' }. */
export type SysctlTable = Readonly<Record<string, string>>;

export const INIT_ARG = '--init';

const procPath = (name: string) => {
  if (!/^[a-z0-9_]+(\.[a-z0-9_-]+)+$/.test(name)) throw new Error(`not a sysctl name: ${JSON.stringify(name)}`);
  return `/proc/sys/${name.replace(/\./g, '/')}`;
};

/**
 * Writes every entry of `table` that differs; returns one line per sysctl for the init container's log.
 * Throws on the first one that cannot be read or written (the init container then fails and the
 * kubelet retries, which is what should happen: the main container must not start half-configured).
 */
/** Equal sysctl values, whitespace aside (the kernel prints `4096\t131072\t262144` for `4096 131072 262144`). */
export function sameSysctlValue(a: string, b: string): boolean {
  return a.trim().split(/\s+/).join(' ') === b.trim().split(/\s+/).join(' ');
}

export function applySysctls(table: SysctlTable, root = ''): string[] {
  const lines: string[] = [];
  for (const [name, value] of Object.entries(table)) {
    const path = root + procPath(name);
    const old = readFileSync(path, 'utf8').trim();
    // multi-value sysctls (tcp_rmem) read back with tabs
    if (sameSysctlValue(old, value)) {
      lines.push(`${name} = ${value} (already)`);
      continue;
    }
    writeFileSync(path, value);
    lines.push(`${name} = ${value} (was ${old})`);
  }
  return lines;
}
