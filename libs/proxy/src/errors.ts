import { defineError } from '@rvpn/config';

/** The proxy could not be reached at all (TCP connect failed). */
export const ProxyDialError = defineError('RVPN_ERR_PROXY_DIAL', 'The CONNECT proxy is unreachable: check ENDPOINT/OPENVPN_PORT and that the proxy runs; the client keeps retrying.');
/** The proxy answered the CONNECT with a status other than 200. */
export const ProxyStatusError = defineError('RVPN_ERR_PROXY_STATUS', 'The CONNECT proxy refused the request: the status and reason are in the log; usually a missing route or a header value outside the allow-list.');
/** The proxy did not answer in time. */
export const ProxyTimeoutError = defineError('RVPN_ERR_PROXY_TIMEOUT', 'The CONNECT proxy did not answer in time; the client retries with backoff.');
/** The proxy's answer was not HTTP/1.x or exceeded the size limit. */
export const ProxyProtocolError = defineError('RVPN_ERR_PROXY_PROTOCOL', 'The peer did not speak HTTP/1.x CONNECT (or sent an oversized head): check that the port is a CONNECT listener.');
/** A request head did not arrive in time. */
export const HeadTimeoutError = defineError('RVPN_ERR_PROXY_HEAD_TIMEOUT', 'The client did not send a complete request head (or ClientHello) in time; slow or idle clients are cut off (408).');
/** A request head exceeded the size limit. */
export const HeadTooLargeError = defineError('RVPN_ERR_PROXY_HEAD_TOO_LARGE', 'The request head exceeded the size limit (431); raise MAX_HEADER_BYTES only if a legitimate client needs it.');
/** A request head was not HTTP/1.x. */
export const HeadMalformedError = defineError('RVPN_ERR_PROXY_HEAD_MALFORMED', 'The bytes received are not an HTTP/1.x request (400): a wrong port or a scanner.');
/** The PROXY protocol header was missing or malformed. */
export const ProxyProtocolHeaderError = defineError('RVPN_ERR_PROXY_PROXYPROTO', 'The PROXY protocol header was missing or malformed: check PROXY_PROTOCOL against what the load balancer sends.');
/** The first bytes were not a TLS ClientHello. */
export const ClientHelloError = defineError('RVPN_ERR_PROXY_CLIENTHELLO', 'The client did not start with a TLS ClientHello on the SNI port.');
/** sni-proxy's route file did not validate (kept here so every error code is defined in a library). */
export const RoutesInvalidError = defineError('RVPN_ERR_SNI_ROUTES_INVALID', 'The route file is not valid: the message lists every problem; the previous routes stay active.');
