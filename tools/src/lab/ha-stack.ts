/**
 * The HA system on the HA lab topology: sni-proxy, two HA vpn-seed-servers (userspace switches), two
 * vpn-shoot pods bonded to both servers through sni-proxy, and two "kube-apiserver" pods, each with a
 * path-controller that owns the pod's bond endpoint, probes both shoot pods and serves the local
 * CONNECT proxy on 127.0.0.1:9443. With `images`, every app runs as a container from its image, as the
 * Kubernetes manifests say (lab/containers.ts); the path-controllers as the kube-apiserver pods' sidecars.
 * With `overlap` (issue 12, `pnpm demo --overlap --ha`, processes only) the seed uses the shoot's
 * ranges (OVERLAP_ADDR, the seed pods in 100.96.0.0/24): every app gets the seed's networks and the
 * bonds carry mapped shoot addresses.
 */
import { mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, createShootPki, issueCertificate, writePkiFiles } from '@rvpn/pki';
import { ADDR, Topology, type Role } from './topology.js';
import { run, spawnLogged, waitFor, type RunResult, type Spawned } from './sh.js';
import { awaitHealthy, killAll, spawnFixture, statusCode, statusText, stopProcess, type AppHandle, type StatusPath } from './procs.js';
import { PodRuntime, type ContainerHandle } from './containers.js';
import { OVERLAP_NET_ENV, SHOOT_NAMESPACE, connectHeaderValue } from './stack.js';
import { appArgv, appProcessEnv, type BundledApp } from './paths.js';

export type HaApp = 'sni-proxy' | 'vpn-seed-server-0' | 'vpn-seed-server-1' | 'vpn-shoot-0' | 'vpn-shoot-1' | 'path-controller-0' | 'path-controller-1';
export const HA_APPS: HaApp[] = ['sni-proxy', 'vpn-seed-server-0', 'vpn-seed-server-1', 'vpn-shoot-0', 'vpn-shoot-1', 'path-controller-0', 'path-controller-1'];

const where: Record<HaApp, { role: Role; bin: BundledApp; status: number }> = {
  'sni-proxy': { role: 'lb', bin: 'sni-proxy', status: 15021 },
  'vpn-seed-server-0': { role: 'srv0', bin: 'vpn-seed-server', status: 15000 },
  'vpn-seed-server-1': { role: 'srv1', bin: 'vpn-seed-server', status: 15000 },
  'vpn-shoot-0': { role: 'vsh0', bin: 'vpn-shoot', status: 15000 },
  'vpn-shoot-1': { role: 'vsh1', bin: 'vpn-shoot', status: 15000 },
  'path-controller-0': { role: 'kapi0', bin: 'path-controller', status: 15000 },
  'path-controller-1': { role: 'kapi1', bin: 'path-controller', status: 15000 },
};

const seedServerHeader = (i: number) => `outbound|1194||vpn-seed-server-${i}.${SHOOT_NAMESPACE}.svc.cluster.local`;

export class HaStack {
  readonly topo: Topology;
  readonly dir: string;
  readonly procs = new Map<string, Spawned>();
  keepWorkDir = false;
  /** The container side (`images`); undefined for processes. */
  readonly pods: PodRuntime | undefined;
  /** The lab's certificate files by name (as written to <dir>/pki). */
  pkiFiles: Record<string, string> = {};
  /** The routes sni-proxy was given. */
  routes: unknown = {};
  private up = false;
  /** The teardown under way or done (down()). */
  private downing: Promise<void> | undefined;
  private readonly log: (l: string) => void;

  constructor(opts: { prefix?: string; log?: (l: string) => void; logLevel?: string; env?: Partial<Record<HaApp, Record<string, string>>>; images?: boolean; overlap?: boolean } = {}) {
    if (opts.overlap && opts.images) throw new Error('the overlapping HA lab runs processes only (the container lab does not pass the seed networks to its pods yet)');
    this.topo = new Topology(opts.prefix, { ha: true, overlap: opts.overlap ?? false });
    this.dir = mkdtempSync(join(tmpdir(), `${this.topo.prefix}-`));
    this.topo.trackWorkDir(this.dir);
    this.log = opts.log ?? (() => undefined);
    this.logLevel = opts.logLevel ?? 'info';
    this.explicitLogLevel = opts.logLevel !== undefined;
    this.extraEnv = opts.env ?? {};
    this.pods = opts.images
      ? new PodRuntime({
          prefix: this.topo.prefix, dir: this.dir, mode: { ha: true, direction: 'reversed' },
          netns: (p) => this.topo.ns[p.role], logFile: (n) => this.logFile(n),
          pkiFiles: () => this.pkiFiles, routes: () => this.routes, log: this.log,
        })
      : undefined;
  }
  private readonly logLevel: string;
  private readonly explicitLogLevel: boolean;
  private readonly extraEnv: Partial<Record<HaApp, Record<string, string>>>;

  file(name: string): string {
    return join(this.dir, 'pki', name);
  }

  logFile(name: string): string {
    return join(this.dir, `${name}.log`);
  }

