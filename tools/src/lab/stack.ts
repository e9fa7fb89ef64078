/**
 * The whole system on the local topology: certificates, the three apps and the fixtures, started as
 * real processes inside the namespaces — or, with `images`, every app as a container from its image,
 * run as the Kubernetes manifests say (lab/containers.ts). Used by `pnpm demo`, the e2e tests and `pnpm bench`.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, createShootPki, issueCertificate, seedServerDnsNames, writeSecretVolume } from '@rvpn/pki';
import { ADDR, OVERLAP_ADDR, Topology } from './topology.js';
import { run, spawnLogged, waitFor, type RunResult, type Spawned } from './sh.js';
import { appArgv, appProcessEnv, REPO_ROOT } from './paths.js';
import { awaitHealthy, killAll, spawnFixture, statusCode, statusText, stopProcess, type AppHandle, type StatusPath } from './procs.js';
import { PodRuntime, type ContainerHandle } from './containers.js';

export { REPO_ROOT };

export type AppName = 'sni-proxy' | 'vpn-seed-server' | 'vpn-shoot';
export type FixtureName = 'pod' | 'pod6' | 'kubelet' | 'apiserver';

export const SHOOT_NAMESPACE = 'shoot--demo--local';
export const API_SNI = 'api.demo.local.example';
export const connectHeaderValue = (ns: string) => `outbound|1194||vpn-seed-server.${ns}.svc.cluster.local`;

/** A shoot of the lab: its control-plane namespace in the seed (its identity) and its kube-apiserver's SNI name. */
export interface LabShoot {
  namespace: string;
  apiSni: string;
}
export const FIRST_SHOOT: LabShoot = { namespace: SHOOT_NAMESPACE, apiSni: API_SNI };
/** The second shoot of a two-shoot lab (`twoShoots`): another namespace and SNI name, the same networks. */
export const SECOND_SHOOT: LabShoot = { namespace: 'shoot--demo--twin', apiSni: 'api.demo.twin.example' };

/** Marks the options of the second shoot's stack, which joins its lab's (module-private). */
const LAB = Symbol("the two-shoot lab whose topology and sni-proxy this shoot's stack shares");

export interface StackOptions {
  prefix?: string;
  /** reversed: vpn-shoot dials out through sni-proxy (default); classic: the seed dials vpn-shoot's LoadBalancer. */
  direction?: 'reversed' | 'classic';
  /**
   * 8132 (Reversed-VPN header, vpn2's default) or 8443 (X-Gardener-Destination). Default: 8132 for
   * processes; with `images` the manifests' choice (8443, as Gardener).
   */
  connectPort?: 8132 | 8443;
  /**
   * Run every app as a container from its image (localhost/reversed-vpn/<app>, `pnpm images`) with the
   * capabilities, user, mounts and env of the Kubernetes manifests, instead of as a process.
   */
  images?: boolean;
  logLevel?: string;
  /**
   * The seed side on the shoot's ranges (Gardener's defaults on both, OVERLAP_ADDR): the tunnel carries
   * mapped addresses (issue 12). Reversed direction, processes only.
   */
  overlap?: boolean;
  /**
   * With `overlap`: a second shoot of the same seed on exactly the first one's ranges (`second`: its own
   * seed server, kube-apiserver, vpn-shoot and fixtures, through the same sni-proxy).
   */
  twoShoots?: boolean;
  [LAB]?: Stack;
  seedEnv?: Record<string, string>;
  shootEnv?: Record<string, string>;
  sniEnv?: Record<string, string>;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Keep the work directory (logs, certificates) after down(). */
  keepWorkDir?: boolean;
}

const APP_NS: Record<AppName, 'lb' | 'srv' | 'vsh'> = { 'sni-proxy': 'lb', 'vpn-seed-server': 'srv', 'vpn-shoot': 'vsh' };
const STATUS_PORT: Record<AppName, number> = { 'sni-proxy': 15021, 'vpn-seed-server': 15000, 'vpn-shoot': 15000 };

/**
 * The overlapping lab's network settings (every tunnel app gets them, the HA seed servers too): the
 * seed's networks are Gardener's defaults, like the shoot's, and the shoot's IPv6 pod network is a /40.
 */
