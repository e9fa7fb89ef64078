/**
 * @rvpn/k8s-render: pure functions from one shoot's VPN spec to the Kubernetes objects of the seed
 * side (vpn-seed-server, Services, PDB, NetworkPolicy, the kube-apiserver's egress-selector
 * configuration, sni-proxy routes), the kube-apiserver wiring (JSON patches), the shoot side (vpn-shoot
 * and its companions), the seed-wide entry point, and what a Helm install without the operator adds
 * (certificate setup jobs, the `helm test` pod). The chart in charts/reversed-vpn renders the same
 * objects from the same inputs; a test compares them object by object.
 *
 *   const mode = resolveVpnMode(spec, settings);
 *   const seed = renderSeed(spec, mode, settings, { instance: 'demo', managedBy: 'reversed-vpn-operator' });
 *   const ops = wireApiserverPatch(apiserverDeployment, apiserverWiring(spec, mode, { proxyClientChecksum }));
 */
export type { VpnSpec, NetworkMappingSpec, MappingModeName, RenderSettings, RenderOptions, ObjectMeta, PodOverrides, NetworkPolicyPeer, LabelSelector, K8sObject, FailureTolerance, IpFamilyName } from './types.js';
export { resolveVpnMode, SpecInvalidError, KubeApiError, REVERSED_VPN_ANNOTATION, HA_VPN_ANNOTATION, type VpnMode } from './mode.js';
export { APP_VERSION, networkEnv, mappingEnv, networkMappingOf, objectLabels, selectorLabels, imageRef, mergeValues, type ImageSpec, type WorkloadDefaults } from './common.js';
export {
  renderSeed, egressSelectorConfig, sniProxyRoutes, connectHeaderValue, seedServerDefaults, SEED_SERVER, SEED_SERVER_COMPONENT, HA_SERVERS, HA_CLIENTS,
  APISERVER_WIRING_LABEL, DEFAULT_METRICS_FROM, SEED_PROXY_TLS_SECRET, SEED_SERVER_TLS_SECRET, PROXY_CLIENT_SECRET, EGRESS_SELECTOR_CONFIGMAP,
} from './seed.js';
export {
  apiserverWiring, wireApiserverPatch, unwireApiserverPatch, kubernetesServiceTarget, proxyClientChecksum, holds, ApiserverWiringError,
  APISERVER_CONTAINER, PROXY_CLIENT_CHECKSUM_ANNOTATION, EGRESS_SELECTOR_FLAG, SEED_CLIENT_SECRET, PROXY_SERVER_SECRET, type ApiserverWiring, type JsonPatchOp,
} from './wiring.js';
export { renderShoot, shootSecretName, SHOOT_NAMESPACE, VPN_SHOOT, VPN_SHOOT_COMPONENT, VPN_SHOOT_DEFAULTS, type ShootRenderOptions } from './shoot.js';
export { renderCrd, vpnSpecSchema, vpnStatusSchema, CRD_GROUP, CRD_VERSION, CRD_KIND, CRD_PLURAL } from './crd.js';
export { renderMonitoring, renderSniProxyRoutesConfigMap } from './monitoring.js';
export { renderSniProxy, SNI_PROXY, SNI_PROXY_COMPONENT, SNI_PROXY_DEFAULTS, SNI_PROXY_LIMIT_DEFAULTS, type SniProxyInput, type SniProxyLimits } from './sni-proxy.js';
export { renderCertificateSecrets, type CertificateMaterial, type Pem } from './secrets.js';
export {
  renderShootSetup, renderConnectProbe, shootSpecFile, SHOOT_SETUP, SHOOT_SETUP_HOOK, SHOOT_TEARDOWN, PARKED_SHOOT_SECRET, CONNECT_PROBE_POD, SHOOT_SETUP_DEFAULTS,
  type ShootSetupInput, type ConnectProbeInput,
} from './setup.js';
export { renderOperator, type OperatorInput } from './operator.js';
