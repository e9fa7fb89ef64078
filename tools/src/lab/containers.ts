/**
 * The lab's container mode: every app runs from its image under podman, as the kubelet would run the
 * pod lab/pods.ts renders, inside the lab's network namespace of that pod (`--network ns:/run/netns/<ns>`,
 * not podman's networks). What the kubelet does and what it becomes here:
 *
 *   securityContext        privileged → --privileged; capabilities → --cap-drop/--cap-add;
 *                          runAsUser/runAsGroup → --user; fsGroup, supplementalGroups → --group-add;
 *                          allowPrivilegeEscalation false → --security-opt no-new-privileges;
 *                          readOnlyRootFilesystem → --read-only --read-only-tmpfs=false (podman would
 *                          otherwise mount tmpfs on /tmp, /run and /var/tmp, which Kubernetes does not);
 *                          seccompProfile RuntimeDefault → podman's default profile, unset → unconfined
 *                          (Kubernetes' default without SeccompDefault)
 *   runAsNonRoot           refused before the start when the user is 0, as the kubelet refuses
 *   initContainers         run first, one by one, each to completion (exit 0), once per pod: a restart
 *                          of the main container does not run them again
 *   volumes                Secret/ConfigMap → a directory in the kubelet's ..data layout with its modes
 *                          and fsGroup ownership (lab/volumes.ts), mounted read-only; hostPath → a bind
 *                          mount of that path (/dev/net/tun); emptyDir → a fresh 0777 directory
 *   env                    the manifest's list in order, downward API (metadata.name/namespace), $(VAR)
 *                          expansion, then the lab's substitutions (pods.ts) and the caller's overrides
 *   resources              limits.memory → --memory, requests.cpu → --cpu-shares (the kubelet's cgroups)
 *   restartPolicy Always   the stack's supervision restarts the exited main container
 *
 * /dev/net/tun: the manifests mount it as a hostPath and add no device rule (a pod cannot ask for one).
 * That works because runc appends its built-in allowed devices to the spec's deny-all device cgroup,
 * and that list has c 10:200 (tun) in runc 1.1.x (Debian 12's 1.1.5, checked: a NET_ADMIN container
 * opens it, while a bind-mounted /dev/loop-control is refused with EPERM) and again from 1.2.4 on. runc
 * 1.2.0–1.2.3 and crun dropped it: there the hostPath mount fails with EPERM in the lab exactly as it
 * would on a node with that runtime, so the lab deliberately adds no --device-cgroup-rule of its own.
 *
 * Every container carries the label rvpn.lab.prefix=<prefix>: the sweeper removes a killed run's
 * containers by it before it deletes the namespaces they live in.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, statSync, chmodSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { imageExists, podman, podmanAvailable, podmanEnv } from '../images/podman.js';
import { imageRef } from '../images/build.js';
import { labPods, secretData, SNI_ROUTES_CONFIGMAP, ROUTES_KEY, type Container, type LabMode, type LabPod, type PodSecurityContext, type Volume } from './pods.js';
import { run, sleep } from './sh.js';
import { ADDR } from './topology.js';
import { PREFIX_LABEL, labContainers, removeLabContainers } from './container-sweep.js';
import { writeAtomicVolume } from './volumes.js';

export { PREFIX_LABEL, labContainers, removeLabContainers };
export const APP_LABEL = 'rvpn.lab.app';

/** A running app container: what the stacks need of it (the same shape as a spawned process). */
export interface ContainerHandle {
  name: string;
  id: string;
  /** The app's process on the host (PID 1 of the container). */
  pid: number;
  logFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Kubernetes quantities (256Mi, 1G, 500k, 1e6) in bytes. */
export function quantityBytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|e\d+)?$/.exec(q);
  if (!m) throw new Error(`not a memory quantity: ${JSON.stringify(q)}`);
  const unit = m[2] ?? '';
  const mult = unit.startsWith('e') ? 10 ** Number(unit.slice(1)) : ({ '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1e3, M: 1e6, G: 1e9, T: 1e12 } as Record<string, number>)[unit]!;
  return Math.round(Number(m[1]) * mult);
}

/** CPU quantities (50m, 0.5, 2) in millicores. */
export function quantityMilliCpu(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(m)?$/.exec(q);
  if (!m) throw new Error(`not a CPU quantity: ${JSON.stringify(q)}`);
  return m[2] ? Number(m[1]) : Math.round(Number(m[1]) * 1000);
}

/**
 * A container's environment as the kubelet builds it: the list in order, fieldRef values from the pod,
 * `$(NAME)` expanded from the variables defined before it (`$$` escapes, unknown references stay), then
 * `overrides` (the lab's substitutions must name variables the manifest has; extra ones may add).
 */
export function resolveEnv(c: Container, pod: { podName: string; namespace: string }, labEnv: Record<string, string> = {}, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  const expand = (v: string) => v.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (all, name?: string) => (name === undefined ? '$' : (env[name] ?? all)));
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = expand(e.value);
    else if (e.valueFrom?.fieldRef) {
      const path = e.valueFrom.fieldRef.fieldPath;
      if (path === 'metadata.name') env[e.name] = pod.podName;
      else if (path === 'metadata.namespace') env[e.name] = pod.namespace;
      else throw new Error(`the lab cannot give ${e.name} the downward-API field ${path}`);
    } else env[e.name] = '';
  }
  for (const [k, v] of Object.entries(labEnv)) {
    if (!(k in env)) throw new Error(`the lab substitutes ${k}, which the manifest of ${c.name} no longer sets (update lab/pods.ts)`);
    env[k] = v;
  }
  return { ...env, ...extra };
}

