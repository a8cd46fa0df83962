// The relay's JavaScript heap, trimmed as the daemon's is (src/daemon/heap-trim.ts). V8's memory
// reducer, ~8 s after start-up and after each burst, runs three compacting GCs that stop the relay
// for 4–12 ms each, and so every stream it carries at once (docs/performance.md, relayed pings).
// bin/meshd-relay.js starts node with --no-memory-reducer; this trims when there is garbage worth
// it and nothing has been forwarded for a few seconds (or after a minute), as incremental marking,
// through the native addon. Without the addon (not built) the heap keeps what it has committed.
import { getHeapStatistics } from 'node:v8';
import type { Logger } from '../src/log.js';
import { HeapTrimmer } from '../src/daemon/heap-trim.js';
import { ownHeapTrim } from '../src/daemon/v8-tuning.js';
import { loadNative } from '../src/tun/native.js';
import type { RelayMetrics } from './metrics.js';

const TICK_MS = 1000;

export interface RelayHeapTrim {
  /** Trims started so far. */
  readonly trims: number;
  stop(): void;
}

/** Starts trimming the relay's heap, or returns null when V8's reducer is on (it trims then). */
export function startRelayHeapTrim(metrics: RelayMetrics, log: Logger): RelayHeapTrim | null {
  if (!ownHeapTrim()) return null;
  let reduceHeap: (now: boolean) => void;
  try {
    reduceHeap = loadNative().reduceHeap;
  } catch (err) {
    log.warn({ component: 'relay', err: (err as Error).message }, "the native addon is not built: the relay's heap keeps the memory it has committed");
    return null;
  }
  const trimmer = new HeapTrimmer({ heapBytes: () => getHeapStatistics().total_heap_size, reduce: () => reduceHeap(false) });
  trimmer.settle();
  const forwarded = (): number => metrics.bytes;
  const timer = setInterval(() => {
    if (trimmer.tick(performance.now(), forwarded)) {
      metrics.heapTrims.inc();
      log.debug({ component: 'relay', heap: getHeapStatistics().total_heap_size }, 'heap trim started');
    }
  }, TICK_MS);
  timer.unref();
  return {
    get trims() {
      return trimmer.trims;
    },
    stop: () => clearInterval(timer),
  };
}
