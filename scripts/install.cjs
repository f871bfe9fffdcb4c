#!/usr/bin/env node
// npm runs this when the package is installed (the "install" script).
//
// On Linux it is node-gyp-build: when a prebuilt binary in prebuilds/ loads, it does nothing;
// otherwise (another architecture, an older glibc) it compiles the addon from src/native with
// node-gyp. Nothing here is needed at run time: with --ignore-scripts the loader finds the
// prebuilt binary by itself.
//
// Elsewhere it does nothing and succeeds: systemd is Linux-only, there is nothing to build, and the
// package must still install and import there (each call that needs the addon then throws
// SystemdError ERR_SD_UNSUPPORTED_PLATFORM).
'use strict';

if (process.platform === 'linux') require('node-gyp-build/bin.js');
