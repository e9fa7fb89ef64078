import { defineError } from '@rvpn/config';

/** The proxy could not be reached at all (TCP connect failed). */
export const ProxyDialError = defineError('RVPN_ERR_PROXY_DIAL', 'The CONNECT proxy is unreachable: check ENDPOINT/OPENVPN_PORT and that the proxy runs; the client keeps retrying.');
/** The proxy answered the CONNECT with a status other than 200. */
export const ProxyStatusError = defineError('RVPN_ERR_PROXY_STATUS', 'The CONNECT proxy refused the request: the status and reason are in the log; usually a missing route or a header value outside the allow-list.');
/** The proxy did not answer in time. */
export const ProxyTimeoutError = defineError('RVPN_ERR_PROXY_TIMEOUT', 'The CONNECT proxy did not answer in time; the client retries with backoff.');
/** The proxy's answer was not HTTP/1.x or exceeded the size limit. */
export const ProxyProtocolError = defineError('RVPN_ERR_PROXY_PROTOCOL', 'The peer did not speak HTTP/1.x CONNECT (or sent an oversized head): check that the port is a CONNECT listener.');
