/**
 * Error codes. Every failure a caller may want to handle has one error class with a stable
 * code of the form `RVPN_ERR_<AREA>_<WHAT>`. Callers and tests match on `code`, never on
 * message text. Each library declares its codes with `defineError` in its own errors module;
 * docs/errors.md lists every code with what to do about it, and a test keeps both in sync.
 */

export interface RvpnErrorOptions {
  cause?: unknown;
  /** Structured facts about the failure (logged as fields, never parsed from the message). */
  details?: Record<string, unknown>;
}

export class RvpnError extends Error {
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: string, message: string, options: RvpnErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details;
    this.name = 'RvpnError';
  }
}

export interface ErrorDefinition {
  code: string;
  /** What the operator should do about it; rendered into docs/errors.md. */
  help: string;
}

const registry = new Map<string, ErrorDefinition>();

/** Every code declared so far (by the modules that were imported). */
export function registeredErrors(): ErrorDefinition[] {
  return [...registry.values()].sort((a, b) => a.code.localeCompare(b.code));
}

export type RvpnErrorClass = {
  new (message: string, options?: RvpnErrorOptions): RvpnError;
  readonly code: string;
  /** true when `err` is an RvpnError of this code (works across module copies). */
  is(err: unknown): err is RvpnError;
};

/**
 * Declares one error class. `help` says what to do about it.
 *
 *   export const ConfigInvalid = defineError('RVPN_ERR_CONFIG_INVALID', 'Fix the listed variables.');
 *   throw new ConfigInvalid('2 problems: ...', { details: { problems } });
 */
export function defineError(code: string, help: string): RvpnErrorClass {
  if (!/^RVPN_ERR_[A-Z0-9]+_[A-Z0-9_]+$/.test(code)) throw new Error(`bad error code ${code}`);
  if (registry.has(code)) throw new Error(`error code ${code} declared twice`);
  registry.set(code, { code, help });
  const cls = class extends RvpnError {
    static readonly code = code;
    constructor(message: string, options?: RvpnErrorOptions) {
      super(code, message, options);
    }
    static is(err: unknown): err is RvpnError {
      return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
    }
  };
  Object.defineProperty(cls, 'name', { value: codeToClassName(code) });
  return cls;
}

function codeToClassName(code: string): string {
  return code
    .replace(/^RVPN_ERR_/, '')
    .toLowerCase()
    .split('_')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('') + 'Error';
}

/** The code of any error-like value, or undefined. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  return undefined;
}
