/**
 * Kernel settings of a bond device: what arrives over the bond must not change how this pod routes.
 * Router advertisements are ignored (accept_ra=0: no default route, no autoconfigured address from a
 * shoot port) and redirects are neither accepted nor sent (IPv4 and IPv6). The `default` values go
 * into the app's --init sysctl table (written privileged before the app starts, so a TAP created
 * later inherits them); `hardenBondDevice` then checks the device's own values, writing them only
 * where they differ (which needs a writable /proc/sys: root in the lab, the init container in a pod).
 * The switch drops RAs and redirects from shoot ports as well (guard.ts); this is the second line.
 */
import type { NetConfig } from '@rvpn/tunnel';

/** Defaults for devices created later (the bond), and `all` where the kernel ANDs it in. */
export const BOND_DEFAULT_SYSCTLS = {
  'net.ipv6.conf.default.accept_ra': '0',
  'net.ipv6.conf.default.accept_redirects': '0',
  'net.ipv4.conf.default.accept_redirects': '0',
  'net.ipv4.conf.all.accept_redirects': '0',
  'net.ipv4.conf.default.send_redirects': '0',
  'net.ipv4.conf.all.send_redirects': '0',
} as const;

/** The per-device settings `hardenBondDevice` makes sure of. */
export function bondDeviceSysctls(dev: string): Record<string, string> {
  return {
    [`net.ipv6.conf.${dev}.accept_ra`]: '0',
    [`net.ipv6.conf.${dev}.accept_redirects`]: '0',
    [`net.ipv4.conf.${dev}.accept_redirects`]: '0',
    [`net.ipv4.conf.${dev}.send_redirects`]: '0',
  };
}

/**
 * Before the bond goes up: RAs and redirects off, and the link-local address derived from the MAC
 * (EUI-64; the HA server lets a shoot port use exactly that one, see guard.ts linkLocalFromMac).
 */
export async function hardenBondDevice(net: NetConfig, dev: string): Promise<void> {
  for (const [name, value] of Object.entries(bondDeviceSysctls(dev))) await net.setSysctl(name, value);
  await net.ip(['link', 'set', 'dev', dev, 'addrgenmode', 'eui64']);
}
