#!/usr/bin/env node
// canopy-bench command line (the package's bin). All logic lives in main.ts so tests can run it in-process.
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
