#!/usr/bin/env -S node --initial-old-space-size=64
// Entry point for `meshd`; the code lives in dist/ (npm run build).
// --initial-old-space-size: V8's first heap limits are tiny, and the buffers a relayed stream
// moves count against them, so without it a full mark-compact ran every ~200 ms under load
// (docs/performance.md). Set at start or not at all: the lab reads this line to start it the same way.
import('../dist/src/cli/main.js').then((m) => m.main(process.argv));
