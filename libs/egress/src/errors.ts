import { defineError } from '@rvpn/config';

export const EgressListenError = defineError('RVPN_ERR_EGRESS_LISTEN', 'The CONNECT proxy could not bind its address (PROXY_LISTEN): another process holds the port, or the address is not local.');
export const EgressTlsConfigError = defineError('RVPN_ERR_EGRESS_TLS_CONFIG', 'The CONNECT proxy certificate, key or CA could not be loaded: check PROXY_TLS_CA_FILE, PROXY_TLS_CERT_FILE and PROXY_TLS_KEY_FILE.');
