/**
 * A real kube-apiserver + etcd for tests, the idea of controller-runtime's envtest: no kubelet, no
 * controller-manager (so no garbage collection, no Deployment status, no namespace finalization), but
 * the real API machinery — validation, defaulting, server-side apply with per-field ownership, RBAC,
 * watches, TokenRequest, audit.
 *
 * Everything is loopback and private to one instance: free ports on 127.0.0.1, a temp dir holding the
 * PKI (made with @rvpn/pki), etcd's data, the logs, the kubeconfigs and the audit log. `stop()` kills
 * both processes and removes the dir; a detached reaper does the same if the test process dies
 * without calling it (it polls the parent's pid once a second).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { accessSync, constants, openSync, closeSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issueCertificate } from '@rvpn/pki';
import { EnvtestBinariesMissingError, EnvtestRequestError, EnvtestStartError } from './errors.js';

export const BINARIES = ['etcd', 'kube-apiserver', 'kubectl'] as const;

/** Where the test bed caches its binaries: `${RVPN_TESTBED_CACHE:-/var/cache/reversed-vpn/testbed}/bin`. */
export function defaultBinDir(env: Record<string, string | undefined> = process.env): string {
  return join(env.RVPN_TESTBED_CACHE || '/var/cache/reversed-vpn/testbed', 'bin');
}

/** Throws RVPN_ERR_ENVTEST_BINARIES_MISSING naming every missing binary, or returns their paths. */
export function findBinaries(binDir = defaultBinDir()): Record<(typeof BINARIES)[number], string> {
  const missing: string[] = [];
  const out = {} as Record<(typeof BINARIES)[number], string>;
  for (const b of BINARIES) {
    const p = join(binDir, b);
    try {
      accessSync(p, constants.X_OK);
    } catch {
      missing.push(p);
    }
    out[b] = p;
  }
  if (missing.length) {
    throw new EnvtestBinariesMissingError(`the test API server needs ${missing.join(', ')}: run \`bash tools/testbed/build-binaries.sh\` (it builds them from the upstream Go modules into ${binDir})`, { details: { missing } });
  }
  return out;
}

