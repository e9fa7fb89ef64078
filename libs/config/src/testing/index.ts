/**
 * Test helper of @rvpn/config's specs: what a configuration error lists.
 *
 *   expect(configProblems(() => loadShootConfig({}))).toContainEqual(expect.objectContaining({ env: 'TLS_CA_FILE' }));
 */
export interface ConfigProblem {
  env: string;
  problem: string;
}

/** Runs `fn`, which must fail with RVPN_ERR_CONFIG_INVALID, and returns the problems the error lists. */
export function configProblems(fn: () => unknown): ConfigProblem[] {
  try {
    fn();
  } catch (err) {
    if ((err as { code?: string }).code !== 'RVPN_ERR_CONFIG_INVALID') throw err;
    return (err as { details: { problems: ConfigProblem[] } }).details.problems;
  }
  throw new Error('expected a configuration error (RVPN_ERR_CONFIG_INVALID), got none');
}
