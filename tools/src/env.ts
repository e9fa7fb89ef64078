/**
 * Numeric settings of the benchmarks from the environment (BENCH_ROUNDS, HOPS_PINGS, SCALE_TUNNELS, ...):
 * unset or empty gives the default; anything else must parse as a whole number, or a number where
 * `integer` is false, at or above `min`. A bad value is an {@link EnvSettingError} that names the variable,
 * so `pnpm bench` can refuse it before any lab starts instead of after the parts before it ran.
 */
export class EnvSettingError extends RangeError {
  override name = 'EnvSettingError';
}

export interface EnvNumberOptions {
  /** Whole numbers only (default true). */
  integer?: boolean;
  /** The smallest value taken (default 1). */
  min?: number;
}

export function envNumber(name: string, def: number, opts: EnvNumberOptions = {}, env: NodeJS.ProcessEnv = process.env): number {
  const { integer = true, min = 1 } = opts;
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return def;
  const v = Number(raw.trim());
  const kind = `${integer ? 'a whole number' : 'a number'} >= ${min}`;
  if (!Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min) {
    throw new EnvSettingError(`${name} must be ${kind}, not ${JSON.stringify(raw)}`);
  }
  return v;
}
