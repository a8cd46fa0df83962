// How V8 compiles the daemon's code once its interface is up (the daemon calls this once): sooner
// to optimised code, and new functions straight to baseline code, for sparse traffic that finds
// the daemon idle (docs/performance.md, 2026-12-03 and 2026-12-06 (later)).
import { setFlagsFromString } from 'node:v8';

/**
 * From now on V8 optimises a function after a 16th of its default budget of bytecode run (67,584
 * bytes): a packet's path runs a few hundred bytes of it per packet, so sparse traffic (a ping
 * every 10 ms) otherwise ran it in baseline code, every property load a call into an IC builtin,
 * for a long while, and paid for that on every wake (docs/performance.md). Set once the interface is
 * up, not as a node flag: from the start it made V8 optimise all of the startup code too, and a
 * `meshd genkey` took 0.85 s of CPU instead of 0.5.
 */
let tierUpSet = false;
export function quickerTierUp(env: NodeJS.ProcessEnv = process.env): void {
  if (tierUpSet) return;
  tierUpSet = true;
  const v = env.MESHD_V8_TIER_UP;
  if (v !== 'default') {
    // A number of bytes instead: another budget, for comparisons (not validated beyond that).
    const budget = v !== undefined && /^[1-9]\d{2,6}$/.test(v) ? v : '4096';
    setFlagsFromString(`--interrupt-budget=${budget}`);
  }
  // And a function compiled from now on (the warm-up's and the data path's, on their first call)
  // starts in Sparkplug's baseline code instead of the interpreter: the daemon's own I/O glue, which
  // the warm-up does not reach, runs the first real packets that way; startup code compiled before
  // stays in bytecode. Idle pings from a fresh start: a 0.01–0.09 ms lower mean in eight A/B runs
  // of eight, the same RSS (docs/performance.md, 2026-12-06 (later)). MESHD_V8_SPARKPLUG=off: for comparisons.
  if (env.MESHD_V8_SPARKPLUG !== 'off') setFlagsFromString('--always-sparkplug');
}

/**
 * Whether the daemon trims its own heap (heap-trim.ts): when V8's memory reducer is off, as
 * bin/meshd.js's line starts it (`--no-memory-reducer`). V8 reads that flag only when it creates the
 * heap, so it cannot be set from here; `MESHD_NODE_ARGS=--memory-reducer` (the lab puts it after the
 * line's flags) turns the reducer back on, and then V8 trims and the daemon does not, for comparisons.
 * The last of the flags wins, in NODE_OPTIONS first and then on the command line, as in Node.
 */
export function ownHeapTrim(execArgv: readonly string[] = process.execArgv, env: NodeJS.ProcessEnv = process.env): boolean {
  let off = false;
  for (const arg of [...(env.NODE_OPTIONS ?? '').split(/\s+/), ...execArgv]) {
    const flag = arg.replace(/_/g, '-');
    if (flag === '--no-memory-reducer') off = true;
    else if (flag === '--memory-reducer') off = false;
  }
  return off;
}
