import { readFileSync } from 'node:fs';

export interface TlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/**
 * Reads a TLS CA bundle, certificate and key from disk — at every call, so the caller that asks per
 * connection (or after a file watch fired) always gets the current files (renewal, CA rotation).
 */
export function readTlsFiles(files: TlsFiles): { ca: Buffer; cert: Buffer; key: Buffer } {
  return { ca: readFileSync(files.caFile), cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) };
}
