/** What counts as "the live object still holds what we applied" (no write), and Secrets as data. */
import { describe, expect, it } from 'vitest';
import { covers, stableJson, withSecretData } from './applier.js';

describe('covers', () => {
  it.each([
    ['defaults the server added', { spec: { replicas: 1, strategy: { type: 'Recreate' } } }, { spec: { replicas: 1, revisionHistoryLimit: 10, strategy: { type: 'Recreate' } } }, true],
    ['a value another manager changed', { spec: { replicas: 1 } }, { spec: { replicas: 3 } }, false],
    ['a label of another manager', { metadata: { labels: { a: '1' } } }, { metadata: { labels: { a: '1', team: 'x' } } }, true],
    ['a label of ours removed', { metadata: { labels: { a: '1' } } }, { metadata: { labels: {} } }, false],
    ['named list entries in another order, with defaults', { c: [{ name: 'a', image: 'x' }, { name: 'b' }] }, { c: [{ name: 'b', tty: false }, { name: 'a', image: 'x', imagePullPolicy: 'IfNotPresent' }] }, true],
    ['a named entry of ours changed', { c: [{ name: 'a', image: 'x' }] }, { c: [{ name: 'a', image: 'y' }] }, false],
    ['an env entry of another manager', { env: [{ name: 'A', value: '1' }] }, { env: [{ name: 'A', value: '1' }, { name: 'DEBUG', value: '1' }] }, true],
    ['scalars by membership', { args: ['--a', '--b'] }, { args: ['--a', '--b', '--c'] }, true],
    ['a scalar of ours gone', { args: ['--a', '--b'] }, { args: ['--a'] }, false],
    ['an empty list the server left out', { ingress: [], egress: [{}] }, { egress: [{}] }, true],
    ['an empty list someone filled', { ingress: [] }, { ingress: [{ from: [] }] }, false],
    ['a NetworkPolicy peer dropped', { ingress: [{ from: [{ podSelector: {} }], ports: [{ port: 1 }] }] }, { ingress: [{ ports: [{ port: 1, protocol: 'TCP' }] }] }, false],
  ])('%s → %s', (_what, want, live, expected) => {
    expect(covers(live, want)).toBe(expected);
  });
});

describe('withSecretData', () => {
  it('moves stringData into data (base64) so apply owns each key', () => {
    const s = withSecretData({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, stringData: { 'tls.crt': 'PEM' }, data: { old: 'eA==' } });
    expect(s).toEqual({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, data: { old: 'eA==', 'tls.crt': Buffer.from('PEM').toString('base64') } });
    expect(stableJson({ b: 1, a: [{ d: 1, c: 2 }] })).toBe('{"a":[{"c":2,"d":1}],"b":1}');
  });
});
