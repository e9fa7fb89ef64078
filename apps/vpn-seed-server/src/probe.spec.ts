import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { probeTcpPath } from './probe.js';

describe('probeTcpPath', () => {
  it('counts an accepted connection and a refusal as a working path', async () => {
    const srv = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    expect((await probeTcpPath({ host: '127.0.0.1', port, timeoutMs: 2000 })).ok).toBe(true);
    await new Promise<void>((r) => srv.close(() => r()));
    const refused = await probeTcpPath({ host: '127.0.0.1', port, timeoutMs: 2000 });
    expect(refused).toEqual({ ok: true, detail: '127.0.0.1 answered (refused)' });
  });
});
