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
