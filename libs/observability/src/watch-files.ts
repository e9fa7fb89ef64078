/**
 * Watches files for content changes, including Kubernetes Secret/ConfigMap volume updates, which swap
 * a `..data` symlink (a watch on the file itself misses them): the directories are watched, any event
 * triggers a debounced re-read, and `onChange` runs only when some file's content really changed.
 */
import { watch, readFileSync, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { createHash } from 'node:crypto';

export interface FileWatch {
  stop(): void;
}

export function watchFiles(files: readonly string[], onChange: () => void, opts: { debounceMs?: number; onError?: (err: Error) => void } = {}): FileWatch {
  const digest = () => {
    const h = createHash('sha256');
    for (const f of files) {
      try {
        h.update(readFileSync(f));
      } catch {
        h.update(`missing:${f}`);
      }
    }
    return h.digest('hex');
  };
  let last = digest();
  let timer: NodeJS.Timeout | undefined;
  const check = () => {
    const now = digest();
    if (now === last) return;
    last = now;
    try {
      onChange();
    } catch (err) {
      opts.onError?.(err as Error);
    }
  };
  const watchers: FSWatcher[] = [];
  for (const dir of new Set(files.map((f) => dirname(f)))) {
    const w = watch(dir, { persistent: false }, () => {
      clearTimeout(timer);
      timer = setTimeout(check, opts.debounceMs ?? 200);
    });
    w.on('error', (err) => opts.onError?.(err));
    watchers.push(w);
  }
  return {
    stop() {
      clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}

/**
 * The certificate reload every app does: when the files change, run `reload` (re-create TLS contexts for
 * new connections; established tunnels are not touched) and log it; a failing reload keeps the previous
 * certificates and is logged with its code.
 */
export function watchCertificates(files: readonly string[], reload: () => void, log: { info(o: object, m: string): void; warn(o: object, m: string): void; error(o: object, m: string): void }): FileWatch {
  return watchFiles([...new Set(files)], () => {
    try {
      reload();
      log.info({}, 'certificates changed on disk; reloaded for new connections');
    } catch (err) {
      log.error({ err: (err as Error).message, code: (err as { code?: unknown }).code }, 'certificate reload failed; keeping the previous ones');
    }
  }, { onError: (err) => log.warn({ err: err.message }, 'certificate watch error') });
}
