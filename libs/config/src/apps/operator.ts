/**
 * operator configuration: the seed-wide controller (`operator`, the default command) and the one-shot
 * commands the chart's hook Job/CronJob run with the same image (`shoot-setup`, `shoot-teardown`).
 * One schema; the one-shot fields are checked only for those commands.
 */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { logLevelField } from './log-level.js';
import { loadConfig, optional, t, type ConfigOf } from '../schema.js';

const readable = (p: string) => {
  try {
    accessSync(p, constants.R_OK);
    return true;
  } catch {
    return false;
  }
};

export const OPERATOR_COMMANDS = ['run', 'shoot-setup', 'shoot-teardown'] as const;
export type OperatorCommand = (typeof OPERATOR_COMMANDS)[number];

export const operatorSchema = {
  kubeconfig: t.string({ env: 'KUBECONFIG', default: '', doc: 'kubeconfig file(s) (":"-separated) when not in a pod; empty: ~/.kube/config, else the in-cluster ServiceAccount (its token file is re-read every minute, so rotated tokens are picked up).' }),
  featureGates: t.string({ env: 'FEATURE_GATES', default: 'ReversedVPN=true', doc: 'Comma list of Gate=true|false; known: ReversedVPN.' }),
  sniProxyNamespace: t.string({ env: 'SNI_PROXY_NAMESPACE', default: 'rvpn-system', doc: 'Namespace of sni-proxy (its route ConfigMap is published there).' }),
  sniProxyRoutesConfigMap: t.string({ env: 'SNI_PROXY_ROUTES_CONFIGMAP', default: 'sni-proxy-routes', doc: "Name of sni-proxy's route ConfigMap." }),
  monitoring: t.bool({ env: 'MONITORING', default: 'false', doc: 'Render a ServiceMonitor and PrometheusRule per shoot (needs the prometheus-operator CRDs).' }),
  certValidityDays: t.int({ env: 'CERT_VALIDITY_DAYS', default: '90', min: 1, max: 3650, doc: 'Validity of issued leaf certificates; they are renewed at 80 %.' }),
  caValidityDays: t.int({ env: 'CA_VALIDITY_DAYS', default: '3650', min: 30, max: 36500, doc: 'Validity of a new per-shoot CA; it is rotated at 80 % (the old CA stays in every bundle for CA_ROTATION_GRACE).' }),
  caRotationGraceMs: t.duration({ env: 'CA_ROTATION_GRACE', default: '168h', min: 0, doc: 'How long the previous CA stays in every bundle after a CA rotation, so that peers whose new certificates arrive later keep connecting (annotation vpn.reversed-vpn.dev/finish-ca-rotation on Secret ca-vpn ends it at once).' }),
  resyncMs: t.duration({ env: 'RESYNC', default: '60s', min: 1000, doc: 'Every ShootVpn is reconciled at least this often (level-based), besides watch events; a resync that finds nothing changed writes nothing.' }),
  fieldManager: t.string({ env: 'FIELD_MANAGER', default: 'reversed-vpn-operator', doc: 'Server-side apply field manager.' }),
  podNamespace: t.string({ env: 'POD_NAMESPACE', default: '', doc: "The operator's namespace (downward API): holds the leader-election Lease. Empty: the in-cluster ServiceAccount's namespace, else `default`." }),
  podName: t.string({ env: 'POD_NAME', default: '', doc: 'This replica\'s identity in the leader election and on Events (downward API); empty: the host name and a random suffix.' }),
  leaderElect: t.bool({ env: 'LEADER_ELECT', default: 'true', doc: 'Run for leadership of a Lease so that only one replica reconciles (two or more replicas may run).' }),
  leaseName: t.string({ env: 'LEADER_ELECTION_LEASE', default: 'reversed-vpn-operator', doc: 'Name of the coordination.k8s.io/v1 Lease in POD_NAMESPACE.' }),
  leaseDurationMs: t.duration({ env: 'LEADER_ELECTION_LEASE_DURATION', default: '15s', min: 1000, doc: 'A standby replica takes over when the leader has not renewed for this long.' }),
  renewDeadlineMs: t.duration({ env: 'LEADER_ELECTION_RENEW_DEADLINE', default: '10s', min: 500, doc: 'The leader stops reconciling when it could not renew for this long (less than the lease duration).' }),
  retryPeriodMs: t.duration({ env: 'LEADER_ELECTION_RETRY_PERIOD', default: '2s', min: 100, doc: 'How often the leader renews and a standby tries to acquire.' }),
  statusListen: t.hostPort({ env: 'STATUS_LISTEN', default: '0.0.0.0:15000', doc: 'Where /healthz, /readyz and /metrics are served.' }),
  logLevel: logLevelField,
  // --- shoot-setup / shoot-teardown (one shoot without the CRD: the chart's hook Job and renewal CronJob)
  namespace: t.string({ env: 'NAMESPACE', default: '', doc: 'shoot-setup/-teardown: the shoot\'s control-plane namespace in the seed (certificate Secrets, kube-apiserver Deployment).' }),
  shootSpecFile: optional(t.file({ env: 'SHOOT_SPEC_FILE', doc: 'shoot-setup/-teardown: JSON file `{"spec": <ShootVpn spec>, "mode": {"reversed": bool, "ha": bool}}` (the chart mounts it from a ConfigMap).' })),
  kubeApiserverDeployment: t.string({ env: 'KUBE_APISERVER_DEPLOYMENT', default: 'kube-apiserver', doc: 'shoot-setup/-teardown: the Deployment of the shoot\'s kube-apiserver in NAMESPACE to wire to the VPN (egress selector, proxy client Secret, labels; HA: path-controller). Set to "" (or `-`) not to wire it.' }),
  shootKubeconfigFile: optional(t.file({ env: 'SHOOT_KUBECONFIG_FILE', doc: 'shoot-setup/-teardown: a kubeconfig of the shoot; the shoot\'s certificate Secret is applied there. Unset: it is written to NAMESPACE as Secret vpn-shoot-certificates for the user to copy.' })),
};