  ns(app: HaApp): string {
    return this.topo.ns[where[app].role];
  }

  async start(): Promise<void> {
    try {
      await this.pods?.preflight();
    } catch (err) {
      rmSync(this.dir, { recursive: true, force: true }); // nothing was started
      throw err;
    }
    this.up = true;
    try {
      this.log(`creating HA topology ${this.topo.prefix}${this.pods ? ' (apps as containers)' : ''}`);
      await this.topo.create();
      await this.pods?.applyServices();
      this.log('issuing certificates (per-shoot CA, HA server names, per-index shoot clients)');
      const pki = await createShootPki({ namespace: SHOOT_NAMESPACE, haServers: 2, haClients: 2 });
      const labCa = await createCa({ commonName: 'rvpn-lab-fixtures' });
      const kubelet = await issueCertificate(labCa, { commonName: 'kubelet', usage: 'server', ipAddresses: [ADDR.nodeIp] });
      this.pkiFiles = {
        'ca.crt': pki.ca.certPem, 'server.crt': pki.server.certPem, 'server.key': pki.server.keyPem,
        'shoot-0.crt': pki.shootClients[0]!.certPem, 'shoot-0.key': pki.shootClients[0]!.keyPem,
        'shoot-1.crt': pki.shootClients[1]!.certPem, 'shoot-1.key': pki.shootClients[1]!.keyPem,
        'seed-client.crt': pki.seedClient.certPem, 'seed-client.key': pki.seedClient.keyPem,
        'proxy-server.crt': pki.proxyServer.certPem, 'proxy-server.key': pki.proxyServer.keyPem,
        'proxy-client.crt': pki.proxyClient.certPem, 'proxy-client.key': pki.proxyClient.keyPem,
        'lab-ca.crt': labCa.certPem, 'kubelet.crt': kubelet.certPem, 'kubelet.key': kubelet.keyPem,
      };
      await writePkiFiles(join(this.dir, 'pki'), this.pkiFiles);
      const srv = this.topo.haAddr.srv;
      const routes = { connect: { [seedServerHeader(0)]: `${srv[0]}:1194`, [seedServerHeader(1)]: `${srv[1]}:1194`, [connectHeaderValue(SHOOT_NAMESPACE)]: `${srv[0]}:1194` } };
      this.routes = routes;
      writeFileSync(join(this.dir, 'routes.json.tmp'), JSON.stringify(routes, null, 2));
      renameSync(join(this.dir, 'routes.json.tmp'), join(this.dir, 'routes.json'));
      this.log('starting fixtures: pod HTTP :8080, kubelet HTTPS :10250');
      this.fixture('pod', 'pod', `${ADDR.pod}:${ADDR.podPort}`);
      this.fixture('pod6', 'pod', `[${ADDR.podV6}]:${ADDR.podPort}`);
      this.fixture('kubelet', 'node', `${ADDR.nodeIp}:${ADDR.kubeletPort}`, true);
      for (const app of HA_APPS) await this.startApp(app);
      this.log('waiting until both path-controllers route through a shoot pod');
      await Promise.all(['path-controller-0', 'path-controller-1'].map((a) => this.waitReady(a as HaApp, 30_000)));
      this.log('ready');
    } catch (err) {
      // down() during the start (a Ctrl-C) is no failure to keep logs for
      if (!this.up) throw new Error(`start interrupted: ${(err as Error).message}`, { cause: err });
      this.keepWorkDir = true;
      await this.down();
      throw new Error(`${(err as Error).message}\n(logs and certificates kept in ${this.dir})`, { cause: err });
    }
  }

  env(app: HaApp): Record<string, string> {
    const common = {
      NAMESPACE: SHOOT_NAMESPACE, IS_HA: 'true', LOG_LEVEL: this.logLevel, TLS_CA_FILE: this.file('ca.crt'),
      // HA links: a silent server is noticed after half a second (the non-HA default is one second)
      KEEPALIVE_INTERVAL: '100ms', KEEPALIVE_TIMEOUT: '500ms',
      IP_FAMILIES: 'IPv4,IPv6',
      SHOOT_SERVICE_NETWORKS: ADDR.shootServiceNetworks, SHOOT_POD_NETWORKS: `${ADDR.shootPodNetworks},${ADDR.shootPodNetworkV6}`, SHOOT_NODE_NETWORKS: ADDR.shootNodeNetworks,
      // overlapping: the seed's networks go to every app (the switches guard their ports with the mapped ranges)
      ...(this.topo.overlap ? OVERLAP_NET_ENV : {}),
    };
    const srv = this.topo.haAddr.srv;
    const i = app.slice(-1);
    let env: Record<string, string>;
    if (app === 'sni-proxy') env = { ROUTES_FILE: join(this.dir, 'routes.json'), LOG_LEVEL: this.logLevel };
    else if (app.startsWith('vpn-seed-server')) env = { ...common, POD_NAME: app, SEED_POD_NETWORK: this.topo.overlap ? OVERLAP_NET_ENV.SEED_POD_NETWORK! : ADDR.seedPodNetwork, TLS_CERT_FILE: this.file('server.crt'), TLS_KEY_FILE: this.file('server.key') };
    else if (app.startsWith('vpn-shoot')) env = { ...common, POD_NAME: app, ENDPOINT: ADDR.lbWan, OPENVPN_PORT: '8132', EGRESS_INTERFACE: 'eth0', TLS_CERT_FILE: this.file(`shoot-${i}.crt`), TLS_KEY_FILE: this.file(`shoot-${i}.key`) };
    else env = {
      ...common, POD_NAME: `kube-apiserver-${i}`, TLS_CERT_FILE: this.file('seed-client.crt'), TLS_KEY_FILE: this.file('seed-client.key'),
      SEED_SERVERS: `${srv[0]}:1194,${srv[1]}:1194`, PROBE_TARGET: `${ADDR.service}:${ADDR.servicePort}`,
      PROXY_LISTEN: '127.0.0.1:9443', PROXY_TLS_CERT_FILE: this.file('proxy-server.crt'), PROXY_TLS_KEY_FILE: this.file('proxy-server.key'),
    };
    return { ...env, ...this.extraEnv[app] };
  }

