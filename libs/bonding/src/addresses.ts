/**
 * Addresses in the HA bond network (VPN_NETWORK, IPv6): every endpoint has one address there, and its
 * MAC derives from it (macFromAddress), so both are stable across pod restarts.
 *   shoot client j (vpn-shoot-j):           VPN_NETWORK + 0x100 + j   (fixed)
 *   kube-apiserver endpoints (path-controller): VPN_NETWORK + 0x1000 … +0xffff, chosen at random;
 *     a server refuses an address another live port holds (RVPN_ERR_BOND_ADDRESS_IN_USE) and the
 *     endpoint draws again, so replicas starting at once do not collide.
 */
import { parseIp, defineError, formatIp, type Cidr } from '@rvpn/config';

export const BondAddressInUseError = defineError('RVPN_ERR_BOND_ADDRESS_IN_USE', 'Another endpoint holds this bond address on the HA seed server; the kube-apiserver endpoint draws another one and reconnects.');
export const BondAddressInvalidError = defineError('RVPN_ERR_BOND_ADDRESS_INVALID', "The bond address in the HELLO does not belong to the client's role (a shoot client must use its fixed index address; an apiserver endpoint one of the endpoint range).");

export const SHOOT_BASE = 0x100;
export const MAX_SHOOT_CLIENTS = 16;
export const ENDPOINT_MIN = 0x1000;
export const ENDPOINT_MAX = 0xffff;

function offsetOf(network: Cidr, address: string): number | undefined {
  const ip = parseIp(address);
  if (!ip || !network.contains(ip)) return undefined;
  const off = ip.value - network.network;
  return off <= BigInt(ENDPOINT_MAX) ? Number(off) : undefined;
}

export function shootBondAddress(network: Cidr, index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_SHOOT_CLIENTS) throw new RangeError(`shoot client index ${index} out of 0..${MAX_SHOOT_CLIENTS - 1}`);
  return formatIp(network.address(SHOOT_BASE + index));
}

/** The shoot client index an address stands for, if it is one. */
export function shootIndexOf(network: Cidr, address: string): number | undefined {
  const off = offsetOf(network, address);
  return off !== undefined && off >= SHOOT_BASE && off < SHOOT_BASE + MAX_SHOOT_CLIENTS ? off - SHOOT_BASE : undefined;
}

export function isEndpointAddress(network: Cidr, address: string): boolean {
  const off = offsetOf(network, address);
  return off !== undefined && off >= ENDPOINT_MIN && off <= ENDPOINT_MAX;
}

/** A random endpoint address; `random` returns a float in [0, 1). */
export function randomEndpointAddress(network: Cidr, random: () => number = Math.random): string {
  return formatIp(network.address(ENDPOINT_MIN + Math.floor(random() * (ENDPOINT_MAX - ENDPOINT_MIN + 1))));
}
