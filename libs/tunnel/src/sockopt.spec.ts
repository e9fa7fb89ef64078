import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { capSocketBuffers } from './sockopt.js';

/** The receive buffer the kernel reports for the local end of the connection on `port` (ss skmem rb). */
function rcvbuf(localPort: number): number {
  const out = execFileSync('ss', ['-tmnH', 'state', 'established', `sport = :${localPort}`], { encoding: 'utf8' });
  return Number(/rb(\d+)/.exec(out)?.[1] ?? NaN);
}

describe('capSocketBuffers', () => {
  it('sets SO_RCVBUF (the kernel reports it doubled) and TCP_NOTSENT_LOWAT on a connected socket', async () => {
    const server = net.createServer((s) => s.on('data', () => undefined));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const client = net.connect(port, '127.0.0.1');
    await new Promise((r) => client.once('connect', r));
    try {
      const before = rcvbuf(client.localPort!);
      expect(capSocketBuffers(client, { receiveBytes: 32768, notSentLowatBytes: 16384 })).toEqual({ receive: true, notSentLowat: true });
      expect(rcvbuf(client.localPort!)).toBe(65536);
      expect(before).not.toBe(65536);
      // 0 leaves an option alone
      expect(capSocketBuffers(client, { receiveBytes: 0, notSentLowatBytes: 0 })).toEqual({ receive: false, notSentLowat: false });
      // a closed socket has no fd: nothing to set
      client.destroy();
      await new Promise((r) => client.once('close', r));
      expect(capSocketBuffers(client, { receiveBytes: 65536, notSentLowatBytes: 16384 })).toEqual({ receive: false, notSentLowat: false });
    } finally {
      client.destroy();
      server.close();
    }
  });

  it('names a failed setsockopt with RVPN_ERR_SOCKET_OPTION and the errno (here: a file descriptor that is no socket)', async () => {
    const { openSync, closeSync } = await import('node:fs');
    const fd = openSync('/dev/null', 'r');
    try {
      const notASocket = { _handle: { fd } } as unknown as net.Socket;
      expect(() => capSocketBuffers(notASocket, { receiveBytes: 32768, notSentLowatBytes: 0 })).toThrow(expect.objectContaining({ code: 'RVPN_ERR_SOCKET_OPTION', details: { errno: 88 } }));
    } finally {
      closeSync(fd);
    }
  });
});

