import { defineError } from '@rvpn/config';

// TUN/TAP device
export const TunOpenError = defineError('RVPN_ERR_TUN_OPEN', 'The TUN/TAP device could not be created: the process needs root or CAP_NET_ADMIN and /dev/net/tun (in a pod: the device mounted and NET_ADMIN granted).');
export const TunClosedError = defineError('RVPN_ERR_TUN_CLOSED', 'A packet was written to a closed device: a bug in the caller, or the process is stopping.');
export const TunCarrierError = defineError('RVPN_ERR_TUN_CARRIER', 'Setting the carrier failed (TUNSETCARRIER needs Linux 5.0 or newer).');
export const TunOffloadError = defineError('RVPN_ERR_TUN_OFFLOAD', 'Switching checksum offload and TSO on the TUN device failed (TUNSETOFFLOAD); set TUNNEL_OFFLOAD=false to run without it.');
export const SocketOptionError = defineError('RVPN_ERR_SOCKET_OPTION', 'A socket option could not be set (setsockopt failed; errno in the details): the relay runs on with the kernel defaults for that socket.');
export const RelayError = defineError('RVPN_ERR_RELAY_HANDOVER', 'Two sockets could not be handed to the native relay (no descriptor, bytes still queued for writing, or dup failed; errno in the details): sni-proxy pipes that connection through Node streams instead.');
export const TunAddonError = defineError('RVPN_ERR_TUN_ADDON', 'The native TUN addon is not built or does not load: run the build (pnpm build) on the target machine.');
// Host network configuration
export const NetCommandError = defineError('RVPN_ERR_NET_COMMAND', 'An ip or nft command failed: the command, exit code and stderr are in the log; usually a missing capability or a conflicting route.');
export const NetToolMissingError = defineError('RVPN_ERR_NET_TOOL_MISSING', 'iproute2 (ip) or nftables (nft) is not installed in the image or on the host.');
// Wire protocol and sessions
export const ProtoVersionError = defineError('RVPN_ERR_PROTO_VERSION', 'The peer speaks another major protocol version: upgrade the older side (minor versions interoperate).');
export const ProtoMalformedError = defineError('RVPN_ERR_PROTO_MALFORMED', 'The peer sent bytes that are not a valid frame (wrong port, or a broken peer); the connection was closed.');
export const ProtoFrameTooLargeError = defineError('RVPN_ERR_PROTO_FRAME_TOO_LARGE', 'The peer announced a frame above the protocol limit (1 MiB; 64 KiB before the handshake completed); the session was closed at once. A broken or hostile peer: check its version and logs.');
export const ProtoHandshakeError = defineError('RVPN_ERR_PROTO_HANDSHAKE', 'The tunnel handshake did not complete (timeout, closed connection, or an invalid HELLO).');
export const TunnelPeerDeadError = defineError('RVPN_ERR_TUNNEL_PEER_DEAD', 'Nothing was received from the peer within the keepalive timeout; the session was closed and will be re-established.');
export const TunnelClosedError = defineError('RVPN_ERR_TUNNEL_CLOSED', 'The tunnel connection was closed by the peer or the network.');
export const TunnelUnauthorizedError = defineError('RVPN_ERR_TUNNEL_UNAUTHORIZED', "The peer's certificate is from the right CA but names another identity (common name or shoot URI): check which shoot the client belongs to.");
export const TunnelConfigMismatchError = defineError('RVPN_ERR_TUNNEL_CONFIG_MISMATCH', 'Both ends must agree on VPN_NETWORK and roles; the HELLO showed a mismatch.');
export const TunnelTlsError = defineError('RVPN_ERR_TUNNEL_TLS', 'The TLS handshake failed: wrong CA, expired certificate or a server name mismatch.');
export const TunnelOverloadedError = defineError('RVPN_ERR_TUNNEL_OVERLOADED', 'The tunnel listener refused a connection because TUNNEL_MAX_PENDING_HANDSHAKES handshakes were already in progress (a flood, or a slow network); the client retries with backoff. Raise the limit only if legitimate clients are refused.');
export const TunnelAcceptError = defineError('RVPN_ERR_TUNNEL_ACCEPT', 'The tunnel listener could not accept a connection (EMFILE/ENFILE: out of file descriptors); it keeps listening. Check the fd limit and who holds the connections.');
export const TunnelListenError = defineError('RVPN_ERR_TUNNEL_LISTEN', 'The tunnel listener could not bind its address: another process holds the port.');
