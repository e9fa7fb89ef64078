/**
 * What a Helm install of one shoot's seed side needs without the operator: the operator image run
 * one-shot (`operator shoot-setup`) issues the certificates from a CA it keeps in the namespace and
 * wires the kube-apiserver, first as a pre-install/pre-upgrade hook Job, then daily from a CronJob
 * (renewal at 80 % of the validity); a pre-delete hook Job runs `operator shoot-teardown`. The hook
 * Job has its own ServiceAccount, Role, RoleBinding and spec ConfigMap, created as earlier-weight hooks
 * (the release's own ones do not exist yet before an install and are stale before an upgrade). Also
 * the chart's `helm test` pod: a CONNECT through the seed server's 9443 proxy into the shoot.
 */
import { nonRootContainerSecurity, nonRootPodSecurity, objectLabels, podTemplate, SECRETS_DIR, type WorkloadDefaults } from './common.js';
import type { VpnMode } from './mode.js';
import { APISERVER_WIRING_LABEL, PROXY_CLIENT_SECRET, SEED_SERVER } from './seed.js';
import type { K8sObject, RenderOptions, VpnSpec } from './types.js';
import { kubernetesServiceTarget } from './wiring.js';

export const SHOOT_SETUP = 'vpn-shoot-setup';
export const SHOOT_SETUP_HOOK = 'vpn-shoot-setup-hook';
export const SHOOT_TEARDOWN = 'vpn-shoot-teardown';
export const SHOOT_SPEC_DIR = '/etc/vpn-shoot-setup';
export const SHOOT_SPEC_FILE = 'spec.json';
export const SHOOT_KUBECONFIG_DIR = `${SECRETS_DIR}/shoot-kubeconfig`;
/** Without a shoot kubeconfig, shoot-setup parks the shoot's certificate Secret here (key objects.json, a v1 List). */
export const PARKED_SHOOT_SECRET = 'vpn-shoot-certificates';
export const CONNECT_PROBE_POD = `${SEED_SERVER}-test-connect`;

export const SHOOT_SETUP_DEFAULTS: WorkloadDefaults = {
  resources: { requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '256Mi' } },
  podSecurityContext: nonRootPodSecurity,
  containerSecurityContext: nonRootContainerSecurity,
};

export interface ShootSetupInput {
  /** The operator image (it carries the shoot-setup and shoot-teardown subcommands). */
  image: string;
  /** The shoot's kube-apiserver Deployment in the namespace to wire; '' leaves the wiring to the user. */
  kubeApiserverDeployment: string;
  /** A Secret (key `kubeconfig`) for the shoot: the shoot's certificate Secret is applied there. */
  shootKubeconfigSecret?: string;
  /** Cron schedule of the renewal run. */
  schedule: string;
}

/** The file the setup job reads (SHOOT_SPEC_FILE): keys sorted like Helm's toPrettyJson, so the chart's ConfigMap is byte-equal. */
export function shootSpecFile(spec: VpnSpec, mode: Pick<VpnMode, 'reversed' | 'ha'>): string {
  const sortDeep = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sortDeep);
    if (typeof v !== 'object' || v === null) return v;
    return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, x]) => [k, sortDeep(x)]));
  };
  return `${JSON.stringify(sortDeep({ spec, mode: { reversed: mode.reversed, ha: mode.ha } }), null, 2)}\n`;
}

const hook = (events: string, weight: number, deletePolicy: string) => ({
  'helm.sh/hook': events,
  'helm.sh/hook-weight': String(weight),
  'helm.sh/hook-delete-policy': deletePolicy,
});

/**
 * What shoot-setup and shoot-teardown do: read, apply (server-side: patch, create when absent), list by
 * their label to prune and delete the certificate Secrets; read and patch the one apiserver Deployment.
 */
function setupRules(input: ShootSetupInput) {
  return [
    { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'create', 'patch', 'delete'] },
    ...(input.kubeApiserverDeployment ? [{ apiGroups: ['apps'], resources: ['deployments'], resourceNames: [input.kubeApiserverDeployment], verbs: ['get', 'patch'] }] : []),
  ];
}

