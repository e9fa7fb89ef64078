/**
 * @rvpn/config: typed configuration, error codes and IP/CIDR helpers shared by every component.
 *
 *   import { Cidr, defineError } from '@rvpn/config';
 *   const shootPods = Cidr.parse('100.96.0.0/11');
 */
export { RvpnError, defineError, registeredErrors, errorCode } from './errors.js';
export type { RvpnErrorClass, RvpnErrorOptions, ErrorDefinition } from './errors.js';
export { Cidr, CidrSet, parseIp, formatIp } from './net.js';
export type { IpAddress, IpFamily } from './net.js';
