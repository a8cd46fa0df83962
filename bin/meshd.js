#!/usr/bin/env -S node --initial-old-space-size=64 --interrupt-budget=4096
// Entry point for `meshd`; the code lives in dist/ (npm run build).
// --initial-old-space-size: V8's first heap limits are tiny, and the buffers a relayed stream
// moves count against them, so without it a full mark-compact ran every ~200 ms under load
// (docs/performance.md). --interrupt-budget: V8 optimises a function after this much of its
// bytecode has run (default 67,584 bytes); a packet's path runs only a few hundred bytes per packet,
// so sparse traffic (a ping every 10 ms) ran unoptimised code for a long while, adding ~0.1 ms to each
// round trip. Set at start or not at all: the lab and the systemd units read this line to start it
// the same way.
import('../dist/src/cli/main.js').then((m) => m.main(process.argv));
