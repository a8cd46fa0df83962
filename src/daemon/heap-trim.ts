// When the daemon's JavaScript heap gives its free pages back. V8's memory reducer does it on its
// own timer, ~8 s after start-up and after each burst, with three compacting GCs that stop the
// daemon for 6–22 ms each whatever the tunnel is carrying then (docs/performance.md, 2026-12-06
// (evening)). Instead (bin/meshd.js starts node with --no-memory-reducer) the daemon trims when
// there is garbage worth it — the start-up's and warm-up's, then a heap that has grown — and the
// tunnel has gone quiet (or has not for a minute), as incremental marking: one pause of ~10 ms
// where a trim at once takes 30–50 ms. The decisions are here; the daemon supplies the heap's size,
// the GC and a traffic counter (no I/O; unit-tested).

export interface HeapTrimLimits {
  /** Growth of the committed heap over its smallest size since the last trim that is worth one. */
  growthBytes: number;
  /** How long the tunnel must have moved nothing before a grown heap is trimmed. */
  quietMs: number;
  /** A grown heap is trimmed after this long even if traffic never stops (V8's reducer would have). */
  maxWaitMs: number;
}

export const HEAP_TRIM_LIMITS: HeapTrimLimits = { growthBytes: 8 << 20, quietMs: 3000, maxWaitMs: 60_000 };

export interface HeapTrimHooks {
  /** Committed bytes of the JavaScript heap (v8.getHeapStatistics().total_heap_size). */
  heapBytes(): number;
  /** Starts the compacting GC as incremental marking (the addon's reduceHeap(false)). */
  reduce(): void;
}

export class HeapTrimmer {
  /** The smallest committed heap since the last trim (an incremental one shrinks it a few turns later). */
  private baseline = Infinity;
  private settled = false;
  /** Settled, and the start-up's garbage not yet trimmed. */
  private firstDue = false;
  private grownAtMs: number | null = null;
  private lastTraffic = 0;
  private lastTrafficChangeMs = 0;
  /** Trims done, for the daemon's status. */
  trims = 0;

  constructor(
    private readonly hooks: HeapTrimHooks,
    private readonly limits: HeapTrimLimits = HEAP_TRIM_LIMITS,
  ) {}

  /**
   * The start-up (and the warm-up) is over: from now on ticks may trim, and the first trim, of the
   * start-up's garbage, is due whatever the heap's size, on the same terms as any other (quiet, or
   * a minute). A trim at once here stopped a daemon whose peers were already talking for 30–50 ms.
   */
  settle(): void {
    this.settled = true;
    this.firstDue = true;
  }

  /**
   * Called on the daemon's tick. `traffic` reads a counter that grows with every packet the tunnel
   * moves (bytes in and out, summed over peers); it is read only while the heap is over its
   * allowance, so a daemon with many peers does not sum them on every tick. Returns whether it
   * started a trim.
   */
  tick(nowMs: number, traffic: () => number): boolean {
    if (!this.settled) return false;
    const bytes = this.hooks.heapBytes();
    if (bytes < this.baseline) this.baseline = bytes;
    if (!this.firstDue && bytes < this.baseline + this.limits.growthBytes) {
      this.grownAtMs = null;
      return false;
    }
    const moved = traffic();
    if (this.grownAtMs === null) {
      // Growth (or the start-up's garbage) just seen: quiet from now on, at the earliest.
      this.grownAtMs = nowMs;
      this.lastTraffic = moved;
      this.lastTrafficChangeMs = nowMs;
    } else if (moved !== this.lastTraffic) {
      this.lastTraffic = moved;
      this.lastTrafficChangeMs = nowMs;
    }
    const quiet = nowMs - this.lastTrafficChangeMs >= this.limits.quietMs;
    if (!quiet && nowMs - this.grownAtMs < this.limits.maxWaitMs) return false;
    this.hooks.reduce();
    this.trims++;
    this.firstDue = false;
    this.baseline = this.hooks.heapBytes();
    this.grownAtMs = null;
    return true;
  }
}