export const OVERLAP_NET_ENV: Readonly<Record<string, string>> = {
  SHOOT_POD_NETWORKS: `${ADDR.shootPodNetworks},${OVERLAP_ADDR.shootPodNetworkV6}`,
  SEED_POD_NETWORK: OVERLAP_ADDR.seedPodNetwork,
  SEED_SERVICE_NETWORKS: OVERLAP_ADDR.seedServiceNetworks,
  SEED_NODE_NETWORKS: OVERLAP_ADDR.seedNodeNetworks,
};

export class Stack {
  readonly topo: Topology;
  readonly dir: string;
  readonly opts: StackOptions;
  readonly procs = new Map<string, Spawned>();
  /** The container side (`images`); undefined for processes. */
  readonly pods: PodRuntime | undefined;
  private readonly log: (line: string) => void;
  private up = false;
  /** The teardown under way or done (down()). */
  private downing: Promise<void> | undefined;
  /** Restart an app that exits on its own (what the kubelet does); the demo turns this on. */
  supervise = false;
  /** Keep the work directory (logs, certificates) after down(); set after a failed start. */
  keepWorkDir: boolean;
  /** Whose apps and fixtures these are. */
  readonly shoot: LabShoot;
  /**
   * A two-shoot lab's second shoot: started and stopped with this stack, sharing its topology (its
   * view `topo.second`) and sni-proxy; its work directory lies inside this one's.
   */
  readonly second: Stack | undefined;

  constructor(opts: StackOptions = {}) {
    this.opts = opts;
    if (opts.overlap && opts.images) throw new Error('the overlapping lab runs its apps as processes only (not --images)');
    if (opts.twoShoots && opts.direction === 'classic') throw new Error('the two-shoot lab runs the reversed direction (both shoots dial out through one sni-proxy)');
    if (opts.twoShoots && !opts.overlap) throw new Error('the two-shoot lab is an overlapping lab (overlap: true): the shoots overlap the seed and each other');
    const lab = opts[LAB];
    this.topo = lab ? lab.topo.second! : new Topology(opts.prefix, { overlap: opts.overlap ?? false, twoShoots: opts.twoShoots ?? false });
    this.shoot = lab ? SECOND_SHOOT : FIRST_SHOOT;
    this.dir = lab ? join(lab.dir, 'second-shoot') : mkdtempSync(join(tmpdir(), `${this.topo.prefix}-`));
    if (lab) mkdirSync(this.dir);
    this.topo.trackWorkDir(this.dir);
    this.log = opts.log ?? (() => undefined);
    this.keepWorkDir = opts.keepWorkDir ?? false;
    const log = this.log;
    this.second = this.topo.second ? new Stack({ ...opts, twoShoots: false, [LAB]: this, log: (l) => log(`${SECOND_SHOOT.namespace}: ${l}`) }) : undefined;
    this.pods = opts.images
      ? new PodRuntime({
          prefix: this.topo.prefix, dir: this.dir, mode: { ha: false, direction: this.direction },
          netns: (p) => this.topo.ns[p.role], logFile: (n) => this.logFile(n),
          pkiFiles: () => this.pkiFiles, routes: () => this.routes, log: this.log,
        })
      : undefined;
  }

  get direction() {
    return this.opts.direction ?? 'reversed';
  }

  file(name: string): string {
    return join(this.dir, 'pki', name);
  }

  logFile(name: string): string {
    return join(this.dir, `${name}.log`);
  }

