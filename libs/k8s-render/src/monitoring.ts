/**
 * Monitoring of one shoot's VPN (rendered when monitoring is enabled): a ServiceMonitor for the seed
 * servers' /metrics and a PrometheusRule with alerts for no tunnel, a failing data-path probe and
 * certificates about to expire.
 */
import { labels } from './common.js';
import type { VpnMode } from './mode.js';
import { SEED_SERVER } from './seed.js';
import type { K8sObject, VpnSpec } from './types.js';

export function renderMonitoring(spec: VpnSpec, mode: VpnMode, opts: { certificateWarningDays?: number } = {}): K8sObject[] {
  const namespace = spec.namespace;
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
      apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', metadata: { name: SEED_SERVER, namespace, labels: labels(SEED_SERVER) },
      spec: { selector: { matchLabels: labels(SEED_SERVER) }, endpoints: [{ port: 'metrics', interval: '30s', path: '/metrics' }] },
    },
    {
      apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule', metadata: { name: 'reversed-vpn', namespace, labels: labels(SEED_SERVER) },
      spec: {
        groups: [{
          name: 'reversed-vpn.rules',
          rules: [
            { alert: 'VpnTunnelDown', expr: tunnelDown, for: '2m', labels: { severity: 'critical' }, annotations: { summary: `No VPN tunnel from shoot ${spec.shoot.project}/${spec.shoot.name}`, description: 'No vpn-shoot is connected: logs, exec, port-forward and webhooks into the shoot fail.' } },
            { alert: 'VpnDataPathProbeFailing', expr: probeFailing, for: '2m', labels: { severity: 'critical' }, annotations: { summary: 'The probe through the VPN fails', description: 'Clients are connected but nothing passes the data path (the check Gardener #9604 lacked).' } },
            { alert: 'VpnCertificateExpiresSoon', expr: `min(rvpn_seed_server_certificate_not_after_seconds{${ns}}) - time() < ${days * 86400}`, for: '10m', labels: { severity: 'warning' }, annotations: { summary: `A VPN certificate expires within ${days} days`, description: 'Renewal (at 80 % of validity) did not happen: check the operator.' } },
          ],
        }],
      },
    },
  ];
}

/** The sni-proxy route file of a whole seed, as the ConfigMap that sni-proxy mounts and watches. */
export function renderSniProxyRoutesConfigMap(routes: Record<string, string>, namespace: string, name = 'sni-proxy-routes'): K8sObject {
  const sorted = Object.fromEntries(Object.entries(routes).sort(([a], [b]) => a.localeCompare(b)));
  return {
    apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, labels: labels('sni-proxy') },
    data: { 'routes.json': `${JSON.stringify({ connect: sorted }, null, 2)}\n` },
  };
}