export interface RunArgsOptions {
  prefix: string;
  app: string;
  /** Container name. */
  name: string;
  /** Network namespace name (/run/netns/<netns>). */
  netns: string;
  logFile: string;
  /** Host directory of each Secret, ConfigMap and emptyDir volume, by volume name. */
  volumeDirs: Record<string, string>;
  env: Record<string, string>;
  /** Init container: run to completion and remove; main container: detached. */
  init: boolean;
}

/** Effective security settings: the container's over the pod's (as the kubelet merges them). */
function effectiveSecurity(pod: PodSecurityContext | undefined, c: Container) {
  const s = c.securityContext ?? {};
  return {
    privileged: s.privileged ?? false,
    runAsUser: s.runAsUser ?? pod?.runAsUser,
    runAsGroup: s.runAsGroup ?? pod?.runAsGroup,
    runAsNonRoot: s.runAsNonRoot ?? pod?.runAsNonRoot,
    seccomp: s.seccompProfile ?? pod?.seccompProfile,
    capabilities: s.capabilities,
    allowPrivilegeEscalation: s.allowPrivilegeEscalation,
    readOnlyRootFilesystem: s.readOnlyRootFilesystem ?? false,
  };
}

/** The `podman run` arguments (after `podman`) for one container of a lab pod; pure. */
export function containerRunArgs(pod: LabPod, c: Container, o: RunArgsOptions): string[] {
  const sec = effectiveSecurity(pod.spec.securityContext, c);
  if (sec.runAsNonRoot && sec.runAsUser === 0) throw new Error(`${pod.podName}/${c.name}: runAsNonRoot with runAsUser 0 (the kubelet refuses to start it)`);
  if (sec.runAsNonRoot && sec.runAsUser === undefined) throw new Error(`${pod.podName}/${c.name}: runAsNonRoot without runAsUser (the lab does not read image users)`);
  const a: string[] = ['run', o.init ? '--rm' : '--detach', '--name', o.name, '--pull', 'never'];
  a.push('--label', `${PREFIX_LABEL}=${o.prefix}`, '--label', `${APP_LABEL}=${o.app}`, '--label', `io.kubernetes.pod.name=${pod.podName}`, '--label', `io.kubernetes.container.name=${c.name}`);
  a.push('--network', `ns:/run/netns/${o.netns}`, '--hostname', pod.podName);
  a.push('--log-driver', 'k8s-file', '--log-opt', `path=${o.logFile}`);
  if (sec.privileged) a.push('--privileged');
  else {
    for (const d of sec.capabilities?.drop ?? []) a.push('--cap-drop', d);
    for (const d of sec.capabilities?.add ?? []) a.push('--cap-add', d);
    if (sec.seccomp?.type === 'Localhost') a.push('--security-opt', `seccomp=${sec.seccomp.localhostProfile}`);
    else if (sec.seccomp?.type !== 'RuntimeDefault') a.push('--security-opt', 'seccomp=unconfined');
  }
  if (sec.allowPrivilegeEscalation === false && !sec.privileged) a.push('--security-opt', 'no-new-privileges');
  if (sec.runAsUser !== undefined) a.push('--user', sec.runAsGroup !== undefined ? `${sec.runAsUser}:${sec.runAsGroup}` : String(sec.runAsUser));
  const fsGroup = pod.spec.securityContext?.fsGroup;
  for (const g of [...(fsGroup !== undefined ? [fsGroup] : []), ...(pod.spec.securityContext?.supplementalGroups ?? [])]) a.push('--group-add', String(g));
  if (sec.readOnlyRootFilesystem) a.push('--read-only', '--read-only-tmpfs=false');
  const limits = c.resources?.limits ?? {};
  if (limits.memory) a.push('--memory', String(quantityBytes(limits.memory)));
  if (limits.cpu) a.push('--cpus', String(quantityMilliCpu(limits.cpu) / 1000));
  if (c.resources?.requests?.cpu) a.push('--cpu-shares', String(Math.max(2, Math.floor((quantityMilliCpu(c.resources.requests.cpu) * 1024) / 1000))));
  if (!o.init) a.push('--stop-timeout', String(pod.spec.terminationGracePeriodSeconds ?? 30));
  const volumes = new Map((pod.spec.volumes ?? []).map((v) => [v.name, v]));
  for (const m of c.volumeMounts ?? []) {
    const v = volumes.get(m.name);
    if (!v) throw new Error(`${pod.podName}/${c.name} mounts ${m.name}, which the pod does not declare`);
    a.push(...mountArgs(v, m.mountPath, m.readOnly ?? false, o.volumeDirs));
  }
  for (const [k, v] of Object.entries(o.env)) a.push('--env', `${k}=${v}`);
  if (c.command) a.push('--entrypoint', JSON.stringify(c.command));
  a.push(c.image, ...(c.args ?? []));
  return a;
}