  /** Creates the topology and certificates, starts fixtures and apps, waits until the data path is ready. */
  async start(): Promise<void> {
    try {
      await this.pods?.preflight();
    } catch (err) {
      rmSync(this.dir, { recursive: true, force: true }); // nothing was started
      throw err;
    }
    this.up = true;
    // the lab's stack builds the topology and runs sni-proxy; a second shoot's joins them
    const ownsLab = !this.topo.owner;
    try {
      if (ownsLab) {
        this.log(`creating topology ${this.topo.prefix} (${this.direction} direction${this.pods ? ', apps as containers' : ''}${this.second ? ', two shoots' : ''})`);
        await this.topo.create({ classic: this.direction === 'classic' });
        await this.pods?.applyServices();
      }
      this.log('issuing certificates (per-shoot CA, server, clients)');
      await this.writePki();
      if (ownsLab) await this.writeRoutes(this.defaultRoutes());
      this.log('starting fixtures: pod HTTP :8080, kubelet HTTPS :10250, apiserver HTTPS :443');
      this.startFixture('pod', 'pod', `${ADDR.pod}:${ADDR.podPort}`);
      this.startFixture('pod6', 'pod', `[${ADDR.podV6}]:${ADDR.podPort}`);
      this.startFixture('kubelet', 'node', `${ADDR.nodeIp}:${ADDR.kubeletPort}`, true);
      this.startFixture('apiserver', 'kapi', `${this.topo.seed.kapi}:443`, true);
      if (ownsLab && this.direction === 'reversed') await this.startApp('sni-proxy');
      await this.startApp('vpn-seed-server');
      await this.startApp('vpn-shoot');
      await this.second?.start();
      this.log('waiting for the data path (vpn-seed-server /readyz probes through the tunnel)');
      await this.waitReady('vpn-seed-server', 30_000);
      this.log('ready');
    } catch (err) {
      // down() during the start (a Ctrl-C) is no failure to keep logs for
      if (!this.up) throw new Error(`start interrupted: ${(err as Error).message}`, { cause: err });
      this.keepWorkDir = true;
      await this.down();
      throw new Error(`${(err as Error).message}\n(logs and certificates kept in ${this.dir})`, { cause: err });
    }
  }

  private async writePki(): Promise<void> {
    const { namespace } = this.shoot;
    const pki = await createShootPki({ namespace });
    const labCa = await createCa({ commonName: 'rvpn-lab-fixtures' });
    const [proxyServer, shootServer, seedDialer, kubelet, apiserver, otherShoot] = await Promise.all([
      // the CONNECT proxy certificate also names the pod IP the lab's curl dials
      issueCertificate(pki.ca, { commonName: 'vpn-seed-server', usage: 'server', dnsNames: seedServerDnsNames(namespace), ipAddresses: [this.topo.seed.srv], uris: [`urn:rvpn:shoot:${namespace}`] }),
      // classic direction: vpn-shoot is the TLS server, the seed server the client
      issueCertificate(pki.ca, { commonName: 'vpn-shoot', usage: 'server', dnsNames: ['vpn-shoot'], uris: [`urn:rvpn:shoot:${namespace}`] }),
      issueCertificate(pki.ca, { commonName: 'vpn-seed-client', usage: 'client', uris: [`urn:rvpn:shoot:${namespace}`] }),
      issueCertificate(labCa, { commonName: 'kubelet', usage: 'server', ipAddresses: [ADDR.nodeIp] }),
      issueCertificate(labCa, { commonName: 'kube-apiserver', usage: 'server', dnsNames: [this.shoot.apiSni] }),
      // a second shoot's PKI, for the "another shoot's certificate is refused" tests
      createShootPki({ namespace: 'shoot--other--local' }),
    ]);
    // same CA, but bound to another shoot's identity (the URI SAN)
    const sameCaOtherShoot = await issueCertificate(pki.ca, { commonName: 'vpn-shoot-client', usage: 'client', uris: ['urn:rvpn:shoot:shoot--other--local'] });
    const foreignCa = await createShootPki({ namespace });
    this.pkiFiles = {
      'ca.crt': pki.ca.certPem,
      'server.crt': pki.server.certPem, 'server.key': pki.server.keyPem,
      'proxy-server.crt': proxyServer!.certPem, 'proxy-server.key': proxyServer!.keyPem,
      'shoot-client.crt': pki.shootClient.certPem, 'shoot-client.key': pki.shootClient.keyPem,
      'proxy-client.crt': pki.proxyClient.certPem, 'proxy-client.key': pki.proxyClient.keyPem,
      'shoot-server.crt': shootServer!.certPem, 'shoot-server.key': shootServer!.keyPem,
      'seed-dialer.crt': seedDialer!.certPem, 'seed-dialer.key': seedDialer!.keyPem,
      'lab-ca.crt': labCa.certPem,
      'kubelet.crt': kubelet!.certPem, 'kubelet.key': kubelet!.keyPem,
      'apiserver.crt': apiserver!.certPem, 'apiserver.key': apiserver!.keyPem,
      'other-shoot-client.crt': otherShoot!.shootClient.certPem, 'other-shoot-client.key': otherShoot!.shootClient.keyPem,
      'other-ca.crt': otherShoot!.ca.certPem,
      'same-ca-other-shoot.crt': sameCaOtherShoot.certPem, 'same-ca-other-shoot.key': sameCaOtherShoot.keyPem,
      'foreign-ca-client.crt': foreignCa.shootClient.certPem, 'foreign-ca-client.key': foreignCa.shootClient.keyPem,
      'foreign-ca.crt': foreignCa.ca.certPem,
    };
    await writeSecretVolume(join(this.dir, 'pki'), this.pkiFiles);
  }

