// Loads JSON vectors from test/vectors (the source tree, next to the compiled tests' root).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export function loadVector<T>(name: string): T {
  return JSON.parse(readFileSync(join(REPO_ROOT, 'test', 'vectors', name), 'utf8')) as T;
}

export const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
export const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
