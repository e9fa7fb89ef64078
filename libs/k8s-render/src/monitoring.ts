/**
 * Monitoring of one shoot's VPN (rendered when monitoring is enabled): a ServiceMonitor for the seed
 * servers' /metrics and a PrometheusRule with alerts for no tunnel, a failing data-path probe and
 * certificates about to expire.
 */
import { objectLabels, selectorLabels } from './common.js';
import type { VpnMode } from './mode.js';
import { SEED_SERVER, SEED_SERVER_COMPONENT } from './seed.js';
import { SNI_PROXY, SNI_PROXY_COMPONENT } from './sni-proxy.js';
import type { K8sObject, ObjectMeta, VpnSpec } from './types.js';

/**
 * `opts.labels` go on the ServiceMonitor and the PrometheusRule only (what a Prometheus selects them
 * by, e.g. `release: kube-prometheus-stack`).
 */
export function renderMonitoring(spec: VpnSpec, mode: VpnMode, opts: { certificateWarningDays?: number; labels?: Record<string, string> } = {}, options: ObjectMeta = {}): K8sObject[] {
  const namespace = spec.namespace;
  const meta = { ...(opts.labels ?? {}), ...objectLabels(SEED_SERVER, 'monitoring', options) };
  const ns = `namespace="${namespace}"`;
  const days = opts.certificateWarningDays ?? 7;
  const tunnelDown = mode.ha
    ? `sum(rvpn_seed_server_ha_ports{${ns},role="shoot"}) == 0`
    : `max(rvpn_seed_server_tunnel_connected{${ns}}) == 0`;
  const probeFailing = mode.ha
    ? `max(rvpn_path_controller_probe_success{${ns}}) == 0`
    : `max(rvpn_seed_server_probe_success{${ns}}) == 0`;
  return [
    {
      apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', metadata: { name: SEED_SERVER, namespace, labels: meta },
      spec: { selector: { matchLabels: selectorLabels(SEED_SERVER, SEED_SERVER_COMPONENT, options) }, endpoints: [{ port: 'metrics', interval: '30s', path: '/metrics' }] },
    },
    {
      apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule', metadata: { name: 'reversed-vpn', namespace, labels: meta },
      spec: {
        groups: [{
          name: 'reversed-vpn.rules',
          rules: [
            { alert: 'VpnTunnelDown', expr: tunnelDown, for: '2m', labels: { severity: 'critical' }, annotations: { summary: `No VPN tunnel from shoot ${spec.shoot.project}/${spec.shoot.name}`, description: 'No vpn-shoot is connected: logs, exec, port-forward and webhooks into the shoot fail.' } },
            { alert: 'VpnDataPathProbeFailing', expr: probeFailing, for: '2m', labels: { severity: 'critical' }, annotations: { summary: 'The probe through the VPN fails', description: 'Clients are connected but nothing passes the data path (the check Gardener #9604 lacked).' } },
            { alert: 'VpnCertificateExpiresSoon', expr: `min(rvpn_seed_server_certificate_not_after_seconds{${ns}}) - time() < ${days * 86400}`, for: '10m', labels: { severity: 'warning' }, annotations: { summary: `A VPN certificate expires within ${days} days`, description: 'Renewal (at 80 % of validity) did not happen: check the operator or, installed without it, the vpn-shoot-setup CronJob.' } },
          ],
        }],
      },
    },
  ];
}

/** Keys in byte order, as Go (Helm's toPrettyJson) sorts map keys: the chart and this render agree to the byte. */
const sortedMap = (m: Record<string, string>) => Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/**
 * An sni-proxy route file as the ConfigMap that sni-proxy mounts and watches: the operator's (every
 * ShootVpn's CONNECT route) or, with `opts.sni`, the chart's static one (SNI and CONNECT entries).
 */
export function renderSniProxyRoutesConfigMap(routes: Record<string, string>, namespace: string, name = 'sni-proxy-routes', opts: { sni?: Record<string, string> } = {}, options: ObjectMeta = {}): K8sObject {
  const file = { connect: sortedMap(routes), ...(opts.sni ? { sni: sortedMap(opts.sni) } : {}) };
  return {
    apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, labels: objectLabels(SNI_PROXY, SNI_PROXY_COMPONENT, options) },
    data: { 'routes.json': `${JSON.stringify(file, null, 2)}\n` },
  };
}