export function renderShootSetup(spec: VpnSpec, mode: Pick<VpnMode, 'reversed' | 'ha'>, input: ShootSetupInput, options: RenderOptions = {}): K8sObject[] {
  const namespace = spec.namespace;
  const labels = objectLabels(SEED_SERVER, 'certificates', options);
  const specData = { [SHOOT_SPEC_FILE]: shootSpecFile(spec, mode) };
  const rbac = (name: string, annotations?: (w: number) => Record<string, string>): K8sObject[] => [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace, labels: { ...labels }, ...(annotations ? { annotations: annotations(-10) } : {}) } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace, labels: { ...labels }, ...(annotations ? { annotations: annotations(-10) } : {}) }, rules: setupRules(input) },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name, namespace, labels: { ...labels }, ...(annotations ? { annotations: annotations(-9) } : {}) },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace }],
    },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, labels: { ...labels }, ...(annotations ? { annotations: annotations(-8) } : {}) }, data: { ...specData } },
  ];
  const job = (command: 'shoot-setup' | 'shoot-teardown', account: string) => ({
    backoffLimit: 2,
    activeDeadlineSeconds: 600,
    ttlSecondsAfterFinished: 86400,
    template: podTemplate({ ...labels }, {
      serviceAccountName: account,
      restartPolicy: 'Never',
      enableServiceLinks: false,
      containers: [{
        name: command,
        image: input.image,
        args: [command],
        env: [
          { name: 'NAMESPACE', value: namespace },
          { name: 'SHOOT_SPEC_FILE', value: `${SHOOT_SPEC_DIR}/${SHOOT_SPEC_FILE}` },
          { name: 'KUBE_APISERVER_DEPLOYMENT', value: input.kubeApiserverDeployment },
          ...(input.shootKubeconfigSecret ? [{ name: 'SHOOT_KUBECONFIG_FILE', value: `${SHOOT_KUBECONFIG_DIR}/kubeconfig` }] : []),
        ],
        volumeMounts: [
          { name: 'spec', mountPath: SHOOT_SPEC_DIR, readOnly: true },
          ...(input.shootKubeconfigSecret ? [{ name: 'shoot-kubeconfig', mountPath: SHOOT_KUBECONFIG_DIR, readOnly: true }] : []),
        ],
      }],
      volumes: [
        { name: 'spec', configMap: { name: account } },
        ...(input.shootKubeconfigSecret ? [{ name: 'shoot-kubeconfig', secret: { secretName: input.shootKubeconfigSecret, defaultMode: 0o400 } }] : []),
      ],
    }, SHOOT_SETUP_DEFAULTS, options.pod),
  });
  const setupHook = (w: number) => hook('pre-install,pre-upgrade', w, 'before-hook-creation,hook-succeeded');
  return [
    // before an install or upgrade: the hook's own account and spec, then the job (removed once it
    // succeeded, so an uninstall leaves nothing; a failed one stays for its log until the next run)
    ...rbac(SHOOT_SETUP_HOOK, setupHook),
    { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: SHOOT_SETUP, namespace, labels: { ...labels }, annotations: hook('pre-install,pre-upgrade', 0, 'before-hook-creation,hook-succeeded') }, spec: job('shoot-setup', SHOOT_SETUP_HOOK) },
    // the release's own: the daily renewal run, and the teardown (which runs while these still exist)
    ...rbac(SHOOT_SETUP),
    {
      apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: SHOOT_SETUP, namespace, labels: { ...labels } },
      spec: { schedule: input.schedule, concurrencyPolicy: 'Forbid', successfulJobsHistoryLimit: 1, failedJobsHistoryLimit: 3, jobTemplate: { spec: job('shoot-setup', SHOOT_SETUP) } },
    },
    { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: SHOOT_TEARDOWN, namespace, labels: { ...labels }, annotations: hook('pre-delete', 0, 'before-hook-creation,hook-succeeded') }, spec: job('shoot-teardown', SHOOT_SETUP) },
  ];
}

export interface ConnectProbeInput {
  /** The vpn-seed-server image (it carries dist/connect-probe.js). */
  image: string;
  /** host:port in the shoot to CONNECT to; default the shoot's `kubernetes` Service (first service address, 443). */
  target?: string;
}

/**
 * The `helm test` pod: CONNECT <target> through https://vpn-seed-server.<ns>.svc.cluster.local:9443
 * with the kube-apiserver's proxy client certificate, as the apiserver's egress selector does; it
 * carries the wiring label so the seed server's NetworkPolicy admits it. HA has no 9443 on the seed
 * server (the proxy is the path-controller inside each apiserver pod): nothing to render.
 */
export function renderConnectProbe(spec: VpnSpec, mode: Pick<VpnMode, 'ha'>, input: ConnectProbeInput, options: RenderOptions = {}): K8sObject[] {
  if (mode.ha) return [];
  const labels = objectLabels(SEED_SERVER, 'test', options);
  const dir = `${SECRETS_DIR}/${PROXY_CLIENT_SECRET}`;
  const template = podTemplate({ ...labels, ...APISERVER_WIRING_LABEL }, {
    restartPolicy: 'Never',
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    containers: [{
      name: 'connect-probe',
      image: input.image,
      command: ['node', '/app/dist/connect-probe.js'],
      args: [
        '--proxy', `https://${SEED_SERVER}.${spec.namespace}.svc.cluster.local:9443`,
        '--target', input.target || kubernetesServiceTarget(spec),
        '--ca', `${dir}/ca.crt`, '--cert', `${dir}/tls.crt`, '--key', `${dir}/tls.key`,
      ],
      volumeMounts: [{ name: 'proxy-client', mountPath: dir, readOnly: true }],
    }],
    volumes: [{ name: 'proxy-client', secret: { secretName: PROXY_CLIENT_SECRET, defaultMode: 0o400 } }],
  }, { ...SHOOT_SETUP_DEFAULTS, resources: { requests: { cpu: '10m', memory: '48Mi' }, limits: { memory: '128Mi' } } }, options.pod);
  return [{
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: CONNECT_PROBE_POD, namespace: spec.namespace, labels: template.metadata.labels, annotations: { ...(template.metadata.annotations ?? {}), 'helm.sh/hook': 'test', 'helm.sh/hook-delete-policy': 'before-hook-creation,hook-succeeded' } },
    spec: template.spec,
  }];
}
