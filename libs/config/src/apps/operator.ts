/** operator configuration. */
import { loadConfig, t, type ConfigOf } from '../schema.js';

export const operatorSchema = {
  kubeApiServer: t.string({ env: 'KUBE_API_SERVER', default: '', doc: 'API server URL; empty: in-cluster (service account token and CA).' }),
  featureGates: t.string({ env: 'FEATURE_GATES', default: 'ReversedVPN=true', doc: 'Comma list of Gate=true|false; known: ReversedVPN.' }),
  sniProxyNamespace: t.string({ env: 'SNI_PROXY_NAMESPACE', default: 'rvpn-system', doc: 'Namespace of sni-proxy (its route ConfigMap is published there).' }),
  sniProxyRoutesConfigMap: t.string({ env: 'SNI_PROXY_ROUTES_CONFIGMAP', default: 'sni-proxy-routes', doc: "Name of sni-proxy's route ConfigMap." }),
  monitoring: t.bool({ env: 'MONITORING', default: 'false', doc: 'Render a ServiceMonitor and PrometheusRule per shoot (needs the prometheus-operator CRDs).' }),
  certValidityDays: t.int({ env: 'CERT_VALIDITY_DAYS', default: '90', min: 1, max: 3650, doc: 'Validity of issued leaf certificates; they are renewed at 80 %.' }),
  caValidityDays: t.int({ env: 'CA_VALIDITY_DAYS', default: '3650', min: 30, max: 36500, doc: 'Validity of a new per-shoot CA.' }),
  resyncMs: t.duration({ env: 'RESYNC', default: '60s', min: 1000, doc: 'Every ShootVpn is reconciled at least this often (level-based), besides watch events.' }),
  fieldManager: t.string({ env: 'FIELD_MANAGER', default: 'reversed-vpn-operator', doc: 'Server-side apply field manager.' }),
  statusListen: t.hostPort({ env: 'STATUS_LISTEN', default: '0.0.0.0:15000', doc: 'Where /healthz, /readyz and /metrics are served.' }),
  logLevel: t.enumOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const, { env: 'LOG_LEVEL', default: 'info', doc: 'Level of the structured JSON logs.' }),
};

export type OperatorConfig = ConfigOf<typeof operatorSchema> & { gates: { ReversedVPN: boolean } };

export function loadOperatorConfig(env: Record<string, string | undefined>): OperatorConfig {
  return loadConfig(operatorSchema, env, {
    app: 'operator',
    derive: (c) => {
      const gates: Record<string, boolean> = {};
      for (const part of c.featureGates.split(',').map((s) => s.trim()).filter(Boolean)) {
        const [k, v] = part.split('=');
        gates[k!] = v === 'true';
      }
      return { gates: { ReversedVPN: gates.ReversedVPN ?? true } };
    },
    check: (c, add) => {
      if (!c.kubeApiServer && !env.KUBERNETES_SERVICE_HOST) add('KUBE_API_SERVER', 'is required outside a cluster (KUBERNETES_SERVICE_HOST is unset, so there is no in-cluster API server)');
      for (const part of c.featureGates.split(',').map((s) => s.trim()).filter(Boolean)) {
        const m = /^([A-Za-z]+)=(true|false)$/.exec(part);
        if (!m) add('FEATURE_GATES', `${JSON.stringify(part)} is not Gate=true|false`);
        else if (m[1] !== 'ReversedVPN') add('FEATURE_GATES', `unknown gate ${m[1]} (known: ReversedVPN)`);
      }
    },
  }) as OperatorConfig;
}
