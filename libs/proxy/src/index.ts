/**
 * @rvpn/proxy: the proxy wire formats shared by sni-proxy, vpn-seed-server and the tunnel client.
 *
 *   import { dialViaConnect } from '@rvpn/proxy';
 *   const { socket } = await dialViaConnect({ proxyHost: '198.18.0.10', proxyPort: 8443,
 *     target: 'vpn-seed-server:1194', headers: { 'X-Gardener-Destination': 'outbound|1194||vpn-seed-server.ns.svc.cluster.local' } });
 */
export { dialViaConnect } from './connect-client.js';
export type { ConnectDialOptions, ConnectDialResult } from './connect-client.js';
export { ProxyDialError, ProxyStatusError, ProxyTimeoutError, ProxyProtocolError } from './errors.js';
