/**
 * What sends packets into one tunnel session: the session's own buffer is kept short
 * (`bufferBytes`), and what does not fit waits in a FairQueue (fair-queue.ts) until the session
 * drains. Used by the non-HA data path (datapath.ts) and by both ends of the HA bond (one sender
 * per link or port), so every path into a tunnel has the same queue discipline.
 */
import { FairQueue, type FairQueueOptions } from './fair-queue.js';
import type { TunnelSession } from './session.js';

/** What the session's write buffer may hold before packets wait in the fair queue instead. */
export const DEFAULT_SESSION_BUFFER_BYTES = 64 * 1024;
/** The most bytes taken from the fair queue into one DATA_BATCH. */
const DEQUEUE_BATCH_BYTES = 64 * 1024;

export type SenderDropReason = 'queue_full' | 'codel';

export interface SessionSenderOptions {
  /** The queue's settings, or false to write straight into the session (its cap then says when to stop). */
  queue?: FairQueueOptions | false;
  /** Bytes the session's write buffer may hold before packets wait in the queue. Default 64 KiB. */
  bufferBytes?: number;
  onDrop?: (reason: SenderDropReason, count: number) => void;
}

export class SessionSender {
  readonly session: TunnelSession;
  /** The queue (undefined with `queue: false`). */
  readonly queue: FairQueue | undefined;
  /** The queue holds batches in the GSO layout (the session negotiated "gso" and the device offloads). */
  readonly gso: boolean;
  private readonly bufferBytes: number;
  private readonly onDrop: ((reason: SenderDropReason, count: number) => void) | undefined;
  private readonly offDrain: () => void;
  private closed = false;

  constructor(session: TunnelSession, opts: SessionSenderOptions = {}) {
    this.session = session;
    this.queue = opts.queue === false ? undefined : new FairQueue(opts.queue ?? {});
    this.gso = opts.queue !== false && (opts.queue?.gso ?? false);
    this.bufferBytes = opts.bufferBytes ?? DEFAULT_SESSION_BUFFER_BYTES;
    this.onDrop = opts.onDrop;
    this.offDrain = session.onDrain(() => this.pump());
  }

  /**
   * Sends a packed batch (`gso`: in the GSO layout) now, or queues it when the session's buffer is
   * full or others wait. Returns false only without a queue, when the session is over its cap (the
   * caller pauses its source until the session's drain).
   */
  send(packed: Buffer, gso = false): boolean {
    if (this.closed) return false;
    const q = this.queue;
    if (!q) return this.session.sendBatch(packed, gso);
    if ((q.empty && this.session.bufferedBytes + packed.length <= this.bufferBytes) || gso !== this.gso) {
      // nothing waits and the batch fits the session's budget: straight on (the common case below
      // saturation, no copy; a bigger batch — with offload one can hold 256 KiB — is queued so the
      // session's buffer stays short and a ping does not wait behind it); a batch in the
      // other layout (read as offload switched) cannot join the queue and goes straight on too
      this.session.sendBatch(packed, gso);
      return true;
    }
    const overflow = q.enqueueBatch(packed);
    if (overflow > 0) this.onDrop?.('queue_full', overflow);
    this.pump();
    return true;
  }

  /** Moves queued packets into the session while its buffer has room (the session's drain calls it too). */
  pump(): void {
    const q = this.queue;
    if (!q || this.closed) return;
    const s = this.session;
    const codelBefore = q.stats.codelDrops;
    while (!q.empty && s.writable && s.bufferedBytes < this.bufferBytes) {
      const b = q.dequeueBatch(DEQUEUE_BATCH_BYTES);
      if (!b) break;
      s.sendBatch(b, this.gso);
    }
    const codel = q.stats.codelDrops - codelBefore;
    if (codel > 0) this.onDrop?.('codel', codel);
  }

  /** Stops sending; returns the packets that were still waiting (dropped: they are stale for a new session). */
  close(): number {
    if (this.closed) return 0;
    this.closed = true;
    this.offDrain();
    return this.queue?.clear() ?? 0;
  }
}
