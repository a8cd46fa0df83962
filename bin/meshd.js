#!/usr/bin/env node
// Entry point for `meshd`; the code lives in dist/ (npm run build).
import('../dist/src/cli/main.js').then((m) => m.main(process.argv));
