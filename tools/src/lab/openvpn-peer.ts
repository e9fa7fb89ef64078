/**
 * OpenVPN 2.6 as the benchmarks' peer, frozen to vpn2's data plane (proto tcp, AES-256-GCM, no DCO,
 * through an HTTP proxy with the Reversed-VPN header): its server in the lab's vpn-seed-server
 * namespace, its client in vpn-shoot's, dialing out through the lab's own sni-proxy exactly as ours
 * does. While it runs, the seed pod's route to the shoot pod goes through its device (`ovpnb`, a /32
 * more specific than ours) and the shoot side masquerades its address; stop() removes both.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { issueCertificate, createCa, writePkiFiles } from '@rvpn/pki';
import { connectHeaderValue, type Stack } from './stack.js';
import { ADDR } from './topology.js';
import { run, sleep, spawnLogged, waitFor, type Spawned } from './sh.js';

const OVPN_NS = 'shoot--bench--openvpn';
const OVPN_SRV_IP = '192.168.123.1';
const OVPN_CLI_IP = '192.168.123.2';
/** The OpenVPN server's port on the seed pod (ours listens on 1194). */
export const OVPN_PORT = 1195;
/** OpenVPN's TUN device on both sides. */
export const OVPN_DEVICE = 'ovpnb';

export class OpenVpnPeer {
  private server: Spawned | undefined;
  private client: Spawned | undefined;
  constructor(private readonly stack: Stack) {}

  /** The processes of OpenVPN's path: its server and client, and the same sni-proxy as ours. */
  pathPids(): Record<string, number> {
    return { 'openvpn-server': this.server!.pid, 'sni-proxy': this.stack.procs.get('sni-proxy')!.pid, 'openvpn-client': this.client!.pid };
  }

  async start(): Promise<void> {
    const s = this.stack;
    const dir = join(s.dir, 'openvpn');
    const ca = await createCa({ commonName: 'openvpn-bench-ca' });
    const [srv, cli] = await Promise.all([
      issueCertificate(ca, { commonName: 'server', usage: 'server' }),
      issueCertificate(ca, { commonName: 'client', usage: 'client' }),
    ]);
    await writePkiFiles(dir, { 'ca.crt': ca.certPem, 'server.crt': srv.certPem, 'server.key': srv.keyPem, 'client.crt': cli.certPem, 'client.key': cli.keyPem });
    const common = ['dev-type tun', 'data-ciphers AES-256-GCM', 'data-ciphers-fallback AES-256-GCM', 'disable-dco', 'verb 3', `ca ${dir}/ca.crt`];
    writeFileSync(join(dir, 'server.conf'), [...common, `dev ${OVPN_DEVICE}`, 'proto tcp-server', `local ${ADDR.srv}`, `lport ${OVPN_PORT}`, `ifconfig ${OVPN_SRV_IP} ${OVPN_CLI_IP}`, 'tls-server', 'dh none', `cert ${dir}/server.crt`, `key ${dir}/server.key`].join('\n') + '\n');
    writeFileSync(join(dir, 'client.conf'), [...common, `dev ${OVPN_DEVICE}`, 'proto tcp-client', `remote ${ADDR.srv} ${OVPN_PORT}`,
      `http-proxy ${ADDR.lbWan} 8132`, `http-proxy-option CUSTOM-HEADER Reversed-VPN ${connectHeaderValue(OVPN_NS)}`,
      'nobind', 'connect-retry 1', `ifconfig ${OVPN_CLI_IP} ${OVPN_SRV_IP}`, 'tls-client', 'remote-cert-tls server', `cert ${dir}/client.crt`, `key ${dir}/client.key`].join('\n') + '\n');
    // sni-proxy routes OpenVPN's header to the OpenVPN server, exactly as it does for ours
    const routes = s.defaultRoutes();
    s.writeRoutes({ ...routes, connect: { ...routes.connect, [connectHeaderValue(OVPN_NS)]: `${ADDR.srv}:${OVPN_PORT}` } });
    await sleep(500);
    this.server = spawnLogged(['openvpn', '--config', join(dir, 'server.conf')], { ns: s.topo.ns.srv, logFile: s.logFile('openvpn-server') });
    s.topo.trackPid(this.server.pid);
    await sleep(500);
    this.client = spawnLogged(['openvpn', '--config', join(dir, 'client.conf')], { ns: s.topo.ns.vsh, logFile: s.logFile('openvpn-client') });
    s.topo.trackPid(this.client.pid);
    await waitFor('OpenVPN to connect', () => readFileSync(s.logFile('openvpn-client'), 'utf8').includes('Initialization Sequence Completed'), 30_000, 200);
    // the same target as ours: the pod, through the shoot side's forwarding and masquerade
    await run(['ip', 'route', 'add', `${ADDR.pod}/32`, 'dev', OVPN_DEVICE], { ns: s.topo.ns.srv });
    await run(['nft', '-f', '-'], { ns: s.topo.ns.vsh, input: `table ip rvbench {\n  chain post {\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname "eth0" ip saddr ${OVPN_SRV_IP} masquerade\n  }\n}\n` });
  }

  async stop(): Promise<void> {
    const s = this.stack;
    await run(['ip', 'route', 'del', `${ADDR.pod}/32`, 'dev', OVPN_DEVICE], { ns: s.topo.ns.srv, allowFail: true });
    await run(['nft', 'delete', 'table', 'ip', 'rvbench'], { ns: s.topo.ns.vsh, allowFail: true });
    for (const p of [this.client, this.server]) {
      if (!p) continue;
      p.child.kill('SIGTERM');
      await Promise.race([p.exited, sleep(3000)]);
      p.child.kill('SIGKILL');
    }
  }
}
