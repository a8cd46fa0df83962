#!/usr/bin/env -S node --initial-old-space-size=64
// Entry point for `meshd-wireguard` (wireguard-go's command line; the code lives in dist/, npm run build).
// The heap flag as in bin/meshd.js: it is the same daemon.
import('../dist/src/cli/wireguard.js').then((m) => m.wireguardMain(process.argv));