function mountArgs(v: Volume, mountPath: string, readOnly: boolean, dirs: Record<string, string>): string[] {
  if (v.hostPath) return ['--volume', `${v.hostPath.path}:${mountPath}${readOnly ? ':ro' : ''}`];
  if (v.emptyDir?.medium === 'Memory') return ['--mount', `type=tmpfs,destination=${mountPath},tmpfs-mode=1777${v.emptyDir.sizeLimit ? `,tmpfs-size=${quantityBytes(v.emptyDir.sizeLimit)}` : ''}`];
  const dir = dirs[v.name];
  if (!dir) throw new Error(`volume ${v.name} has no directory`);
  // Secret and ConfigMap volumes are always read-only in a pod, whatever the mount says
  const ro = readOnly || v.secret !== undefined || v.configMap !== undefined;
  return ['--volume', `${dir}:${mountPath}${ro ? ':ro' : ''}`];
}

const SIGNAL_NAMES = Object.fromEntries(Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

/** Resolves when the container exits (podman wait in its own process group, so a Ctrl-C does not end it). */
function waitContainer(id: string): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    const child = spawn('podman', ['wait', id], { env: podmanEnv(), stdio: ['ignore', 'pipe', 'ignore'], detached: true });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.once('error', () => resolve({ code: -1, signal: null }));
    child.once('close', (status) => {
      const code = status === 0 ? Number(out.trim()) : NaN;
      if (!Number.isFinite(code)) return resolve({ code: null, signal: null }); // removed under our feet
      resolve({ code, signal: code > 128 ? (SIGNAL_NAMES[code - 128] ?? null) : null });
    });
  });
}

/** The images a lab of this mode runs, and which of them are missing. */
export async function missingImages(mode: LabMode): Promise<string[]> {
  const refs = [...new Set(labPods(mode).map((p) => imageRef(p.image)))];
  const missing: string[] = [];
  for (const ref of refs) if (!(await imageExists(ref))) missing.push(ref);
  return missing;
}

export interface PodRuntimeOptions {
  prefix: string;
  /** The lab's work directory: volumes under pods/, logs beside the process mode's. */
  dir: string;
  mode: LabMode;
  netns: (pod: LabPod) => string;
  logFile: (app: string) => string;
  /** The lab's certificate files by name (Secret data comes from them, see pods.ts secretData). */
  pkiFiles: () => Record<string, string>;
  /** The content of sni-proxy's route ConfigMap. */
  routes: () => unknown;
  log?: (line: string) => void;
}

/** The container side of a lab stack: volumes, init containers, app containers, the Service of sni-proxy. */
export class PodRuntime {
  readonly pods: ReadonlyMap<string, LabPod>;
  readonly running = new Map<string, ContainerHandle>();
  private readonly prepared = new Set<string>();
  private readonly written = new Map<string, string>();
  private readonly log: (line: string) => void;
  /** Starts under way: down() waits for them, so a Ctrl-C during the start leaves no container behind. */
  private readonly inflight = new Set<Promise<unknown>>();
  private closed = false;
  private syncing: Promise<void> = Promise.resolve();

