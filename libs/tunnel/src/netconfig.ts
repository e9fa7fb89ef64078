/**
 * Host network configuration through iproute2 and nftables, with every change recorded so that
 * `undoAll()` leaves the namespace as it found it (addresses, routes, sysctls, firewall tables).
 * Commands run with execFile (no shell). With `netns`, everything targets that network namespace
 * (used by tests and tools); apps run inside their pod's namespace and leave it unset.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { NetCommandError, NetToolMissingError } from './errors.js';
import { sameSysctlValue } from '@rvpn/observability';

export interface NetLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface RouteSpec {
  dst: string;
  dev?: string;
  /** Next hop; an IPv6 next hop for an IPv4 route is written `via inet6 <addr>`. */
  via?: string;
  type?: 'unicast' | 'unreachable' | 'blackhole';
  src?: string;
  table?: number;
  metric?: number;
}

export interface NetConfigOptions {
  logger?: NetLogger;
  netns?: string;
}

function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: 15_000 }, (err, stdout, stderr) => {
      if (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(new NetToolMissingError(`${cmd} is not installed`, { cause: err }));
          return;
        }
        reject(new NetCommandError(`${cmd} ${args.join(' ')} failed: ${stderr.trim() || err.message}`, {
          cause: err,
          details: { command: [cmd, ...args].join(' '), exitCode: (err as { code?: unknown }).code, stderr: stderr.trim() },
        }));
        return;
      }
      resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

function isV6(addr: string): boolean {
  return addr.includes(':');
}

export function routeArgs(r: RouteSpec): string[] {
  const args: string[] = [];
  if (r.type && r.type !== 'unicast') args.push(r.type);
  args.push(r.dst);
  if (r.via) {
    if (isV6(r.via) && !isV6(r.dst)) args.push('via', 'inet6', r.via);
    else args.push('via', r.via);
  }
  if (r.dev) args.push('dev', r.dev);
  if (r.src) args.push('src', r.src);
  if (r.metric !== undefined) args.push('metric', String(r.metric));
  if (r.table !== undefined) args.push('table', String(r.table));
  return args;
}

export class NetConfig {
  private readonly log: NetLogger | undefined;
  private readonly netns: string | undefined;
  private readonly undo: Array<{ what: string; fn: () => Promise<void> }> = [];

  constructor(opts: NetConfigOptions = {}) {
    this.log = opts.logger;
    this.netns = opts.netns;
  }

  /** Runs `ip` (in the namespace, if set). */
  ip(args: string[]): Promise<string> {
    return run('ip', this.netns ? ['-n', this.netns, ...args] : args);
  }

  private nft(args: string[], input?: string): Promise<string> {
    return this.netns ? run('ip', ['netns', 'exec', this.netns, 'nft', ...args], input) : run('nft', args, input);
  }

  private remember(what: string, fn: () => Promise<void>) {
    this.undo.push({ what, fn });
  }

  static async linkExists(dev: string, netns?: string): Promise<boolean> {
    try {
      await run('ip', [...(netns ? ['-n', netns] : []), 'link', 'show', 'dev', dev]);
      return true;
    } catch (err) {
      if (NetToolMissingError.is(err)) throw err;
      return false;
    }
  }

  async linkUp(dev: string): Promise<void> {
    await this.ip(['link', 'set', 'dev', dev, 'up']);
  }

  /** Sets a link's MAC address (a TAP bond gets the MAC derived from its bond address). */
  async setLinkAddress(dev: string, mac: string): Promise<void> {
    await this.ip(['link', 'set', 'dev', dev, 'address', mac]);
  }

  /** `ip rule add fwmark <mark> table <table>` (both families); undo deletes it. */
  async addFwmarkRule(mark: number, table: number, priority: number): Promise<void> {
    for (const fam of ['-4', '-6']) {
      await this.ip([fam, 'rule', 'del', 'priority', String(priority)]).catch(() => undefined);
      await this.ip([fam, 'rule', 'add', 'priority', String(priority), 'fwmark', `0x${mark.toString(16)}`, 'table', String(table)]);
      this.remember(`rule ${fam} ${priority}`, () => this.ip([fam, 'rule', 'del', 'priority', String(priority)]).then(() => undefined));
    }
  }

  async setMtu(dev: string, mtu: number): Promise<void> {
    await this.ip(['link', 'set', 'dev', dev, 'mtu', String(mtu)]);
  }

  /** Adds an address (IPv6 without duplicate address detection, so it is usable at once). */
  async addAddress(dev: string, cidr: string): Promise<void> {
    const args = ['addr', 'replace', cidr, 'dev', dev, ...(isV6(cidr) ? ['nodad'] : [])];
    await this.ip(args);
    this.remember(`address ${cidr} on ${dev}`, () => this.ip(['addr', 'del', cidr, 'dev', dev]).then(() => undefined));
  }

