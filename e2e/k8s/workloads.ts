/**
 * The workloads the suites run in the SHOOT (namespace rvtb-e2e): a log writer, an HTTP server for
 * port-forward, and a validating admission webhook registered by Service — everything the shoot's
 * kube-apiserver (in the seed) can only reach through the VPN.
 */
import { createCa, issueCertificate } from '@rvpn/pki';
import { IMAGES } from '@rvpn/tools/testbed';
import { applyObjects, k } from './harness.js';

export const E2E_NS = 'rvtb-e2e';
export const WEBHOOK_NS = 'rvtb-webhook-test';
const labels = (app: string) => ({ 'app.kubernetes.io/name': app });

function deployment(name: string, args: string[], extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: E2E_NS },
    spec: {
      replicas: 1, selector: { matchLabels: labels(name) },
      template: {
        metadata: { labels: labels(name) },
        spec: {
          automountServiceAccountToken: false,
          containers: [{ name, image: IMAGES.workload, imagePullPolicy: 'IfNotPresent', args, resources: { requests: { cpu: '5m', memory: '32Mi' } }, ...extra }],
          ...(name === 'webhook' ? { volumes: [{ name: 'tls', secret: { secretName: 'webhook-tls' } }] } : {}),
        },
      },
    },
  };
}

/** Deploys the workloads (idempotent) and returns the webhook's CA for its configuration. */
export async function deployWorkloads(): Promise<{ webhookCa: string }> {
  const ca = await createCa({ commonName: 'rvtb-e2e-webhook-ca' });
  const cert = await issueCertificate(ca, { commonName: 'webhook', usage: 'server', dnsNames: [`webhook.${E2E_NS}.svc`, `webhook.${E2E_NS}.svc.cluster.local`] });
  await applyObjects('shoot', [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: E2E_NS } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: WEBHOOK_NS, labels: { 'rvtb.dev/webhook': 'on' } } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'webhook-tls', namespace: E2E_NS }, type: 'kubernetes.io/tls', data: { 'tls.crt': Buffer.from(cert.certPem).toString('base64'), 'tls.key': Buffer.from(cert.keyPem).toString('base64') } },
    deployment('logger', ['log']),
    deployment('http', ['http', '8080'], { ports: [{ containerPort: 8080 }], readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 2 } }),
    deployment('webhook', ['webhook', '8443', '/tls'], { ports: [{ containerPort: 8443 }], volumeMounts: [{ name: 'tls', mountPath: '/tls', readOnly: true }], readinessProbe: { httpGet: { path: '/healthz', port: 8443, scheme: 'HTTPS' }, periodSeconds: 2 } }),
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'webhook', namespace: E2E_NS }, spec: { selector: labels('webhook'), ports: [{ port: 443, targetPort: 8443 }] } },
  ]);
  // the webhook reads its certificate at start: a new one (each run makes its own CA) needs a new pod
  await k('shoot', ['rollout', 'restart', '-n', E2E_NS, 'deployment/webhook']);
  await k('shoot', ['rollout', 'status', '-n', E2E_NS, 'deployment/logger', 'deployment/http', 'deployment/webhook', '--timeout=180s'], { timeoutMs: 200_000 });
  return { webhookCa: ca.certPem };
}

/** The webhook registration (by Service): ConfigMaps in WEBHOOK_NS only, so nothing else depends on the tunnel. */
export function webhookConfiguration(caPem: string) {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration', metadata: { name: 'rvtb-e2e' },
    webhooks: [{
      name: 'configmaps.rvtb.dev', admissionReviewVersions: ['v1'], sideEffects: 'None', failurePolicy: 'Fail', timeoutSeconds: 10,
      clientConfig: { service: { namespace: E2E_NS, name: 'webhook', port: 443, path: '/validate' }, caBundle: Buffer.from(caPem).toString('base64') },
      rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] }],
      namespaceSelector: { matchLabels: { 'rvtb.dev/webhook': 'on' } },
    }],
  };
}

/** Creates (server-side dry run) a ConfigMap the webhook judges: allowed unless `deny`. */
export function webhookProbe(name: string, deny: boolean) {
  const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: WEBHOOK_NS, ...(deny ? { labels: { 'rvtb.dev/deny': 'true' } } : {}) } };
  return k('shoot', ['create', '--dry-run=server', '-o', 'name', '-f', '-'], { allowFail: true, timeoutMs: 30_000, input: JSON.stringify(cm) });
}