  constructor(private readonly o: PodRuntimeOptions) {
    this.pods = new Map(labPods(o.mode).map((p) => [p.app, p]));
    this.log = o.log ?? (() => undefined);
  }

  pod(app: string): LabPod {
    const p = this.pods.get(app);
    if (!p) throw new Error(`no pod ${app} in this lab (pods: ${[...this.pods.keys()].join(', ')})`);
    return p;
  }

  /** The port of the container's readiness probe (where its /healthz, /readyz and /metrics are). */
  statusPort(app: string): number {
    const port = this.pod(app).spec.containers[0]!.readinessProbe?.httpGet?.port;
    if (typeof port !== 'number') throw new Error(`${app}: the manifest has no numeric readiness probe port`);
    return port;
  }

  /** podman, the images and the hostPath devices are there (fails with what to do). */
  async preflight(): Promise<void> {
    const engine = await podmanAvailable();
    if (!engine.ok) throw new Error(`container mode: ${engine.why}`);
    const missing = await missingImages(this.o.mode);
    if (missing.length > 0) throw new Error(`container mode: image(s) missing: ${missing.join(', ')}; build them with \`pnpm images\``);
    for (const p of this.pods.values()) {
      for (const v of p.spec.volumes ?? []) {
        if (v.hostPath?.type === 'CharDevice' && !statSync(v.hostPath.path, { throwIfNoEntry: false })?.isCharacterDevice()) {
          throw new Error(`container mode: ${p.podName} mounts ${v.hostPath.path}, which is not a character device on this host`);
        }
      }
    }
  }

  /**
   * The LoadBalancer Service of sni-proxy at the load balancer's address: port → targetPort, as
   * kube-proxy does (the container listens on unprivileged ports: 443 → 8443, 8443 → 9443).
   */
  async applyServices(): Promise<void> {
    for (const p of this.pods.values()) {
      if (!p.servicePorts) continue;
      const rules = p.servicePorts.filter((s) => s.port !== s.targetPort).map((s) => `    ip daddr ${ADDR.lbWan} tcp dport ${s.port} redirect to :${s.targetPort}`);
      const table = `table ip rvlab_svc\ndelete table ip rvlab_svc\ntable ip rvlab_svc {\n  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n${rules.join('\n')}\n  }\n}\n`;
      await run(['nft', '-f', '-'], { ns: this.o.netns(p), input: table });
    }
  }

  private volumeDir(p: LabPod, v: Volume): string {
    return join(this.o.dir, 'pods', p.app, v.name);
  }

  /** The data of a Secret or ConfigMap volume, from the lab's files. */
  private volumeData(v: Volume): Record<string, string> | undefined {
    if (v.secret) {
      const table = secretData(this.o.mode)[v.secret.secretName];
      if (!table) throw new Error(`the lab has no data for Secret ${v.secret.secretName} (add it to secretData in lab/pods.ts)`);
      const files = this.o.pkiFiles();
      return Object.fromEntries(Object.entries(table).map(([key, file]) => {
        const content = files[file];
        if (content === undefined) throw new Error(`Secret ${v.secret!.secretName}: the lab has no file ${file} for ${key}`);
        return [key, content];
      }));
    }
    if (v.configMap) {
      if (v.configMap.name !== SNI_ROUTES_CONFIGMAP) throw new Error(`the lab has no data for ConfigMap ${v.configMap.name}`);
      return { [ROUTES_KEY]: `${JSON.stringify(this.o.routes(), null, 2)}\n` };
    }
    return undefined;
  }

  /** Writes a pod's Secret and ConfigMap volumes whose data changed (all of them the first time). */
  private async project(p: LabPod): Promise<void> {
    for (const v of p.spec.volumes ?? []) {
      const data = this.volumeData(v);
      if (!data) continue;
      const dir = this.volumeDir(p, v);
      const digest = JSON.stringify(data);
      if (this.written.get(dir) === digest) continue;
      await writeAtomicVolume(dir, data, { defaultMode: v.secret?.defaultMode ?? v.configMap?.defaultMode ?? 0o644, fsGroup: p.spec.securityContext?.fsGroup });
      this.written.set(dir, digest);
    }
  }

  /** After the lab's certificates or routes changed: the kubelet's periodic sync, at once (one at a time). */
  refreshVolumes(): Promise<void> {
    const next = this.syncing.then(async () => {
      for (const app of this.prepared) await this.project(this.pod(app));
    });
    this.syncing = next.catch(() => undefined);
    return next;
  }

