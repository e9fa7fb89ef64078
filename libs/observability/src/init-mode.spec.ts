import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { applySysctls } from './init-mode.js';

describe('applySysctls (the apps\' --init mode)', () => {
  let root: string;
  const file = (name: string, value: string) => {
    const p = join(root, 'proc/sys', ...name.split('.'));
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, `${value}\n`);
    return p;
  };
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('writes what differs, leaves what matches, and reports both', () => {
    root = mkdtempSync(join(tmpdir(), 'rvpn-sysctl-'));
    const fwd = file('net.ipv4.ip_forward', '0');
    const rp = file('net.ipv4.conf.all.rp_filter', '0');
    const lines = applySysctls({ 'net.ipv4.ip_forward': '1', 'net.ipv4.conf.all.rp_filter': '0' }, root);
    expect(readFileSync(fwd, 'utf8')).toBe('1');
    expect(readFileSync(rp, 'utf8')).toBe('0\n');
    expect(lines).toEqual(['net.ipv4.ip_forward = 1 (was 0)', 'net.ipv4.conf.all.rp_filter = 0 (already)']);
  });

  it('fails on a sysctl that does not exist and on names that are not sysctl names', () => {
    root = mkdtempSync(join(tmpdir(), 'rvpn-sysctl-'));
    expect(() => applySysctls({ 'net.ipv4.nope': '1' }, root)).toThrow(/ENOENT/);
    expect(() => applySysctls({ '../../etc/passwd': 'x' }, root)).toThrow(/not a sysctl name/);
  });
});
