/**
 * @rvpn/bonding: userspace bonding of tunnel links into one TAP device, and the layer-2 switch of an
 * HA seed server. Pure state machines over frames (no I/O): the apps wire them to sessions and devices.
 */
export { Bond } from './bond.js';
export type { BondOptions, BondMode, BondStats } from './bond.js';
export { L2Switch, SwitchFullError } from './switch.js';
export { createPortGuard, linkLocalFromMac } from './guard.js';
export type { PortGuard, PortGuardOptions, GuardDropReason } from './guard.js';
export type { SwitchOptions, SwitchStats } from './switch.js';
export {
  macFromAddress,
  formatMac,
  parseMac,
  gratuitousArp,
  unsolicitedNa,
  announcements,
  isGroup,
  isGroupMac,
  etherType,
  dstKey,
  srcKey,
  BROADCAST,
  ETH_HEADER,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
} from './ethernet.js';
export { encodeMacAnnouncement, decodeMacAnnouncement, MAX_ANNOUNCED_MACS } from './announce.js';
export {
  canonicalAddress,
  shootBondAddresses,
  endpointBondAddresses,
  shootIndexOf,
  endpointSlotOf,
  isEndpointAddress,
  randomEndpointSlot,
  BondAddressInUseError,
  BondAddressInvalidError,
  MAX_SHOOT_CLIENTS,
  ENDPOINT_SLOTS,
} from './addresses.js';
export type { BondNetworks, BondAddresses } from './addresses.js';
export { BondEndpoint } from './endpoint.js';
export { checkFrameHeader, packForGso, packPlain, asksOffload, sendFrames } from './offload.js';
export { BOND_DEFAULT_SYSCTLS, bondDeviceSysctls, hardenBondDevice } from './harden.js';
export type { BondEndpointOptions, BondServerTarget } from './endpoint.js';
