// `wrangler deploy --dry-run` builds and bundles the worker offline, as a deploy would; the bundle
// must fit the Workers free plan (3 MiB compressed). Sizes are printed for the README.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from './lib/proc.mjs';
import { outputFile } from './lib/world.mjs';

const FREE_PLAN_GZIP_KIB = 3 * 1024;

it('wrangler deploy --dry-run bundles the worker within the free plan limit', { timeout: 300_000 }, async (t) => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'edgemirror-dry-'));
  const env = { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_HIDE_BANNER: 'true' };
  const r = await run('npx', ['wrangler', 'deploy', '--dry-run', '--outdir', out], { timeout: 280_000, env });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const m = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(r.stdout + r.stderr);
  assert.ok(m, `no size line in: ${r.stdout}`);
  const [raw, gzip] = [Number(m[1]), Number(m[2])];
  const wasm = fs.readdirSync(out).find((f) => f.endsWith('.wasm'));
  assert.ok(wasm, `no wasm module in ${fs.readdirSync(out)}`);
  const line = `bundle: ${raw} KiB raw, ${gzip} KiB gzip (free plan limit ${FREE_PLAN_GZIP_KIB} KiB gzip); wasm ${fs.statSync(path.join(out, wasm)).size} bytes`;
  fs.writeFileSync(outputFile('bundle.txt'), line + '\n');
  t.diagnostic(line);
  assert.ok(gzip <= FREE_PLAN_GZIP_KIB, line);
  fs.rmSync(out, { recursive: true, force: true });
});
