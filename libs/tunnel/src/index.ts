/**
 * @rvpn/tunnel: the tunnel library (device, protocol, sessions, dialer, listener, data path).
 */
export { packBatch, unpackBatch } from './device.js';
export type { PacketDevice, DeviceMode } from './device.js';
export { openTunDevice } from './tun.js';
export type { TunDevice, TunStats, OpenTunOptions } from './tun.js';
export { NetConfig, routeArgs } from './netconfig.js';
export type { RouteSpec, NetConfigOptions, NetLogger } from './netconfig.js';
