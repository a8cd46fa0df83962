#!/usr/bin/env -S node --initial-old-space-size=64 --no-memory-reducer
// Entry point for `meshd-relay`; the code lives in dist/ (npm run build).
// --initial-old-space-size: V8's first heap limits are tiny, and the buffers a relayed stream
// moves count against them, so without it a full mark-compact ran every ~200 ms under load
// (docs/performance.md). --no-memory-reducer: the relay trims its heap itself when nothing is being
// forwarded (relay/heap-trim.ts), instead of V8's three compacting GCs after start-up and after each
// burst, which stop every relayed stream at once. Set at start or not at all: the lab and the
// systemd unit read this line to start it the same way.
import('../dist/relay/main.js').then((m) => m.main(process.argv));