  /** The certificate files, laid out as a Kubernetes Secret volume (..data symlink) in <dir>/pki. */
  pkiFiles: Record<string, string> = {};

  /** Replaces some certificate files the way the kubelet updates a Secret volume (atomic symlink swap). */
  async updatePki(changes: Record<string, string>): Promise<void> {
    this.pkiFiles = { ...this.pkiFiles, ...changes };
    await writeSecretVolume(join(this.dir, 'pki'), this.pkiFiles);
    // containers: the Secret volumes that hold a changed file get a new ..data, as the kubelet does
    await this.pods?.refreshVolumes();
  }

  /** sni-proxy's routes to this shoot's kube-apiserver and seed server (and to the second shoot's). */
  defaultRoutes(): { sni: Record<string, string>; connect: Record<string, string> } {
    const second = this.second?.defaultRoutes();
    return {
      sni: { [this.shoot.apiSni]: `${this.topo.seed.kapi}:443`, ...second?.sni },
      connect: { [connectHeaderValue(this.shoot.namespace)]: `${this.topo.seed.srv}:1194`, ...second?.connect },
    };
  }

  /** The routes sni-proxy was last given. */
  routes: unknown = {};

  /**
   * Writes the sni-proxy route file atomically (the proxy watches it); for a container, the route
   * ConfigMap's volume gets a new ..data (await the promise to know it is there).
   */
  writeRoutes(routes: unknown): Promise<void> {
    this.routes = routes;
    const f = join(this.dir, 'routes.json');
    writeFileSync(`${f}.tmp`, JSON.stringify(routes, null, 2));
    renameSync(`${f}.tmp`, f);
    return this.pods?.refreshVolumes() ?? Promise.resolve();
  }

  private commonNetEnv(): Record<string, string> {
    return { ...this.commonNetEnvPlain(), ...(this.topo.overlap ? OVERLAP_NET_ENV : {}) };
  }

  private commonNetEnvPlain(): Record<string, string> {
    return {
      NAMESPACE: this.shoot.namespace,
      IP_FAMILIES: 'IPv4,IPv6',
      SHOOT_SERVICE_NETWORKS: ADDR.shootServiceNetworks,
      SHOOT_POD_NETWORKS: `${ADDR.shootPodNetworks},${ADDR.shootPodNetworkV6}`,
      SHOOT_NODE_NETWORKS: ADDR.shootNodeNetworks,
      SEED_POD_NETWORK: ADDR.seedPodNetwork,
      TLS_CA_FILE: this.file('ca.crt'),
      LOG_LEVEL: this.opts.logLevel ?? 'info',
    };
  }

