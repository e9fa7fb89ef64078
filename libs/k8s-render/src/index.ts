/**
 * @rvpn/k8s-render: pure functions from one shoot's VPN spec to the Kubernetes objects of the seed
 * side (vpn-seed-server, Services, PDB, NetworkPolicies, the apiserver's egress-selector config and HA
 * sidecar patch, sni-proxy routes) and the shoot side (vpn-shoot and its companions).
 */
export type { VpnSpec, RenderSettings, K8sObject, FailureTolerance, IpFamilyName } from './types.js';
export { resolveVpnMode, SpecInvalidError, KubeApiError, REVERSED_VPN_ANNOTATION, HA_VPN_ANNOTATION, type VpnMode } from './mode.js';
export { renderSeed, egressSelectorConfig, apiserverSidecarPatch, type ApiserverSidecar, sniProxyRoutes, connectHeaderValue, SEED_SERVER, HA_SERVERS, HA_CLIENTS } from './seed.js';
export { renderShoot, SHOOT_NAMESPACE, VPN_SHOOT } from './shoot.js';
export { renderCrd, vpnSpecSchema, vpnStatusSchema, CRD_GROUP, CRD_VERSION, CRD_KIND, CRD_PLURAL } from './crd.js';
export { renderMonitoring, renderSniProxyRoutesConfigMap } from './monitoring.js';
export { renderSniProxy, type SniProxyInput } from './sni-proxy.js';
export { renderCertificateSecrets, type CertificateMaterial, type Pem } from './secrets.js';
export { renderOperator, type OperatorInput } from './operator.js';
