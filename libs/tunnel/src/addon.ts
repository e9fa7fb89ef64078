/**
 * The native addon (../native/src/tun.cc): the TUN/TAP device and a setsockopt for options Node does
 * not expose. Loaded once, on first use.
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TunAddonError } from './errors.js';

let addon: unknown;

/**
 * Where the addon is: beside this module in the package (src/ for the tests and dist/ both sit one
 * level below the package root), or, when this module is part of an app's bundle (esbuild.apps.mjs:
 * apps/<app>/dist/main.bundle.js, /app/dist/main.bundle.js in the images), in the @rvpn/tunnel package
 * the app depends on, resolved from the bundle through its exports ("./native/rvpn_tun.node").
 */
function addonPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const inPackage = join(here, '..', 'native', 'build', 'Release', 'rvpn_tun.node');
  if (existsSync(inPackage)) return inPackage;
  try {
    return createRequire(import.meta.url).resolve('@rvpn/tunnel/native/rvpn_tun.node');
  } catch {
    return inPackage;
  }
}

export function loadNativeAddon(): unknown {
  if (addon) return addon;
  const path = addonPath();
  if (!existsSync(path)) throw new TunAddonError(`native addon missing at ${path}; build it with: pnpm --filter @rvpn/tunnel build`);
  try {
    addon = createRequire(import.meta.url)(path);
  } catch (err) {
    throw new TunAddonError(`cannot load ${path}: ${(err as Error).message}`, { cause: err });
  }
  return addon;
}

/** The descriptor libuv holds for a connected net.Socket (undefined before connect and after close). */
export function socketFd(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}
