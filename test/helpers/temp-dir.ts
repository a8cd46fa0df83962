// Temporary directories for a test file's configs and keys, removed when the file's tests end
// (they hold private keys: none may stay behind in /tmp).
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dirs: string[] = [];

/** A fresh 0700 directory under the system's temporary directory, named `prefix` + random. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (dirs.length === 0) t.teardown(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
  dirs.push(dir);
  return dir;
}
