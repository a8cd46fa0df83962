#!/usr/bin/env node
// Entry point for `meshd-relay`; the code lives in dist/ (npm run build).
import('../dist/relay/main.js').then((m) => m.main(process.argv));
