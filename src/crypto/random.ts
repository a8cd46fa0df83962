// Randomness for the data plane and handshakes: node:crypto's CSPRNG, drawn in 4 KiB blocks.
// Each randomBytes() call costs a fixed ~5 µs here (OpenSSL's fork check and DRBG locking) whatever
// its size, and a handshake asks several times for a few bytes (ephemeral key, session index), so
// one call per block instead of per request is most of a handshake's randomness cost.
// Bytes handed out are wiped from the block, so no secret lingers in it.
import { randomFillSync } from 'node:crypto';
import type { Rng } from '../noise/cookie.js';

export const RANDOM_BLOCK_BYTES = 4096;

export function pooledRandom(blockBytes = RANDOM_BLOCK_BYTES): Rng {
  const block = new Uint8Array(blockBytes);
  let used = blockBytes;
  return (n: number): Uint8Array => {
    const out = new Uint8Array(n);
    if (n > blockBytes) return randomFillSync(out);
    if (used + n > blockBytes) {
      randomFillSync(block);
      used = 0;
    }
    out.set(block.subarray(used, used + n));
    block.fill(0, used, used + n);
    used += n;
    return out;
  };
}