  appEnv(name: AppName): Record<string, string> {
    const classic = this.direction === 'classic';
    switch (name) {
      case 'sni-proxy':
        return { ROUTES_FILE: join(this.dir, 'routes.json'), LOG_LEVEL: this.opts.logLevel ?? 'info', ...this.opts.sniEnv };
      case 'vpn-seed-server':
        return {
          ...this.commonNetEnv(),
          POD_NAME: 'vpn-seed-server-7d9c',
          TLS_CERT_FILE: this.file(classic ? 'seed-dialer.crt' : 'server.crt'),
          TLS_KEY_FILE: this.file(classic ? 'seed-dialer.key' : 'server.key'),
          PROXY_TLS_CERT_FILE: this.file('proxy-server.crt'),
          PROXY_TLS_KEY_FILE: this.file('proxy-server.key'),
          ...(classic ? { TUNNEL_MODE: 'dial', TUNNEL_DIAL_ADDRESS: `${ADDR.nodeWan}:4314`, CLIENT_ALLOWED_COMMON_NAMES: 'vpn-shoot' } : {}),
          ...this.opts.seedEnv,
        };
      case 'vpn-shoot': {
        const port = this.opts.connectPort ?? 8132;
        return {
          ...this.commonNetEnv(),
          POD_NAME: 'vpn-shoot-5f6b',
          TLS_CERT_FILE: this.file(classic ? 'shoot-server.crt' : 'shoot-client.crt'),
          TLS_KEY_FILE: this.file(classic ? 'shoot-server.key' : 'shoot-client.key'),
          EGRESS_INTERFACE: 'eth0',
          ...(classic
            ? { TUNNEL_MODE: 'listen' }
            : { ENDPOINT: ADDR.lbWan, OPENVPN_PORT: String(port), ...(port === 8443 ? { REVERSED_VPN_HEADER_KEY: 'X-Gardener-Destination' } : {}) }),
          ...this.opts.shootEnv,
        };
      }
    }
  }

  /**
   * Env the lab adds for a container over the manifest's: the stack's options (log level, connect
   * port, per-app overrides). The manifest's own values, file paths included, stay as rendered.
   */
  containerEnv(name: AppName): Record<string, string> {
    const level: Record<string, string> = this.opts.logLevel ? { LOG_LEVEL: this.opts.logLevel } : {};
    switch (name) {
      case 'sni-proxy':
        return { ...level, ...this.opts.sniEnv };
      case 'vpn-seed-server':
        return { ...level, ...this.opts.seedEnv };
      case 'vpn-shoot': {
        const port = this.direction === 'reversed' ? this.opts.connectPort : undefined;
        const connect: Record<string, string> = port ? { OPENVPN_PORT: String(port), REVERSED_VPN_HEADER_KEY: port === 8443 ? 'X-Gardener-Destination' : 'Reversed-VPN' } : {};
        return { ...level, ...connect, ...this.opts.shootEnv };
      }
    }
  }

  /** Starts (or restarts) one app; extra env overrides the stack's. */
  async startApp(name: AppName, extraEnv: Record<string, string> = {}): Promise<Spawned | ContainerHandle> {
    let p: Spawned | ContainerHandle;
    if (this.pods) {
      this.log(`starting ${name} in ${this.topo.ns[APP_NS[name]]} (container from ${this.pods.pod(name).spec.containers[0]!.image})`);
      p = await this.pods.start(name, { ...this.containerEnv(name), ...extraEnv });
    } else {
      const env = appProcessEnv({ ...this.appEnv(name), ...extraEnv });
      this.log(`starting ${name} in ${this.topo.ns[APP_NS[name]]}`);
      const s = spawnLogged(appArgv(name), { ns: this.topo.ns[APP_NS[name]], env, logFile: this.logFile(name) });
      this.procs.set(name, s);
      this.topo.trackPid(s.pid);
      p = s;
    }
    const current = () => (this.pods ? this.pods.running.get(name) : this.procs.get(name));
    void p.exited.then((e) => {
      if (!this.up || !this.supervise || current() !== p) return;
      this.log(`${name} exited (code ${e.code}, signal ${e.signal}); restarting it in 1 s, as the kubelet would`);
      if (this.pods) this.pods.forget(name, p as ContainerHandle);
      else this.procs.delete(name);
      setTimeout(() => {
        if (this.up) this.startApp(name, extraEnv).catch((err: Error) => this.log(`restart of ${name} failed: ${err.message}`));
      }, 1000);
    });
    await awaitHealthy(name, p, () => this.status(name, 'healthz'));
    return p;
  }

  /** The running app (process or container), if any. */
  app(name: AppName): AppHandle | undefined {
    return this.pods ? this.pods.running.get(name) : this.procs.get(name);
  }

  /**
   * The name a fixture answers with ("hello from <name>"): in a two-shoot lab it names its shoot, so
   * an answer shows which shoot it came from.
   */
  answerName(fixture: FixtureName): string {
    return this.topo.second || this.topo.owner ? `${fixture} in ${this.shoot.namespace}` : fixture;
  }

