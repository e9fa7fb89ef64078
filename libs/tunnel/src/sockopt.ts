/**
 * Socket buffer limits of the tunnel: caps per socket for a relay (sni-proxy), and the sysctls of the
 * endpoints' pods (TUNNEL_TCP_SYSCTLS, at the end). Node exposes neither SO_RCVBUF nor
 * TCP_NOTSENT_LOWAT on a TCP socket, so the caps are set on the fd libuv owns through the native addon.
 *
 * Why: a relay between two fast sockets otherwise lets the kernel autotune its receive buffer to
 * MiBs and fill its send buffer as far as the peer's window allows, so a tunnel's standing queue sits
 * in the relay's kernel (measured: 0.7 MiB received + 1.5 MiB unsent at 2 Gbit/s, 10-40 ms in front of
 * every ping), where no fair queue can reorder it. Capped, the queue moves back to the tunnel
 * endpoint's own flow-fair queue (fair-queue.ts).
 */
import type { Socket } from 'node:net';
import { loadNativeAddon, socketFd } from './addon.js';
import { SocketOptionError } from './errors.js';

// Linux constants (asm-generic/socket.h, netinet/tcp.h)
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const IPPROTO_TCP = 6;
const TCP_NOTSENT_LOWAT = 25;

export interface SocketBufferCaps {
  /** SO_RCVBUF in bytes (the kernel doubles it for its bookkeeping; autotuning stops). 0: leave it. */
  receiveBytes: number;
  /** TCP_NOTSENT_LOWAT: unsent bytes above which the socket stops being writable. 0: leave it. */
  notSentLowatBytes: number;
}

/**
 * Applies the caps to a connected TCP socket. Returns what was set; throws a coded error
 * (RVPN_ERR_TUN_ADDON when the addon is missing, RVPN_ERR_SOCKET_OPTION with the errno) when it cannot.
 */
export function capSocketBuffers(socket: Socket, caps: SocketBufferCaps): { receive: boolean; notSentLowat: boolean } {
  const fd = socketFd(socket);
  if (fd === undefined) return { receive: false, notSentLowat: false };
  const { setSocketInt } = loadNativeAddon() as { setSocketInt(fd: number, level: number, name: number, value: number): boolean };
  const set = (level: number, name: number, value: number, what: string) => {
    try {
      setSocketInt(fd, level, name, value);
    } catch (err) {
      throw new SocketOptionError(`${what}=${value}: ${(err as Error).message}`, { cause: err, details: { errno: (err as { errno?: number }).errno } });
    }
  };
  if (caps.receiveBytes > 0) set(SOL_SOCKET, SO_RCVBUF, caps.receiveBytes, 'SO_RCVBUF');
  if (caps.notSentLowatBytes > 0) set(IPPROTO_TCP, TCP_NOTSENT_LOWAT, caps.notSentLowatBytes, 'TCP_NOTSENT_LOWAT');
  return { receive: caps.receiveBytes > 0, notSentLowat: caps.notSentLowatBytes > 0 };
}

/**
 * The TCP buffer lines of a tunnel endpoint's pod (vpn-seed-server, vpn-shoot), set by its privileged
 * init container in the pod's own network namespace only (never the host's). They keep the queue of a
 * tunnel at its sender, where the flow-fair send queue can manage it (fair-queue.ts), and
 * not in the kernel: socket receive buffers autotune to 6 MiB, and the receiving end of a saturated
 * tunnel (decrypt, TUN write) is its slowest stage, so a ping waited behind a megabyte of a bulk flow
 * in vpn-shoot's receive queue (measured: ping under one iperf3 stream 10-15 ms avg, 25-34 ms p99;
 * with these 6-7 ms and 14-18 ms, the same throughput). TCP_NOTSENT_LOWAT keeps unsent bytes out of
 * the kernel's send buffer for the same reason (docs/architecture.md, "The tunnel inside one process").
 */
export const TUNNEL_TCP_SYSCTLS = { 'net.ipv4.tcp_rmem': '4096 131072 262144', 'net.ipv4.tcp_notsent_lowat': '32768' } as const;

/**
 * Per-socket caps for the tunnel endpoints of the HA path, which cannot rely on pod sysctls: the HA
 * seed server (no privilege, no init step), path-controller (it shares the kube-apiserver's network
 * namespace, whose own connections keep the kernel defaults) and vpn-shoot in HA (its sysctls are
 * TUNNEL_TCP_SYSCTLS; SO_RCVBUF overrides them for its tunnel sockets only). Smaller than the sysctls:
 * the HA path moves Ethernet frames one by one (no offload) at a third of the plain path's rate, so
 * the same bytes of buffer are three times the delay. Measured on the HA lab, one iperf3 stream
 * kube-apiserver-0 → shoot pod and a ping every 50 ms beside it, three rounds each (2026-12-01):
 * uncapped 8.2-9.5 ms ping avg, 128 KiB 7.9-9.0, 64 KiB 7.4-7.5, 32 KiB 4.7-6.2 at the same 0.6-0.8
 * Gbit/s, 16 KiB 6.6-8.2 at 0.42-0.48 Gbit/s. SO_RCVBUF 32 KiB becomes a 64 KiB buffer.
 */
export const TUNNEL_SOCKET_CAPS: SocketBufferCaps = { receiveBytes: 32_768, notSentLowatBytes: 16_384 };

/**
 * capSocketBuffers for a tunnel's own socket: a failure (no addon, a refused option) is reported to
 * `onError` and the tunnel runs on with the kernel's defaults.
 */
export function capTunnelSocket(socket: Socket, caps: SocketBufferCaps | undefined, onError: (err: Error) => void): void {
  if (!caps) return;
  try {
    capSocketBuffers(socket, caps);
  } catch (err) {
    onError(err as Error);
  }
}
