#!/usr/bin/env node
// canopy-bench command line (the package's bin). All logic lives in main.ts so tests can run it in-process.
import { main } from './main.js';
import { hungBackends } from './run.js';

process.exitCode = await main(process.argv.slice(2));
// A hung backend's native work would keep Node alive forever; everything is written by now.
if (hungBackends) process.exit(process.exitCode);
