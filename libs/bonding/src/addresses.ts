/**
 * Addresses in the HA bond network. Every endpoint has an IPv6 address in VPN_NETWORK (its identity
 * on the wire; its MAC derives from it, stable across pod restarts) and, when IPv4 payloads are
 * carried, an IPv4 address in BOND_NETWORK_V4 with the same slot, so IPv4 flows can keep their source
 * on the bond and replies stay on-link (no per-pod return routes in the shoot):
 *   shoot client j (vpn-shoot-j):               v6 VPN_NETWORK + 0x100 + j    v4 BOND_NETWORK_V4 + 16 + j
 *   kube-apiserver endpoint in slot k (0..190): v6 VPN_NETWORK + 0x1000 + k   v4 BOND_NETWORK_V4 + 64 + k
 * An endpoint draws its slot at random; a server refuses a slot another live endpoint holds
 * (RVPN_ERR_BOND_ADDRESS_IN_USE) and the endpoint draws again, so replicas starting at once do not collide.
 */
import { parseIp, defineError, formatIp, type Cidr } from '@rvpn/config';

export const BondAddressInUseError = defineError('RVPN_ERR_BOND_ADDRESS_IN_USE', 'Another endpoint holds this bond address on the HA seed server; the kube-apiserver endpoint draws another one and reconnects.');
export const BondAddressInvalidError = defineError('RVPN_ERR_BOND_ADDRESS_INVALID', "The bond address in the HELLO does not belong to the client's role (a shoot client must use its fixed index address; an apiserver endpoint one of the endpoint range).");

export const SHOOT_BASE_V6 = 0x100;
export const SHOOT_BASE_V4 = 16;
export const MAX_SHOOT_CLIENTS = 16;
export const ENDPOINT_BASE_V6 = 0x1000;
export const ENDPOINT_BASE_V4 = 64;
export const ENDPOINT_SLOTS = 191;

export interface BondNetworks {
  v6: Cidr;
  /** IPv4 bond network (at least a /24) when IPv4 payloads are carried. */
  v4?: Cidr | undefined;
}

export interface BondAddresses {
  v6: string;
  v4?: string | undefined;
}

/**
 * The one spelling of an address (RFC 5952 for IPv6), or undefined when it is none: bond addresses
 * from HELLOs are compared, and MACs derived, only in this form, so `fd8f::0:100` and `FD8F::100` are
 * the same endpoint, not new switch ports.
 */
export function canonicalAddress(address: string): string | undefined {
  if (typeof address !== 'string' || address.length > 64) return undefined;
  const ip = parseIp(address);
  return ip ? formatIp(ip) : undefined;
}

function offsetOf(network: Cidr, address: string): number | undefined {
  const ip = parseIp(address);
  if (!ip || !network.contains(ip)) return undefined;
  const off = ip.value - network.network;
  return off <= 0xffffn ? Number(off) : undefined;
}

export function shootBondAddresses(nets: BondNetworks, index: number): BondAddresses {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_SHOOT_CLIENTS) throw new RangeError(`shoot client index ${index} out of 0..${MAX_SHOOT_CLIENTS - 1}`);
  return { v6: formatIp(nets.v6.address(SHOOT_BASE_V6 + index)), v4: nets.v4 ? formatIp(nets.v4.address(SHOOT_BASE_V4 + index)) : undefined };
}

export function endpointBondAddresses(nets: BondNetworks, slot: number): BondAddresses {
  if (!Number.isInteger(slot) || slot < 0 || slot >= ENDPOINT_SLOTS) throw new RangeError(`endpoint slot ${slot} out of 0..${ENDPOINT_SLOTS - 1}`);
  return { v6: formatIp(nets.v6.address(ENDPOINT_BASE_V6 + slot)), v4: nets.v4 ? formatIp(nets.v4.address(ENDPOINT_BASE_V4 + slot)) : undefined };
}

/** The shoot client index an IPv6 bond address stands for, if it is one. */
export function shootIndexOf(v6: Cidr, address: string): number | undefined {
  const off = offsetOf(v6, address);
  return off !== undefined && off >= SHOOT_BASE_V6 && off < SHOOT_BASE_V6 + MAX_SHOOT_CLIENTS ? off - SHOOT_BASE_V6 : undefined;
}

/** The endpoint slot an IPv6 bond address stands for, if it is one. */
export function endpointSlotOf(v6: Cidr, address: string): number | undefined {
  const off = offsetOf(v6, address);
  return off !== undefined && off >= ENDPOINT_BASE_V6 && off < ENDPOINT_BASE_V6 + ENDPOINT_SLOTS ? off - ENDPOINT_BASE_V6 : undefined;
}

export function isEndpointAddress(v6: Cidr, address: string): boolean {
  return endpointSlotOf(v6, address) !== undefined;
}

/** A random endpoint slot; `random` returns a float in [0, 1). */
export function randomEndpointSlot(random: () => number = Math.random): number {
  return Math.floor(random() * ENDPOINT_SLOTS);
}
