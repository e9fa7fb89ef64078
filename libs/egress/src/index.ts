/**
 * @rvpn/egress: the mTLS HTTP CONNECT proxy the kube-apiserver uses to reach the shoot
 * (egress selector `cluster`, HTTPConnect to https://vpn-seed-server:9443).
 *
 *   const gate = new PathGate();
 *   const proxy = createEgressProxy({ host: '0.0.0.0', port: 9443, tls: () => material,
 *     allowedCommonNames: ['kube-apiserver-http-proxy-client'], allowedDestinations: shootNets,
 *     gate, holdTimeoutMs: 7000, maxPending: 1000, dialTimeoutMs: 5000 });
 *   await proxy.start();
 *   gate.set(true); // when the tunnel's data path works
 */
export { createEgressProxy, createDialer, parseAuthority } from './egress-proxy.js';
export type { Dialer, EgressProxy, EgressProxyOptions, EgressOutcome, EgressTls, EgressLogger } from './egress-proxy.js';
export { PathGate } from './path-gate.js';
export { proxyDestinationMapper } from './mapped-destination.js';
export { EgressListenError, EgressTlsConfigError } from './errors.js';
