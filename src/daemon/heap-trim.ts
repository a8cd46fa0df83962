// When the daemon's JavaScript heap gives its free pages back. V8's memory reducer does it on its
// own timer, ~8 s after start-up and after each burst, with three compacting GCs that stop the
// daemon for 6–22 ms each whatever the tunnel is carrying then (docs/performance.md, 2026-12-06
// (evening)). Instead (bin/meshd.js starts node with --no-memory-reducer) the daemon trims once, at
// once, right after its warm-up, before peers' packets; and afterwards only when the heap has grown
// and the tunnel has gone quiet (or has not for a minute), as incremental marking. The decisions
// are here; the daemon supplies the heap's size, the GC and a traffic counter (no I/O; unit-tested).

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
  /** The compacting GC: at once (now), or started as incremental marking (the addon's reduceHeap). */
  reduce(now: boolean): void;
}

export class HeapTrimmer {
  /** The smallest committed heap since the last trim (an incremental one shrinks it a few turns later). */
  private baseline = Infinity;
  private settled = false;
  private grownAtMs: number | null = null;
  private lastTraffic = 0;
  private lastTrafficChangeMs = 0;
  /** Trims done, for the daemon's status. */
  trims = 0;

  constructor(
    private readonly hooks: HeapTrimHooks,
    private readonly limits: HeapTrimLimits = HEAP_TRIM_LIMITS,
  ) {}

  /** The first trim, at once: the start-up's and warm-up's garbage, before the tunnel carries much. */
  settle(): void {
    this.settled = true;
    this.trim(true);
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
    if (bytes < this.baseline + this.limits.growthBytes) {
      this.grownAtMs = null;
      return false;
    }
    const moved = traffic();
    if (this.grownAtMs === null) {
      // Growth just seen: quiet from now on, at the earliest.
      this.grownAtMs = nowMs;
      this.lastTraffic = moved;
      this.lastTrafficChangeMs = nowMs;
    } else if (moved !== this.lastTraffic) {
      this.lastTraffic = moved;
      this.lastTrafficChangeMs = nowMs;
    }
    const quiet = nowMs - this.lastTrafficChangeMs >= this.limits.quietMs;
    if (!quiet && nowMs - this.grownAtMs < this.limits.maxWaitMs) return false;
    this.trim(false);
    return true;
  }

  private trim(now: boolean): void {
    this.hooks.reduce(now);
    this.trims++;
    this.baseline = this.hooks.heapBytes();
    this.grownAtMs = null;
  }
}