/** Every request the apiserver handles, at Metadata level (user, verb, resource, status), written as JSON lines. */
export const DEFAULT_AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: ["system:apiserver"]
- level: Metadata
`;

export interface EnvtestOptions {
  /** Default: defaultBinDir(). */
  binDir?: string;
  /** Write an audit log (DEFAULT_AUDIT_POLICY, or this policy YAML). */
  audit?: boolean | { policy: string };
  /** How long etcd + kube-apiserver may take to be ready (default 90 s: the host may be busy). */
  startTimeoutMs?: number;
  /** Appended to kube-apiserver's flags. */
  apiserverArgs?: string[];
  /** The process whose death makes the reaper clean up (default: this process). */
  watchPid?: number;
  signal?: AbortSignal;
}

export interface AuditEvent {
  verb: string;
  user: { username: string; groups?: string[] };
  impersonatedUser?: { username: string };
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string; apiGroup?: string };
  responseStatus?: { code?: number };
  requestURI: string;
  stage: string;
  stageTimestamp: string;
}

export interface ServiceAccountRef {
  namespace: string;
  name: string;
}

export interface TokenOptions {
  /** At least 600 (the API server's minimum); default 3600. */
  expirationSeconds?: number;
  /** Bind the token to an object: deleting that object invalidates the token at once. */
  boundObject?: { kind: 'Secret' | 'Pod'; name: string; uid: string };
}

export interface RequestResult<T = unknown> {
  status: number;
  body: T;
}

export interface Envtest {
  /** https://127.0.0.1:<port> */
  readonly server: string;
  /** The temp dir (removed by stop()). */
  readonly dir: string;
  /** The cluster CA (serving certificate and client certificates). */
  readonly caPem: string;
  /** A kubeconfig file for an admin (client certificate, O=system:masters). */
  readonly kubeconfigPath: string;
  /** The audit log file, when `audit` was asked for. */
  readonly auditLogPath: string | undefined;
  readonly binaries: Record<(typeof BINARIES)[number], string>;
  /** Process ids of etcd and kube-apiserver. */
  readonly pids: { etcd: number; apiserver: number };
  /** An admin request (JSON in, JSON out); any status is returned, nothing thrown for 4xx/5xx. */
  request<T = unknown>(method: string, path: string, body?: unknown, opts?: { contentType?: string }): Promise<RequestResult<T>>;
  /** A ServiceAccount token from the TokenRequest API (the ServiceAccount must exist). */
  createToken(sa: ServiceAccountRef, opts?: TokenOptions): Promise<string>;
  /**
   * A kubeconfig file acting as a ServiceAccount: with a real token (TokenRequest; default) or by
   * impersonating it with the admin's certificate (`as: system:serviceaccount:<ns>:<name>`).
   */
  serviceAccountKubeconfig(sa: ServiceAccountRef, opts?: TokenOptions & { via?: 'token' | 'impersonation' }): Promise<string>;
  /** Writes a kubeconfig for this server with the given user entry (token, client-certificate-data, as, …). */
  writeKubeconfig(name: string, user: Record<string, unknown>): Promise<string>;
  /** Installs CustomResourceDefinitions (server-side apply) and waits until each is Established. */
  installCrds(crds: object[]): Promise<void>;
  /** Creates namespaces if missing. */
  ensureNamespaces(...names: string[]): Promise<void>;
  /** Runs the cached kubectl (admin kubeconfig unless `kubeconfig` is given); never throws on a non-zero exit. */
  kubectl(args: string[], opts?: { kubeconfig?: string; input?: string }): Promise<{ code: number; stdout: string; stderr: string }>;
  /** The audit log's events so far (the log backend writes before the response: blocking mode). */
  auditEvents(): Promise<AuditEvent[]>;
  /** Kills kube-apiserver and etcd and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const yamlString = (s: string) => JSON.stringify(s);

function kubeconfigYaml(server: string, caPem: string, user: Record<string, unknown>): string {
  // JSON is YAML; kubectl and client-node read it
  return `${JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'envtest', preferences: {},
    clusters: [{ name: 'envtest', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: 'envtest-user', user }],
    contexts: [{ name: 'envtest', context: { cluster: 'envtest', user: 'envtest-user' } }],
  }, null, 2)}\n`;
}

function tail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function waitExit(p: ChildProcess, ms: number): Promise<boolean> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    p.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/** Starts etcd and kube-apiserver; retries once with other ports if one was taken meanwhile. */
export async function startEnvtest(opts: EnvtestOptions = {}): Promise<Envtest> {
  const binaries = findBinaries(opts.binDir);
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(binaries, opts);
    } catch (err) {
      lastErr = err;
      const log = String((err as { details?: { log?: string } }).details?.log ?? '');
      if (!EnvtestStartError.is(err) || !/address already in use/.test(log) || opts.signal?.aborted) throw err;
    }
  }
  throw lastErr;
}

async function startOnce(binaries: Record<(typeof BINARIES)[number], string>, opts: EnvtestOptions): Promise<Envtest> {
  const dir = await mkdtemp(join(tmpdir(), 'rvpn-envtest-'));
  const procs: ChildProcess[] = [];
  let reaper: ChildProcess | undefined;
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      reaper?.kill('SIGKILL');
      for (const p of [...procs].reverse()) {
        if (p.exitCode === null && p.signalCode === null) {
          p.kill('SIGTERM');
          if (!(await waitExit(p, 10_000))) {
            p.kill('SIGKILL');
            await waitExit(p, 5_000);
          }
        }
      }
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };
  try {
    // --- PKI: one CA for serving and client certificates, a ServiceAccount signing key
    const ca = await createCa({ commonName: 'envtest-ca', validityDays: 2 });
    const [serving, admin, sa] = await Promise.all([
      issueCertificate(ca, { commonName: 'kube-apiserver', usage: 'server', dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'], ipAddresses: ['127.0.0.1'], validityDays: 2 }),
      issueCertificate(ca, { commonName: 'envtest-admin', organization: 'system:masters', usage: 'client', validityDays: 2 }),
      // kube-apiserver signs tokens with this key (PKCS#8 ECDSA P-256) and verifies them with the certificate's public key
      issueCertificate(ca, { commonName: 'service-accounts', usage: 'client', validityDays: 2 }),
    ]);
    const f = (name: string) => join(dir, name);
    await Promise.all([
      writeFile(f('ca.crt'), ca.certPem),
      writeFile(f('serving.crt'), serving.certPem), writeFile(f('serving.key'), serving.keyPem, { mode: 0o600 }),
      writeFile(f('sa.crt'), sa.certPem), writeFile(f('sa.key'), sa.keyPem, { mode: 0o600 }),
    ]);
    const auditPolicy = opts.audit ? (typeof opts.audit === 'object' ? opts.audit.policy : DEFAULT_AUDIT_POLICY) : undefined;
    if (auditPolicy) await writeFile(f('audit-policy.yaml'), auditPolicy);

    const [etcdClient, etcdPeer, securePort] = await Promise.all([freePort(), freePort(), freePort()]);
    const server = `https://127.0.0.1:${securePort}`;
    const launch = (name: string, bin: string, args: string[]) => {
      const fd = openSync(f(`${name}.log`), 'a');
      const p = spawn(bin, args, { stdio: ['ignore', fd, fd], cwd: dir });
      closeSync(fd);
      procs.push(p);
      return p;
    };
    const etcd = launch('etcd', binaries.etcd, [
      '--name=envtest', `--data-dir=${f('etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`, `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=envtest=http://127.0.0.1:${etcdPeer}`,
      // a test's data need not survive a power cut: this saves most of etcd's disk time
      '--unsafe-no-fsync', '--log-level=warn',
    ]);
    const apiserver = launch('kube-apiserver', binaries['kube-apiserver'], [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', `--secure-port=${securePort}`,
      `--cert-dir=${f('apiserver-certs')}`,
      `--tls-cert-file=${f('serving.crt')}`, `--tls-private-key-file=${f('serving.key')}`,
      `--client-ca-file=${f('ca.crt')}`,
      `--service-account-issuer=${server}`,
      `--service-account-key-file=${f('sa.crt')}`, `--service-account-signing-key-file=${f('sa.key')}`,
      // tokens expire when they say so (no silent year-long extension): a client that does not re-read its token file fails
      '--service-account-extend-token-expiration=false',
      '--authorization-mode=RBAC',
      // as on real clusters: privileged init containers (sysctls) are allowed; admission policy decides
      '--allow-privileged=true',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--endpoint-reconciler-type=none',
      '--enable-priority-and-fairness=false',
      '--profiling=false',
      ...(auditPolicy ? [`--audit-policy-file=${f('audit-policy.yaml')}`, `--audit-log-path=${f('audit.log')}`, '--audit-log-format=json', '--audit-log-mode=blocking'] : []),
      ...(opts.apiserverArgs ?? []),
    ]);
    // the reaper: if this process dies without stop(), kill both and remove the dir
    reaper = spawn('/bin/sh', ['-c', 'while kill -0 "$PARENT" 2>/dev/null; do sleep 1; done; kill -9 $PIDS 2>/dev/null; rm -rf "$DIR"'], {
      detached: true, stdio: 'ignore', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PARENT: String(opts.watchPid ?? process.pid), PIDS: `${etcd.pid} ${apiserver.pid}`, DIR: dir },
    });
    reaper.unref();

    const adminTls = { ca: ca.certPem, cert: admin.certPem, key: admin.keyPem };
    const request = <T>(method: string, path: string, body?: unknown, ro: { contentType?: string } = {}): Promise<RequestResult<T>> => {
      const data = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      return new Promise((resolve, reject) => {
        const req = https.request(new URL(path, server), {
          method, ...adminTls, timeout: 30_000,
          headers: { accept: 'application/json', ...(data ? { 'content-type': ro.contentType ?? 'application/json', 'content-length': data.length } : {}) },
        }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              /* plain text (healthz) */
            }
            resolve({ status: res.statusCode ?? 0, body: parsed as T });
          });
          res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
        req.on('error', reject);
        req.end(data);
      });
    };

    // --- ready: /readyz answers 200 (RBAC bootstrap roles and the rest of the post-start hooks done)
    const deadline = Date.now() + (opts.startTimeoutMs ?? 90_000);
    for (;;) {
      opts.signal?.throwIfAborted();
      for (const [name, p] of [['etcd', etcd], ['kube-apiserver', apiserver]] as const) {
        if (p.exitCode !== null || p.signalCode !== null) {
          const log = tail(f(`${name}.log`));
          throw new EnvtestStartError(`${name} exited (${p.exitCode ?? p.signalCode}) while starting:\n${log}`, { details: { log, component: name } });
        }
      }
      const r = await request<string>('GET', '/readyz').catch(() => undefined);
      if (r?.status === 200) break;
      if (Date.now() > deadline) {
        const log = `${tail(f('etcd.log'), 15)}\n${tail(f('kube-apiserver.log'))}`;
        throw new EnvtestStartError(`kube-apiserver was not ready within ${opts.startTimeoutMs ?? 90_000} ms (last /readyz: ${r?.status ?? 'no answer'})`, { details: { log } });
      }
      await new Promise((res) => setTimeout(res, 200));
    }

    const writeKubeconfig = async (name: string, user: Record<string, unknown>) => {
      if (!/^[a-z0-9][a-z0-9._-]*$/.test(name)) throw new EnvtestRequestError(`bad kubeconfig name ${yamlString(name)}`);
      const p = f(`${name}.kubeconfig`);
      await writeFile(p, kubeconfigYaml(server, ca.certPem, user), { mode: 0o600 });
      return p;
    };
    const adminUser = { 'client-certificate-data': Buffer.from(admin.certPem).toString('base64'), 'client-key-data': Buffer.from(admin.keyPem).toString('base64') };
    const kubeconfigPath = await writeKubeconfig('admin', adminUser);
    const must = async <T>(what: string, p: Promise<RequestResult<T>>, ok: number[] = [200, 201]) => {
      const r = await p;
      if (!ok.includes(r.status)) throw new EnvtestRequestError(`${what}: HTTP ${r.status} ${(r.body as { message?: string } | undefined)?.message ?? ''}`, { details: { status: r.status, body: r.body } });
      return r.body;
    };
    const createToken = async (sa: ServiceAccountRef, to: TokenOptions = {}) => {
      const body = await must<{ status: { token: string } }>(`TokenRequest for ${sa.namespace}/${sa.name}`, request('POST', `/api/v1/namespaces/${sa.namespace}/serviceaccounts/${sa.name}/token`, {
        apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest',
        spec: { expirationSeconds: to.expirationSeconds ?? 3600, ...(to.boundObject ? { boundObjectRef: { apiVersion: 'v1', ...to.boundObject } } : {}) },
      }));
      return body.status.token;
    };
    const env: Envtest = {
      server, dir, caPem: ca.certPem, kubeconfigPath, binaries, pids: { etcd: etcd.pid!, apiserver: apiserver.pid! },
      auditLogPath: auditPolicy ? f('audit.log') : undefined,
      request,
      createToken,
      writeKubeconfig,
      async serviceAccountKubeconfig(sa, so = {}) {
        const name = `sa-${sa.namespace}-${sa.name}-${so.via ?? 'token'}`;
        if (so.via === 'impersonation') return writeKubeconfig(name, { ...adminUser, as: `system:serviceaccount:${sa.namespace}:${sa.name}` });
        return writeKubeconfig(name, { token: await createToken(sa, so) });
      },
      async ensureNamespaces(...names) {
        for (const n of names) await must(`namespace ${n}`, request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: n } }), [201, 409]);
      },
      async installCrds(crds) {
        for (const crd of crds) {
          const name = (crd as { metadata: { name: string } }).metadata.name;
          await must(`CRD ${name}`, request('PATCH', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}?fieldManager=envtest&force=true`, crd, { contentType: 'application/apply-patch+yaml' }));
          for (let i = 0; ; i++) {
            const r = await request<{ status?: { conditions?: Array<{ type: string; status: string }> } }>('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
            if (r.body.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
            if (i > 300) throw new EnvtestRequestError(`CRD ${name} not Established after 30 s`, { details: { status: r.status, body: r.body } });
            await new Promise((res) => setTimeout(res, 100));
          }
          // discovery (which clients read) and the watch cache (429 while it initializes) lag the Established condition a little
          const s = (crd as { spec: { group: string; names: { plural: string }; versions: Array<{ name: string }> } }).spec;
          for (const path of [`/apis/${s.group}/${s.versions[0]!.name}`, `/apis/${s.group}/${s.versions[0]!.name}/${s.names.plural}?watch=1&timeoutSeconds=1`]) {
            for (let i = 0; ; i++) {
              const r = await request('GET', path);
              if (r.status === 200) break;
              if (i > 300) throw new EnvtestRequestError(`CRD ${name}: GET ${path} answers ${r.status} after 30 s`, { details: { status: r.status, body: r.body } });
              await new Promise((res) => setTimeout(res, 100));
            }
          }
        }
      },
      kubectl(args, ko = {}) {
        return new Promise((resolve) => {
          const child = execFile(binaries.kubectl, [`--kubeconfig=${ko.kubeconfig ?? kubeconfigPath}`, ...args], { maxBuffer: 16 << 20, timeout: 60_000 }, (err, stdout, stderr) => {
            resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
          });
          if (ko.input !== undefined) child.stdin?.end(ko.input);
        });
      },
      async auditEvents() {
        if (!auditPolicy) throw new EnvtestRequestError('this test API server was started without `audit`');
        const text = await readFile(f('audit.log'), 'utf8').catch(() => '');
        return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent);
      },
      stop,
    };
    return env;
  } catch (err) {
    await stop();
    throw err;
  }
}