  async deleteAddress(dev: string, cidr: string): Promise<void> {
    await this.ip(['addr', 'del', cidr, 'dev', dev]);
  }

  /** `ip route replace`; undo deletes the route whatever it was replaced with later. */
  async replaceRoute(r: RouteSpec): Promise<void> {
    await this.ip(['-' + (isV6(r.dst) ? '6' : '4'), 'route', 'replace', ...routeArgs(r)]);
    const key = `${r.dst}@${r.table ?? 'main'}`;
    if (!this.undo.some((u) => u.what === `route ${key}`)) {
      this.remember(`route ${key}`, () =>
        this.ip(['-' + (isV6(r.dst) ? '6' : '4'), 'route', 'del', r.dst, ...(r.table !== undefined ? ['table', String(r.table)] : [])]).then(() => undefined));
    }
  }

  async deleteRoute(r: RouteSpec): Promise<void> {
    await this.ip(['-' + (isV6(r.dst) ? '6' : '4'), 'route', 'del', ...routeArgs(r)]);
  }

  /** Writes a sysctl (e.g. `net.ipv4.ip_forward`); undo restores the old value. */
  async setSysctl(name: string, value: string): Promise<void> {
    const path = `/proc/sys/${name.replace(/\./g, '/')}`;
    if (this.netns) {
      const old = (await run('ip', ['netns', 'exec', this.netns, 'cat', path])).trim();
      if (sameSysctlValue(old, value)) return;
      await run('ip', ['netns', 'exec', this.netns, 'sysctl', '-q', '-w', `${name}=${value}`]);
      this.remember(`sysctl ${name}`, () => run('ip', ['netns', 'exec', this.netns!, 'sysctl', '-q', '-w', `${name}=${old}`]).then(() => undefined));
      return;
    }
    let old: string;
    try {
      old = (await readFile(path, 'utf8')).trim();
    } catch (err) {
      throw new NetCommandError(`cannot read sysctl ${name}: ${(err as Error).message}`, { cause: err });
    }
    if (sameSysctlValue(old, value)) return;
    try {
      await writeFile(path, value);
    } catch (err) {
      throw new NetCommandError(`cannot set sysctl ${name}=${value}: ${(err as Error).message}`, { cause: err });
    }
    this.remember(`sysctl ${name}`, () => writeFile(path, old));
  }

  /**
   * Installs (or atomically replaces) an nftables table. The script declares the table, deletes it
   * and recreates it in one transaction, so applying it twice, or over a table a killed process left
   * behind, gives the same result.
   */
  async applyNftTable(family: 'inet' | 'ip' | 'ip6', name: string, body: string): Promise<void> {
    const script = `table ${family} ${name}\ndelete table ${family} ${name}\ntable ${family} ${name} {\n${body}\n}\n`;
    await this.nft(['-f', '-'], script);
    if (!this.undo.some((u) => u.what === `nft ${family} ${name}`)) {
      this.remember(`nft ${family} ${name}`, () => this.deleteNftTable(family, name));
    }
  }

  async deleteNftTable(family: 'inet' | 'ip' | 'ip6', name: string): Promise<void> {
    // Declaring first makes the delete succeed whether or not the table exists.
    await this.nft(['-f', '-'], `table ${family} ${name}\ndelete table ${family} ${name}\n`);
  }

  /**
   * Deletes the conntrack entries whose original destination lies in `dst` (a CIDR), so flows bound to
   * an old NAT translation do not outlive it. Needs conntrack(8); "0 flow entries" is no error.
   */
  async flushConntrack(dst: string): Promise<void> {
    const args = ['-D', '-f', isV6(dst) ? 'ipv6' : 'ipv4', '-d', dst];
    try {
      if (this.netns) await run('ip', ['netns', 'exec', this.netns, 'conntrack', ...args]);
      else await run('conntrack', args);
    } catch (err) {
      // conntrack exits 1 when nothing matched
      if (NetCommandError.is(err) && /0 flow entries/.test(String(err.details?.stderr ?? ''))) return;
      throw err;
    }
  }

  /** Reverts every change this instance made, newest first. Never throws; failures are logged. */
  async undoAll(): Promise<void> {
    while (this.undo.length > 0) {
      const u = this.undo.pop()!;
      try {
        await u.fn();
      } catch (err) {
        this.log?.debug({ what: u.what, err: (err as Error).message }, 'undo step failed (already gone?)');
      }
    }
  }
}
