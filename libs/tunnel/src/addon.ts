/**
 * The native addon (../native/src/tun.cc): the TUN/TAP device and a setsockopt for options Node does
 * not expose. Loaded once, on first use.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TunAddonError } from './errors.js';

let addon: unknown;

export function loadNativeAddon(): unknown {
  if (addon) return addon;
  // src/ (tests) and dist/ (runtime) both sit one level below the package root.
  const here = dirname(fileURLToPath(import.meta.url));
  const path = join(here, '..', 'native', 'build', 'Release', 'rvpn_tun.node');
  if (!existsSync(path)) throw new TunAddonError(`native addon missing at ${path}; build it with: pnpm --filter @rvpn/tunnel build`);
  try {
    addon = createRequire(import.meta.url)(path);
  } catch (err) {
    throw new TunAddonError(`cannot load ${path}: ${(err as Error).message}`, { cause: err });
  }
  return addon;
}