  private volumeDirs(p: LabPod): Record<string, string> {
    return Object.fromEntries((p.spec.volumes ?? []).filter((v) => !v.hostPath).map((v) => [v.name, this.volumeDir(p, v)]));
  }

  /** First start of a pod: its volumes, then its init containers, each to completion. */
  private async preparePod(p: LabPod): Promise<void> {
    for (const v of p.spec.volumes ?? []) {
      if (v.emptyDir && v.emptyDir.medium !== 'Memory') {
        const d = this.volumeDir(p, v);
        mkdirSync(d, { recursive: true });
        chmodSync(d, 0o777);
      }
    }
    await this.project(p);
    for (const c of p.spec.initContainers ?? []) {
      const name = `${this.o.prefix}-${p.app}-init-${c.name}`;
      const logFile = this.o.logFile(`${p.app}-init-${c.name}`);
      this.log(`init container ${c.name} of ${p.podName} (${c.image} ${(c.args ?? []).join(' ')})`);
      const args = containerRunArgs(p, c, { prefix: this.o.prefix, app: p.app, name, netns: this.o.netns(p), logFile, volumeDirs: this.volumeDirs(p), env: resolveEnv(c, p), init: true });
      const r = await podman(args, { allowFail: true, timeoutMs: 120_000 });
      if (r.code !== 0) {
        const tail = (await run(['tail', '-n', '20', logFile], { allowFail: true })).stdout;
        throw new Error(`init container ${c.name} of ${p.podName} failed (exit ${r.code}): ${r.stderr.trim()}\n${tail}`);
      }
    }
    this.prepared.add(p.app);
  }

  /** Starts (or restarts) the app's container; resolves once podman has started it. */
  start(app: string, extraEnv: Record<string, string> = {}): Promise<ContainerHandle> {
    if (this.closed) return Promise.reject(new Error(`${app}: the lab is being torn down`));
    const started = this.startContainer(app, extraEnv);
    this.inflight.add(started);
    void started.finally(() => this.inflight.delete(started)).catch(() => undefined);
    return started;
  }

  private async startContainer(app: string, extraEnv: Record<string, string>): Promise<ContainerHandle> {
    const p = this.pod(app);
    if (!this.prepared.has(app)) await this.preparePod(p);
    if (this.closed) throw new Error(`${app}: the lab is being torn down`);
    const c = p.spec.containers[0]!;
    const name = `${this.o.prefix}-${app}`;
    const logFile = this.o.logFile(app);
    await podman(['rm', '--force', '--ignore', '--time', '0', name], { allowFail: true });
    const args = containerRunArgs(p, c, { prefix: this.o.prefix, app, name, netns: this.o.netns(p), logFile, volumeDirs: this.volumeDirs(p), env: resolveEnv(c, p, p.labEnv, extraEnv), init: false });
    const r = await podman(args, { allowFail: true, timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`podman could not start ${name}: ${r.stderr.trim()}`);
    const id = r.stdout.trim().split('\n').pop()!;
    const exited = waitContainer(id);
    const pid = Number((await podman(['inspect', '--format', '{{.State.Pid}}', id], { allowFail: true })).stdout.trim()) || 0;
    const h: ContainerHandle = { name, id, pid, logFile, exited };
    if (this.closed) throw new Error(`${app}: the lab is being torn down`); // down() removes it by label
    this.running.set(app, h);
    return h;
  }

  /** SIGTERM (graceful) or SIGKILL (a crash) to the app's container, SIGKILL after 5 s anyway; then removes it. */
  async stop(app: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const h = this.running.get(app);
    if (!h) return;
    this.running.delete(app); // first, so that supervision does not restart it
    await podman(['kill', '--signal', signal, h.id], { allowFail: true });
    if (!(await Promise.race([h.exited, sleep(5000).then(() => undefined)]))) {
      await podman(['kill', '--signal', 'SIGKILL', h.id], { allowFail: true });
      await Promise.race([h.exited, sleep(10_000)]);
    }
    await podman(['rm', '--force', '--ignore', '--time', '0', h.id], { allowFail: true });
  }

  /** Forgets a container that exited on its own (supervision restarts it under the same name). */
  forget(app: string, h: ContainerHandle): boolean {
    if (this.running.get(app) !== h) return false;
    this.running.delete(app);
    return true;
  }

  /** Stops every app container (last started first) and removes whatever carries the run's label. */
  async down(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.inflight]);
    for (const app of [...this.running.keys()].reverse()) await this.stop(app).catch(() => undefined);
    await removeLabContainers(this.o.prefix);
  }
}
