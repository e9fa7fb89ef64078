import { defineError } from '@rvpn/config';

export const PkiInvalidInputError = defineError('RVPN_ERR_PKI_INVALID_INPUT', 'A certificate request was malformed (empty common name, bad IP address, non-positive validity): fix the caller.');
export const PkiParseError = defineError('RVPN_ERR_PKI_PARSE', 'A PEM certificate or key could not be parsed: check that the file holds a PEM CERTIFICATE or PRIVATE KEY block.');
