// Typed loader for the N-API addon; a missing or broken build becomes one clear error.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MeshdError } from '../errors.js';
import { packageRoot } from '../package-root.js';

export interface TunOpenResult {
  fd: number;
  name: string;
  error: string;
}

export interface TunReaderHandle {
  start(): number;
  stop(): void;
}

export interface NativeAddon {
  tunOpen(name: string): TunOpenResult;
  tunWrite(fd: number, buf: Uint8Array, offset: number, length: number): number;
  tunClose(fd: number): number;
  aeadSeal(key: Uint8Array, counterLo: number, counterHi: number, buf: Uint8Array, offset: number, length: number): number;
  aeadOpen(key: Uint8Array, counterLo: number, counterHi: number, src: Uint8Array, srcOffset: number, length: number, dst: Uint8Array, dstOffset: number): number;
  TunReader: new (
    fd: number,
    buffer: Uint8Array,
    slotSize: number,
    headroom: number,
    lengths: Int32Array,
    onPackets: (count: number) => void,
  ) => TunReaderHandle;
}

let cached: NativeAddon | null = null;

export function loadNative(): NativeAddon {
  if (cached) return cached;
  const path = join(packageRoot(), 'native', 'build', 'Release', 'meshd_native.node');
  if (!existsSync(path)) {
    throw new MeshdError('ENATIVE', `native addon not built (${path} missing): run "npm run build"`);
  }
  try {
    cached = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    throw new MeshdError('ENATIVE', `native addon failed to load from ${path}: ${(err as Error).message}`);
  }
  return cached;
}
