// The bundle's size: the pinned build's wasm and JS glue, raw and gzipped.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { PINNED, pinned } from '../build.mjs';
import { results } from '../results.mjs';

export function measureWasm() {
  const file = path.join(PINNED, 'build', 'index_bg.wasm'); // the build the run measured
  const raw = fs.readFileSync(file);
  const js = fs.readFileSync(path.join(PINNED, 'build', 'index.js'));
  results.wasm = {
    file: 'build/index_bg.wasm',
    rawBytes: raw.length,
    gzipBytes: zlib.gzipSync(raw, { level: 9 }).length,
    gzipDefaultBytes: zlib.gzipSync(raw).length,
    jsGlueBytes: js.length,
    jsGlueGzipBytes: zlib.gzipSync(js, { level: 9 }).length,
    builtAt: pinned.wasmMtime,
    fingerprint: pinned.fingerprint,
  };
}
