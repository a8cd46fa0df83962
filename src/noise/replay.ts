// Sliding-window replay filter for transport counters (RFC 6479 style, as wireguard-go's replay/).
// A ring of 32-bit blocks; the window holds the last (RING_BLOCKS - 1) * 32 = 8160 counters.

const BLOCK_BITS = 32;
const RING_BLOCKS = 256;
const RING_MASK = RING_BLOCKS - 1;
export const REPLAY_WINDOW_SIZE = (RING_BLOCKS - 1) * BLOCK_BITS;

export class ReplayFilter {
  private last = 0;
  private readonly ring = new Uint32Array(RING_BLOCKS);

  reset(): void {
    this.last = 0;
    this.ring.fill(0);
  }

  /** Marks `counter` as seen; false if it was seen before, is too old, or is not below `limit`. */
  validate(counter: number, limit: number): boolean {
    if (counter >= limit) return false;
    let indexBlock = Math.floor(counter / BLOCK_BITS);
    if (counter > this.last) {
      const current = Math.floor(this.last / BLOCK_BITS);
      const diff = Math.min(indexBlock - current, RING_BLOCKS);
      for (let i = 1; i <= diff; i++) this.ring[(current + i) & RING_MASK] = 0;
      this.last = counter;
    } else if (this.last - counter > REPLAY_WINDOW_SIZE) {
      return false;
    }
    indexBlock &= RING_MASK;
    const bit = 1 << (counter % BLOCK_BITS);
    const old = this.ring[indexBlock];
    if ((old & bit) !== 0) return false;
    this.ring[indexBlock] = old | bit;
    return true;
  }
}
