// Safe config writes: an exclusive lock file serializes concurrent editors, and the new text goes
// to a temporary file in the same directory (fsync) that replaces the old one by rename. A crash or
// a full disk leaves either the old file or the new one, never half of either.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MeshdError } from '../errors.js';
import { processAlive } from '../ops/process-alive.js';

export const LOCK_TIMEOUT_MS = 10_000;

/** Runs `fn` holding `FILE.lock`; a lock left by a dead process is taken over. */
export async function withFileLock<T>(file: string, fn: () => T | Promise<T>): Promise<T> {
  const lock = `${file}.lock`;
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new MeshdError('ELOCK', `cannot lock ${file} (creating ${lock}: ${(err as NodeJS.ErrnoException).code}); the file is unchanged`);
      }
      let holder = NaN;
      try {
        holder = Number(readFileSync(lock, 'utf8'));
      } catch {
        continue; // just released
      }
      if (Number.isInteger(holder) && holder > 0 && !processAlive(holder)) {
        try {
          unlinkSync(lock);
        } catch {
          // someone else took it over first
        }
        continue;
      }
      if (Date.now() > deadline) throw new MeshdError('ELOCK', `${file} is locked by process ${holder} (${lock})`);
      await new Promise((r) => setTimeout(r, 10 + Math.random() * 40));
    }
  }
  try {
    return await fn();
  } finally {
    try {
      unlinkSync(lock);
    } catch {
      // already gone
    }
  }
}

/** Replaces `file` with `text` atomically, keeping its mode (0600 for a new file). */
export function writeFileAtomic(file: string, text: string | Uint8Array): void {
  let mode = 0o600;
  try {
    mode = statSync(file).mode & 0o777;
  } catch {
    // new file
  }
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd = -1;
  try {
    fd = openSync(tmp, 'wx', mode);
    const buf = typeof text === 'string' ? Buffer.from(text, 'utf8') : Buffer.from(text.buffer, text.byteOffset, text.byteLength);
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, file);
  } catch (err) {
    if (fd >= 0) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // never created
    }
    throw new MeshdError('EWRITE', `cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (the previous file is unchanged)`);
  }
  try {
    const dfd = openSync(dirname(file), 'r');
    fsyncSync(dfd);
    closeSync(dfd);
  } catch {
    // directory fsync is best effort
  }
}
