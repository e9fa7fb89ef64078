import { execFileSync } from 'node:child_process';

/**
 * The receive buffer (ss's `rb`, bytes; the kernel doubles SO_RCVBUF) of every established TCP socket of
 * this network namespace that matches an ss filter such as `sport = :1194`, in ss's order.
 */
export function receiveBuffers(filter: string): number[] {
  const out = execFileSync('ss', ['-tmnH', 'state', 'established', filter], { encoding: 'utf8' });
  return [...out.matchAll(/rb(\d+)/g)].map((m) => Number(m[1]));
}
