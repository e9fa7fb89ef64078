/**
 * The test bed for suites that run on it (e2e/k8s): paths, kubectl and helm of the two clusters, and
 * up/down/status as `pnpm cluster` runs them.
 */
export { up, down, status, type Status } from './cluster.js';
export { K8S_VERSION, NODES, SHOOT, SNI_PROXY, IMAGES, PUBLIC_ZONE, BIN_DIR, DATA, kubeconfigPath, type NodeName } from './config.js';
export { KUBECTL, kubectl, apply, getJson, waitApiReady, waitNodeReady, waitPodsReady } from './kubectl.js';
export { SEED_AUDIT_LOG, shootControlPlane } from './control-plane.js';
export { readState, alive } from './daemons.js';
export { setShootOpenings, shootFirewall } from './network.js';
export { poolAddresses, allocate } from './lb-allocator.js';
export { connectHead } from './apiserver-proxy.js';
export { ensureHelm } from '../helm.js';
