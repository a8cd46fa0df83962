#!/usr/bin/env -S node --initial-old-space-size=64 --no-memory-reducer
// Entry point for `meshd-wireguard` (wireguard-go's command line; the code lives in dist/, npm run build).
// The heap flags as in bin/meshd.js: it is the same daemon.
import('../dist/src/cli/wireguard.js').then((m) => m.wireguardMain(process.argv));
