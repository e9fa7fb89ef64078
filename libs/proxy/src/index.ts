/**
 * @rvpn/proxy: the proxy wire formats shared by sni-proxy, vpn-seed-server and the tunnel client:
 * HTTP/1.x CONNECT (client dialing, server head parsing), TLS ClientHello SNI, PROXY protocol v1/v2.
 *
 *   import { dialViaConnect } from '@rvpn/proxy';
 *   const { socket } = await dialViaConnect({ proxyHost: '198.18.0.10', proxyPort: 8443,
 *     target: 'vpn-seed-server:1194', headers: { 'X-Gardener-Destination': 'outbound|1194||vpn-seed-server.ns.svc.cluster.local' } });
 */
export { dialViaConnect } from './connect-client.js';
export type { ConnectDialOptions, ConnectDialResult } from './connect-client.js';
export { readRequestHead, parseRequestHead, writeStatus, statusForHeadError, HeadScanner } from './connect-head.js';
export type { RequestHead, ReadHeadOptions } from './connect-head.js';
export { readClientHello, clientHelloLength, parseServerName, serverNameOfBody, ClientHelloScanner } from './sni.js';
export { readProxyHeader, parseProxyHeader, proxyHeaderLength, encodeProxyV1, encodeProxyV2, ProxyHeaderScanner, V1_MAX_BYTES, V2_MAX_BYTES } from './proxy-protocol.js';
export type { ProxyHeader } from './proxy-protocol.js';
export { readPrefix } from './read-prefix.js';
export { ConnectionLimits, sourceKey } from './limits.js';
export type { Admission, ConnectionLimitsOptions, LimitRefusal } from './limits.js';
export type { PrefixScanner, ReadPrefixOptions } from './read-prefix.js';
export {
  ProxyDialError,
  ProxyStatusError,
  ProxyTimeoutError,
  ProxyProtocolError,
  HeadTimeoutError,
  HeadTooLargeError,
  HeadMalformedError,
  ProxyProtocolHeaderError,
  ClientHelloError,
  RoutesInvalidError,
} from './errors.js';
