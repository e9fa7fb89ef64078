import { defineError } from '@rvpn/config';

export const EnvtestBinariesMissingError = defineError(
  'RVPN_ERR_ENVTEST_BINARIES_MISSING',
  'The test API server needs etcd, kube-apiserver and kubectl from the test bed cache ($RVPN_TESTBED_CACHE/bin, default /var/cache/reversed-vpn/testbed/bin): run `bash tools/testbed/build-binaries.sh`.',
);
export const EnvtestStartError = defineError(
  'RVPN_ERR_ENVTEST_START',
  'etcd or kube-apiserver of the test API server exited or did not become ready in time; the error carries the tail of its log (details.log).',
);
export const EnvtestRequestError = defineError(
  'RVPN_ERR_ENVTEST_REQUEST',
  'A request of the test API server helper failed (details.status, details.body); the message names the call.',
);
