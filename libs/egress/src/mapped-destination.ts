/**
 * The CONNECT proxy's dial address under a network mapping (issue 12): the kube-apiserver names the
 * real shoot address, the allow-list checks that real address, and the proxy dials where it appears
 * in the tunnel (`mapping.toMapped(target, 'shoot')`). Shared by vpn-seed-server's proxy (non-HA) and
 * path-controller's (HA), so both translate the same way.
 */
import { formatIp, parseIp, type NetworkMapping } from '@rvpn/config';

/**
 * The proxy's `mapDestination` for a mapping: a real shoot address of a mapped family → its mapped
 * address (undefined when it is in no shoot network); an address of an unmapped family stays as it
 * is. Undefined when nothing is mapped, so the proxy dials the target exactly as named.
 */
export function proxyDestinationMapper(mapping: NetworkMapping): ((host: string) => string | undefined) | undefined {
  if (!mapping.isActive()) return undefined;
  return (host) => {
    const a = parseIp(host);
    if (!a || !mapping.isActive(a.family)) return host;
    const m = mapping.toMapped(a, 'shoot');
    return m ? formatIp(m) : undefined;
  };
}
