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
