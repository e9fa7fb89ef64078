/**
 * @rvpn/config: typed configuration, error codes and IP/CIDR helpers shared by every component.
 *
 *   import { loadSeedServerConfig, Cidr } from '@rvpn/config';
 *   const cfg = loadSeedServerConfig(process.env); // throws RVPN_ERR_CONFIG_INVALID listing every problem
 *   cfg.mapping.toMapped('100.96.3.4', 'shoot');   // 244.0.3.4 when the shoot's pods overlap the seed (else unchanged)
 *   cfg.mapping.tunnelCidrs();                     // what the seed routes into the tunnel
 */
export { RvpnError, defineError, registeredErrors, errorCode } from './errors.js';
export type { RvpnErrorClass, RvpnErrorOptions, ErrorDefinition } from './errors.js';
export { Cidr, CidrSet, parseIp, formatIp } from './net.js';
export type { IpAddress, IpFamily } from './net.js';
export {
  computeNetworkMapping, planNetworkMapping, findOverlaps, packCidrs, netmap, NetworkMapping,
  IPV4_MAPPING_REGION, IPV4_MAPPED_PREFIXES, DEFAULT_IPV6_MAPPED_PREFIXES, MAPPING_MODES, MAPPED_KINDS, SEED_KINDS, SHOOT_KINDS,
  MappingNoFitError, MappingReservedRangeError, MappingOverlapNotAllowedError, MappingAmbiguousError, MappingPrefixConflictError, MappingMismatchError,
} from './mapping.js';
export type {
  MappingMode, MappingNetworks, NetworkMappingOptions, NetworkOverlap, MappedNetwork, FamilyMapping, RealAddress,
  Side, NetworkKind, SeedKind, ShootKind, MappedKind, MappedPrefixes,
} from './mapping.js';
export { loadConfig, describeSchema, optional, t, ConfigInvalidError } from './schema.js';
export type { Field, Schema, ConfigOf, Problem, HostPort } from './schema.js';
export { seedServerSchema, loadSeedServerConfig, shootNetworksOf, seedTunnelNetworks } from './apps/seed-server.js';
export type { SeedServerConfig } from './apps/seed-server.js';
export { shootSchema, loadShootConfig } from './apps/shoot.js';
export type { ShootConfig } from './apps/shoot.js';
export { sniProxySchema, loadSniProxyConfig, DEFAULT_ALLOW_PATTERNS } from './apps/sni-proxy.js';
export type { SniProxyConfig } from './apps/sni-proxy.js';
export { haIndexOf, planNetworkMappingFromEnv, NETWORK_ENV, MAPPED_V6_ENV } from './apps/common.js';
export { LOG_LEVELS } from './apps/log-level.js';
export { pathControllerSchema, loadPathControllerConfig } from './apps/path-controller.js';
export type { PathControllerConfig } from './apps/path-controller.js';
export { readTlsFiles } from './tls-files.js';
export type { TlsFiles } from './tls-files.js';
export { operatorSchema, loadOperatorConfig } from './apps/operator.js';
export type { OperatorConfig } from './apps/operator.js';
