/**
 * @rvpn/tunnel: the tunnel — TUN/TAP device (native addon), wire protocol over TLS 1.3, sessions,
 * dialer and listener, and the data path between device and session.
 *
 *   const device = openTunDevice({ name: 'tun0' });
 *   const datapath = new TunnelDataPath({ device, inboundFilter: { allowSource: shootNets } });
 *   datapath.start();
 *   const listener = new TunnelListener({ host: '0.0.0.0', port: 1194, tls, hello,
 *     authorize: authorizeByIdentity({ allowedCommonNames: ['vpn-shoot-client'], requiredUri }),
 *     onSession: (s) => datapath.attach(s) });
 *   await listener.start();
 */
export { packBatch, packGsoBatch, unpackBatch, countPackets, VNET_HDR_BYTES, VNET_F_NEEDS_CSUM, VNET_F_DATA_VALID, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_GSO_ECN } from './device.js';
export type { PacketDevice, DeviceMode } from './device.js';
export { coalesceTcp, MAX_COALESCED_BYTES } from './gro.js';
export { splitGso } from './gso-split.js';
export type { CoalesceStats } from './gro.js';
export { openTunDevice } from './tun.js';
export type { TunDevice, TunStats, OpenTunOptions } from './tun.js';
export { NetConfig, routeArgs } from './netconfig.js';
export type { RouteSpec, NetConfigOptions, NetLogger } from './netconfig.js';
export {
  PROTOCOL_MAJOR,
  PROTOCOL_MINOR,
  FEATURE_GSO,
  MAX_FRAME_PAYLOAD,
  MAX_HELLO_PAYLOAD,
  MAX_PEER_TEXT,
  OTHER_CODE,
  knownCode,
  peerText,
  decodePing,
  DEFAULT_KEEPALIVE_INTERVAL_MS,
  DEFAULT_KEEPALIVE_TIMEOUT_MS,
  FrameType,
  FrameParser,
  CloseReason,
  encodeHello,
  decodeHello,
  decodeError,
} from './protocol.js';
export type { Role, TunnelAssignment, HelloBody, Hello } from './protocol.js';
export { TunnelSession, establishSession } from './session.js';
export type { LocalHello, PeerHello, SessionEnd, SessionStats, EstablishOptions } from './session.js';
export { filterBatch, checkPacket, checkVnetHeader, ipv6UpperLayer, MAX_EXT_HEADERS } from './filter.js';
export type { FilterRules, FilterResult, FilterDropReason } from './filter.js';
export { TunnelDataPath } from './datapath.js';
export { SessionSender, DEFAULT_SESSION_BUFFER_BYTES } from './sender.js';
export type { SessionSenderOptions, SenderDropReason } from './sender.js';
export { FairQueue, flowHash, markCe } from './fair-queue.js';
export type { FairQueueOptions, FairQueueStats } from './fair-queue.js';
export { seedMappingChain, shootMappingChain, shootMappingForwardRules, translatedNetworks, conntrackFlushTargets, flushMappedConntrack, seedPodTunnelNetwork } from './mapping-nat.js';
export type { TunnelDataPathOptions, DropReason } from './datapath.js';
export {
  TunnelListener,
  authorizeByIdentity,
  acceptErrorLabel,
  DEFAULT_MAX_PENDING_HANDSHAKES,
  DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  REFUSAL_LOG_INTERVAL_MS,
} from './listener.js';
export type { TunnelListenerOptions, TlsMaterial, AuthorizeResult, TunnelLogger } from './listener.js';
export { TunnelDialer } from './dialer.js';
export type { TunnelDialerOptions, DialerState } from './dialer.js';
export { backoffDelay } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export {
  TunOpenError,
  TunClosedError,
  TunCarrierError,
  TunAddonError,
  NetCommandError,
  NetToolMissingError,
  ProtoVersionError,
  ProtoMalformedError,
  ProtoFrameTooLargeError,
  ProtoHandshakeError,
  TunnelPeerDeadError,
  TunnelClosedError,
  TunnelUnauthorizedError,
  TunnelConfigMismatchError,
  TunnelTlsError,
  TunnelListenError,
  TunnelOverloadedError,
  TunnelAcceptError,
  RelayError,
} from './errors.js';
export { TUNNEL_TCP_SYSCTLS, TUNNEL_SOCKET_CAPS } from './sockopt.js';
export type { SocketBufferCaps } from './sockopt.js';
export { relaySockets, relayTotals, type RelayEnd, type RelayEndReason, type RelayOptions, type RelayTotals, type SocketRelay } from './relay.js';
export { tcpProbe, tcpProbesActive, type TcpProbeOptions, type TcpProbeResult } from './probe.js';
export { HeapTrimmer, nativeMallocTrim, withHeapTrim, type HeapTrimDeps, type HeapTrimEvent, type HeapTrimOptions } from './heap-trim.js';
