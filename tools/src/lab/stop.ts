/**
 * How a long-running tool (bench, soak) learns that it should stop and remove its lab: SIGINT, SIGTERM,
 * SIGHUP, or its own standard output or error going away. `pnpm bench | head` closes the pipe after a few
 * lines, and a closed terminal gives EIO: left to itself, Node ends the process on that write error, with
 * the namespaces, processes and TUN devices of the running part left behind. Here such an error asks for
 * the same stop as Ctrl-C, and later writes to the dead stream are dropped, so the teardown runs to its end.
 * `handler` runs once, on the first request; the requests after it are ignored (a teardown is under way).
 */
export function onStopRequest(handler: (why: string) => void, proc: Pick<NodeJS.Process, 'on' | 'stdout' | 'stderr'> = process): void {
  let asked = false;
  const once = (why: string) => {
    if (asked) return;
    asked = true;
    handler(why);
  };
  for (const [name, out] of [['stdout', proc.stdout], ['stderr', proc.stderr]] as const) {
    out.on('error', (err: NodeJS.ErrnoException) => once(`${name} closed (${err.code ?? err.message})`));
  }
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) proc.on(sig, () => once(sig));
}

/**
 * A lab's teardown, once: the end of a part and a Ctrl-C during it share one `down()`, and the abort
 * exits 130 only after it finished. `release()` hands Ctrl-C back (the lab is gone, another part runs).
 */
export function teardownOnce(signal: AbortSignal | undefined, down: () => Promise<void>): { stop: () => Promise<void>; release: () => void } {
  let downing: Promise<void> | undefined;
  const stop = () => (downing ??= down());
  const onAbort = () => void stop().then(() => process.exit(130));
  signal?.addEventListener('abort', onAbort, { once: true });
  return { stop, release: () => signal?.removeEventListener('abort', onAbort) };
}