  startFixture(name: FixtureName, role: 'pod' | 'node' | 'kapi', listen: string, tls = false): Spawned {
    const p = spawnFixture(this.topo, role, this.answerName(name), listen, { logFile: this.logFile(`fixture-${name}`), ...(tls ? { cert: this.file(`${name}.crt`), key: this.file(`${name}.key`) } : {}) });
    this.procs.set(`fixture-${name}`, p);
    return p;
  }

  /** Stops an app: SIGTERM (graceful, undoes its kernel changes) or SIGKILL (a crash). */
  async stopApp(name: AppName, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.pods) return this.pods.stop(name, signal);
    const p = this.procs.get(name);
    if (!p) return;
    this.procs.delete(name); // first, so that supervision does not restart it
    await stopProcess(p, signal);
  }

  /** HTTP status of an app's /healthz or /readyz (0 when unreachable). */
  status(name: AppName, path: StatusPath): Promise<number> {
    return statusCode(this.topo.ns[APP_NS[name]], this.statusPort(name), path);
  }

  statusBody(name: AppName, path: StatusPath): Promise<string> {
    return statusText(this.topo.ns[APP_NS[name]], this.statusPort(name), path);
  }

  /** Where the app serves /healthz, /readyz and /metrics (a container: its manifest's probe port). */
  statusPort(name: AppName): number {
    return this.pods ? this.pods.statusPort(name) : STATUS_PORT[name];
  }

  async waitReady(name: AppName, timeoutMs = 20_000): Promise<void> {
    await waitFor(`${name} /readyz`, async () => (await this.status(name, 'readyz')) === 200, timeoutMs, 50);
  }

  /**
   * A CONNECT target outside the shoot's networks, which the proxy must refuse with 403. The seed's
   * own pod addresses are shoot pod addresses in the overlapping lab (they mean the shoot there), so
   * that lab names the load balancer's wan address instead.
   */
  get forbiddenTarget(): string {
    return this.topo.overlap ? `${ADDR.lbWan}:8132` : `${ADDR.kapi}:443`;
  }

  /** The curl arguments with which the "kube-apiserver" uses the egress proxy (mTLS CONNECT on 9443). */
  proxyArgs(cert = 'proxy-client'): string[] {
    return [
      '--proxy', `https://${this.topo.seed.srv}:9443`,
      '--proxy-cacert', this.file('ca.crt'),
      '--proxy-cert', this.file(`${cert}.crt`),
      '--proxy-key', this.file(`${cert}.key`),
      '--proxytunnel',
    ];
  }

  /** curl from the kube-apiserver namespace through the egress proxy. */
  curlViaProxy(url: string, extra: string[] = [], timeoutS = 10): Promise<RunResult> {
    return run(['curl', '-sS', '-m', String(timeoutS), '--cacert', this.file('lab-ca.crt'), ...this.proxyArgs(), ...extra, url], { ns: this.topo.ns.kapi, allowFail: true, timeoutMs: (timeoutS + 5) * 1000 });
  }

  /**
   * Stops everything and removes the topology; safe to call twice: a second call while the first is under
   * way (a Ctrl-C during a part, then the part's own cleanup) waits for it instead of returning at once, so
   * nobody exits the process with half a lab.
   */
  down(): Promise<void> {
    if (!this.up) return this.downing ?? Promise.resolve();
    this.up = false;
    this.downing = (async () => {
      await this.second?.down();
      for (const name of ['vpn-shoot', 'vpn-seed-server', 'sni-proxy'] as AppName[]) await this.stopApp(name).catch(() => undefined);
      await this.pods?.down();
      await killAll(this.procs);
      await this.topo.destroy(); // the second shoot's view: nothing (this lab's destroy() removes both shoots)
      // the second shoot's work directory goes with the lab's
      if (!this.keepWorkDir && !this.topo.owner) rmSync(this.dir, { recursive: true, force: true });
    })();
    return this.downing;
  }
}

export const URLS = {
  pod: `http://${ADDR.pod}:${ADDR.podPort}/`,
  podV6: `http://[${ADDR.podV6}]:${ADDR.podPort}/`,
  service: `http://${ADDR.service}:${ADDR.servicePort}/`,
  kubelet: `https://${ADDR.nodeIp}:${ADDR.kubeletPort}/containerLogs/kube-system/coredns/coredns`,
};
