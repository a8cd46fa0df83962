#!/usr/bin/env -S node --initial-old-space-size=64 --no-memory-reducer
// Entry point for `meshd`; the code lives in dist/ (npm run build).
// --initial-old-space-size: V8's first heap limits are tiny, and the buffers a relayed stream
// moves count against them, so without it a full mark-compact ran every ~200 ms under load
// (docs/performance.md). --no-memory-reducer: the daemon trims its heap itself, after its warm-up and
// after growth, when the tunnel is quiet (src/daemon/heap-trim.ts), instead of V8's three
// compacting GCs 8 s after start whatever the tunnel carries. Set at start or not at all: the lab
// and the systemd units read this line to start it the same way.
import('../dist/src/cli/main.js').then((m) => m.main(process.argv));