export type OperatorConfig = ConfigOf<typeof operatorSchema> & { gates: { ReversedVPN: boolean }; command: OperatorCommand };

/**
 * `command` comes from the first argument (main.ts): `run` (default) or a one-shot. Besides the field
 * checks: the leader-election timings must nest (retry < renew deadline < lease duration), and the
 * one-shots need NAMESPACE and SHOOT_SPEC_FILE.
 */
export function loadOperatorConfig(env: Record<string, string | undefined>, opts: { command?: OperatorCommand } = {}): OperatorConfig {
  const command = opts.command ?? 'run';
  return loadConfig(operatorSchema, env, {
    app: command === 'run' ? 'operator' : `operator ${command}`,
    derive: (c) => {
      const gates: Record<string, boolean> = {};
      for (const part of c.featureGates.split(',').map((s) => s.trim()).filter(Boolean)) {
        const [k, v] = part.split('=');
        gates[k!] = v === 'true';
      }
      return { gates: { ReversedVPN: gates.ReversedVPN ?? true }, command, // set but empty means: do not wire (the schema alone would take an empty value for unset)
        kubeApiserverDeployment: env.KUBE_APISERVER_DEPLOYMENT === '' || c.kubeApiserverDeployment === '-' ? '' : c.kubeApiserverDeployment };
    },
    check: (c, add) => {
      // client-node would silently fall back to http://localhost:8080: refuse that here, with the reason
      if (c.kubeconfig) {
        for (const f of c.kubeconfig.split(':').filter(Boolean)) if (!readable(f)) add('KUBECONFIG', `${f} does not exist or is not readable`);
      } else if (!env.KUBERNETES_SERVICE_HOST && !(env.HOME && readable(join(env.HOME, '.kube', 'config')))) {
        add('KUBECONFIG', 'no credentials: set KUBECONFIG to a kubeconfig file (or create ~/.kube/config), or run in a pod (in-cluster: KUBERNETES_SERVICE_HOST and the ServiceAccount token)');
      }
      for (const part of c.featureGates.split(',').map((s) => s.trim()).filter(Boolean)) {
        const m = /^([A-Za-z]+)=(true|false)$/.exec(part);
        if (!m) add('FEATURE_GATES', `${JSON.stringify(part)} is not Gate=true|false`);
        else if (m[1] !== 'ReversedVPN') add('FEATURE_GATES', `unknown gate ${m[1]} (known: ReversedVPN)`);
      }
      if (c.leaderElect) {
        if (c.renewDeadlineMs >= c.leaseDurationMs) add('LEADER_ELECTION_RENEW_DEADLINE', `must be less than LEADER_ELECTION_LEASE_DURATION (${c.leaseDurationMs} ms): a leader must give up before a standby may take over`);
        if (c.retryPeriodMs >= c.renewDeadlineMs) add('LEADER_ELECTION_RETRY_PERIOD', `must be less than LEADER_ELECTION_RENEW_DEADLINE (${c.renewDeadlineMs} ms)`);
      }
      if (command !== 'run') {
        if (!c.namespace) add('NAMESPACE', `is required for ${command}: the shoot's control-plane namespace in the seed`);
        if (!c.shootSpecFile) add('SHOOT_SPEC_FILE', `is required for ${command}: a JSON file {"spec": …, "mode": {"reversed": …, "ha": …}}`);
      }
    },
  }) as OperatorConfig;
}