  async startApp(app: HaApp, extra: Record<string, string> = {}): Promise<Spawned | ContainerHandle> {
    if (this.pods) {
      this.log(`starting ${app} in ${this.ns(app)} (container from ${this.pods.pod(app).spec.containers[0]!.image})`);
      const level: Record<string, string> = this.explicitLogLevel ? { LOG_LEVEL: this.logLevel } : {};
      const h = await this.pods.start(app, { ...level, ...this.extraEnv[app], ...extra });
      await awaitHealthy(app, h, () => this.status(app, 'healthz'));
      return h;
    }
    this.log(`starting ${app} in ${this.ns(app)}`);
    const p = spawnLogged(appArgv(where[app].bin), { ns: this.ns(app), env: appProcessEnv({ ...this.env(app), ...extra }), logFile: this.logFile(app) });
    this.procs.set(app, p);
    this.topo.trackPid(p.pid);
    await awaitHealthy(app, p, () => this.status(app, 'healthz'));
    return p;
  }

  private fixture(name: string, role: Role, listen: string, tls = false): void {
    this.procs.set(`fixture-${name}`, spawnFixture(this.topo, role, name, listen, { logFile: this.logFile(`fixture-${name}`), ...(tls ? { cert: this.file(`${name}.crt`), key: this.file(`${name}.key`) } : {}) }));
  }

  /** The running app (process or container), if any. */
  app(app: HaApp): AppHandle | undefined {
    return this.pods ? this.pods.running.get(app) : this.procs.get(app);
  }

  async stopApp(app: HaApp, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.pods) return this.pods.stop(app, signal);
    const p = this.procs.get(app);
    if (!p) return;
    this.procs.delete(app);
    await stopProcess(p, signal);
  }

  status(app: HaApp, path: StatusPath): Promise<number> {
    return statusCode(this.ns(app), this.statusPort(app), path);
  }

  statusBody(app: HaApp, path: StatusPath): Promise<string> {
    return statusText(this.ns(app), this.statusPort(app), path);
  }

  /** Where the app serves /healthz, /readyz and /metrics (a container: its manifest's probe port). */
  statusPort(app: HaApp): number {
    return this.pods ? this.pods.statusPort(app) : where[app].status;
  }

  async waitReady(app: HaApp, timeoutMs = 20_000): Promise<void> {
    await waitFor(`${app} /readyz`, async () => (await this.status(app, 'readyz')) === 200, timeoutMs, 50);
  }

  proxyArgs(): string[] {
    return ['--proxy', 'https://127.0.0.1:9443', '--proxy-cacert', this.file('ca.crt'), '--proxy-cert', this.file('proxy-client.crt'), '--proxy-key', this.file('proxy-client.key'), '--proxytunnel'];
  }

  /** curl from kube-apiserver pod i through its path-controller's local CONNECT proxy. */
  curlViaProxy(i: 0 | 1, url: string, extra: string[] = [], timeoutS = 10): Promise<RunResult> {
    return run(['curl', '-sS', '-m', String(timeoutS), '--cacert', this.file('lab-ca.crt'), ...this.proxyArgs(), ...extra, url], { ns: this.topo.ns[i === 0 ? 'kapi0' : 'kapi1'], allowFail: true, timeoutMs: (timeoutS + 5) * 1000 });
  }

  /** Stops everything and removes the topology; a second call while the first is under way waits for it (Stack.down). */
  down(): Promise<void> {
    if (!this.up) return this.downing ?? Promise.resolve();
    this.up = false;
    this.downing = (async () => {
      for (const app of [...HA_APPS].reverse()) await this.stopApp(app).catch(() => undefined);
      await this.pods?.down();
      await killAll(this.procs);
      await this.topo.destroy();
      if (!this.keepWorkDir) rmSync(this.dir, { recursive: true, force: true });
    })();
    return this.downing;
  }
}
