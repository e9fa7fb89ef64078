/**
 * Anti-spoofing on packed batches, in place and allocation-free per packet: a packet whose source
 * (or destination, when a destination set is given) is not allowed is cut out of the batch.
 * The shoot side runs in a customer's cluster and is untrusted: at the seed, packets from the tunnel
 * must come from a shoot or tunnel address.
 */
import type { CidrSet } from '@rvpn/config';

export interface FilterRules {
  allowSource: CidrSet;
  allowDestination?: CidrSet;
}

export interface FilterResult {
  /** The batch with rejected packets removed (a view of the input buffer). */
  batch: Buffer;
  passed: number;
  dropped: number;
  malformed: number;
}

export function filterBatch(batch: Buffer, rules: FilterRules): FilterResult {
  let read = 0;
  let write = 0;
  let passed = 0;
  let dropped = 0;
  let malformed = 0;
  const dst = rules.allowDestination;
  while (read + 2 <= batch.length) {
    const len = (batch[read]! << 8) | batch[read + 1]!;
    const start = read + 2;
    const end = start + len;
    if (end > batch.length) {
      malformed++;
      break;
    }
    const version = len > 0 ? batch[start]! >> 4 : 0;
    let ok: boolean;
    if (version === 4 && len >= 20) {
      ok = rules.allowSource.matchV4(batch, start + 12) && (!dst || dst.matchV4(batch, start + 16));
    } else if (version === 6 && len >= 40) {
      ok = rules.allowSource.matchV6(batch, start + 8) && (!dst || dst.matchV6(batch, start + 24));
    } else {
      malformed++;
      read = end;
      continue;
    }
    if (ok) {
      if (write !== read) batch.copy(batch, write, read, end);
      write += end - read;
      passed++;
    } else {
      dropped++;
    }
    read = end;
  }
  return { batch: batch.subarray(0, write), passed, dropped, malformed };
}
