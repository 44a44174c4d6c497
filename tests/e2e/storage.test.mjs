// Bounded storage and stats end to end (docs/storage.md), the built worker in workerd with R2 and
// D1 (Miniflare): three layers fill the store past a small budget (each layer 1.5 MB against a
// 3 MiB budget: the 150 MiB against 300 MiB scaled down, so the test stays fast); the
// scheduled run evicts the least recently used image's objects from R2 and the inventory; the
// others still pull with 0 upstream blob GETs and the evicted image pulls again, digests checked.
// Then a scripted workload (3 images, 2 of them twice, one through a failing upstream for stale):
// /_admin/stats equals the upstream access logs and what the clients saw; the stats page shows the
// same numbers in headless Chromium (screenshot in test-output/); D1 writes per request measured.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { chromium } from 'playwright-core';
import { startWorld, mirrorWith, outputFile, raw } from './lib/world.mjs';
import { pushImage, readRequests, logOffset, ACCEPT_ALL } from './lib/upstreams.mjs';
import { pullImage, get } from './lib/pull.mjs';
import { startFaultProxies } from './lib/faultproxy.mjs';
import { ADMIN_TOKEN } from './lib/secrets.mjs';

const EVICT_PORT = 18720, STATS_PORT = 18721, FLAKY_PORT = 18722, OFF_PORT = 18723;
const LAYER = 1_500_000, BUDGET = 3 * 1024 * 1024;
// The shared test token: zz-logs.test.mjs checks that no log line ever carries it.
const TOKEN = ADMIN_TOKEN;
const AUTH = { authorization: `Bearer ${TOKEN}` };
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const run = Date.now().toString(36); // fresh repositories each run (the upstream's storage persists)

async function stats(port) {
  const r = await raw({ port, path: '/_admin/stats', headers: AUTH });
  assert.equal(r.status, 200, r.body.toString());
  return JSON.parse(r.body);
}

/** What a client saw, from the Cache-Status header the mirror sent. */
function cacheClass(h = '') {
  if (h.includes('detail=stale-if-error')) return 'stale';
  if (h.includes('detail=revalidated')) return 'revalidated';
  if (h.includes('fwd=miss')) return 'miss';
  if (/; hit/.test(h)) return 'hit';
  return 'other';
}

/** Pulls `name:latest` (manifest, config, layers; digests checked), recording every answer. */
async function pullRecorded(port, name, seen) {
  const one = async (path, headers = {}) => {
    const r = await get(undefined, port, path, headers);
    assert.equal(r.status, 200, `${path}: ${r.body.toString().slice(0, 200)}`);
    seen.push({ upstream: name.split('/')[0], path, status: r.status, cache: cacheClass(r.headers['cache-status']), bytes: r.body.length, manifest: path.includes('/manifests/') });
    return r;
  };
  const m = await one(`/v2/${name}/manifests/latest`, { accept: ACCEPT_ALL });
  const doc = JSON.parse(m.body);
  for (const b of [doc.config, ...doc.layers]) {
    const r = await one(`/v2/${name}/blobs/${b.digest}`);
    assert.equal(r.body.length, b.size);
  }
}

describe('bounded storage and stats', { timeout: 180_000 }, () => {
  let w, statsMirror, flaky, offMirror, browser;
  before(async () => {
    w = await startWorld({ port: EVICT_PORT, r2: true, kv: true, d1: true, vars: { STORE_MAX_BYTES: String(BUDGET), ADMIN_TOKEN: TOKEN } });
  }, { timeout: 120_000 });
  after(async () => {
    await browser?.close();
    await offMirror?.stop();
    await statsMirror?.stop();
    await flaky?.stop();
    await w?.stop();
  }, { timeout: 60_000 });

  it('evicts the least recently used image past the budget; the others pull with 0 blob GETs; it pulls again', async () => {
    const images = {};
    for (const n of ['a', 'b', 'c']) images[n] = await pushImage(`evict-${run}/${n}`, { layers: 1, layerBytes: LAYER });
    const name = (n) => `plain/evict-${run}/${n}`;
    const key = (n) => `plain/evict-${run}/${n}/blobs/${images[n].layer.digest}`;
    // a, b, c stored in that order, then a read again: b is the least recently used.
    for (const n of ['a', 'b', 'c', 'a']) {
      await pullImage({ port: EVICT_PORT, name: name(n), ref: 'latest' });
      await sleep(1100); // last access is kept in seconds
    }
    const db = await w.mirror.mf.getD1Database('STATS');
    const bucket = await w.mirror.mf.getR2Bucket('BLOBS');
    const inventory = async () => (await db.prepare('SELECT key, size, last_access, hits FROM objects').all()).results;
    const before = await inventory();
    const total = before.reduce((s, o) => s + o.size, 0);
    assert.ok(total > BUDGET, `filled past the budget: ${total} > ${BUDGET}`);
    for (const n of ['a', 'b', 'c']) assert.ok(before.some((o) => o.key === key(n) && o.size === LAYER), `${n}'s layer in the inventory`);
    assert.ok(before.find((o) => o.key === key('a')).hits >= 1, 'a hit on a was written');

    const m = w.mark();
    const worker = await w.mirror.mf.getWorker();
    const result = await worker.scheduled({ cron: '*/30 * * * *' });
    assert.equal(result.outcome, 'ok');
    const evicted = w.mirror.entries(m.mirror).find((e) => e.msg === 'evicted');
    assert.ok(evicted && evicted.objects >= 1, JSON.stringify(w.mirror.entries(m.mirror)));
    const after = await inventory();
    const left = after.reduce((s, o) => s + o.size, 0);
    assert.ok(left <= BUDGET, `within the budget after the run: ${left}`);
    assert.equal(await bucket.head(key('b')), null, "b's layer is gone from R2");
    assert.ok(!after.some((o) => o.key === key('b')), "b's layer is gone from the inventory");
    for (const n of ['a', 'c']) {
      assert.ok(await bucket.head(key(n)), `${n}'s layer is still in R2`);
      assert.ok(after.some((o) => o.key === key(n)), `${n}'s layer is still in the inventory`);
    }

    const again = w.mark();
    for (const n of ['a', 'c']) await pullImage({ port: EVICT_PORT, name: name(n), ref: 'latest' });
    const blobGets = (s) => s.plain.filter((q) => q.method === 'GET' && q.path.includes('/blobs/'));
    assert.deepEqual(blobGets(w.since(again)), [], 'a and c pull with 0 upstream blob GETs');

    const b = w.mark();
    const pulled = await pullImage({ port: EVICT_PORT, name: name('b'), ref: 'latest' });
    assert.ok(pulled.blobs.includes(images.b.layer.digest), 'digests checked by the pull');
    const fetched = blobGets(w.since(b)).map((q) => q.path);
    assert.ok(fetched.includes(`/v2/evict-${run}/b/blobs/${images.b.layer.digest}`), `b's layer fetched again: ${fetched}`);
    await sleep(800);
    assert.ok((await inventory()).some((o) => o.key === key('b')), "b's layer is back in the inventory");
  });

  it('the stats equal the upstream logs and what the clients saw; the page shows them', async () => {
    flaky = await startFaultProxies({ targets: { flaky: { port: FLAKY_PORT, target: w.up.plain } } });
    statsMirror = await mirrorWith({
      port: STATS_PORT, r2: true, kv: true, d1: true,
      vars: {
        ADMIN_TOKEN: TOKEN,
        UPSTREAMS: {
          plain: { registry: w.up.plain, prefixes: ['plain'] },
          flaky: { registry: flaky.urls.flaky, prefixes: ['flaky'], tag_ttl: '1s', stale_if_error: '1h' },
        },
      },
    });
    for (const n of ['s1', 's2', 's3']) await pushImage(`stats-${run}/${n}`, { layers: 2, layerBytes: 64 * 1024 });
    const plainFrom = logOffset(w.up.logs.plain);
    const flakyFrom = flaky.mark();
    const seen = [];
    await pullRecorded(STATS_PORT, `plain/stats-${run}/s1`, seen);
    await pullRecorded(STATS_PORT, `plain/stats-${run}/s1`, seen);
    await pullRecorded(STATS_PORT, `plain/stats-${run}/s2`, seen);
    await pullRecorded(STATS_PORT, `flaky/stats-${run}/s3`, seen);
    await sleep(2200); // the tag's 1 s lifetime ends (and its deferred writes are done)
    flaky.arm('flaky', { path: /\/manifests\//, fault: 'status', code: 503, times: 10 });
    await pullRecorded(STATS_PORT, `flaky/stats-${run}/s3`, seen);
    flaky.disarm();
    await sleep(500);

    const proxied = flaky.requests(flakyFrom);
    const plainLog = readRequests(w.up.logs.plain, plainFrom);
    const forwarded = proxied.filter((q) => q.fault === null).length;
    const manifestGet = (q) => q.method === 'GET' && q.path.includes('/manifests/');
    const upstreamSaw = {
      plain: { upstream_requests: plainLog.length - forwarded, manifest_gets_upstream: plainLog.filter(manifestGet).length - proxied.filter((q) => q.fault === null && manifestGet(q)).length },
      flaky: { upstream_requests: proxied.length, manifest_gets_upstream: proxied.filter(manifestGet).length },
    };
    const clientsSaw = (u) => {
      const s = seen.filter((x) => x.upstream === u);
      const n = (c) => s.filter((x) => x.cache === c).length;
      const bytes = (cs) => s.filter((x) => cs.includes(x.cache)).reduce((a, x) => a + x.bytes, 0);
      return {
        requests: s.length, hits: n('hit'), misses: n('miss'), stale: n('stale'), revalidated: n('revalidated'),
        bytes_store: bytes(['hit', 'stale', 'revalidated']), bytes_upstream: bytes(['miss']),
        pulls_served: s.filter((x) => x.manifest && x.status === 200).length,
      };
    };
    assert.equal(clientsSaw('flaky').stale, 1, `the failing upstream's tag was served stale: ${JSON.stringify(seen.filter((x) => x.upstream === 'flaky'))}`);
    assert.ok(clientsSaw('plain').hits >= 3 && clientsSaw('plain').misses >= 3);

    const j = await stats(STATS_PORT);
    assert.equal(j.enabled, true);
    const expected = {};
    for (const u of ['plain', 'flaky']) {
      const rows = j.days.filter((d) => d.upstream === u);
      assert.equal(rows.length, 1, `one day row for ${u}`);
      const got = rows[0];
      expected[u] = { ...clientsSaw(u), ...upstreamSaw[u] };
      for (const [k, v] of Object.entries(expected[u])) assert.equal(got[k], v, `${u}.${k}: stats ${got[k]}, logs/clients ${v}`);
      assert.equal(got.pulls_saved, Math.max(0, got.pulls_served - got.manifest_gets_upstream));
      assert.equal(typeof got.hit_ms.p50, 'number');
      assert.equal(typeof got.miss_ms.p95, 'number');
    }
    const sum = (k) => expected.plain[k] + expected.flaky[k];
    for (const k of ['requests', 'hits', 'misses', 'stale', 'upstream_requests', 'manifest_gets_upstream', 'pulls_served', 'bytes_store', 'bytes_upstream']) {
      assert.equal(j.total[k], sum(k), `total.${k}`);
    }
    assert.ok(j.store.objects >= 9 && j.store.bytes > 6 * 64 * 1024, JSON.stringify(j.store));
    assert.ok(j.top.some((t) => t.repo === `stats-${run}/s1` && t.hits >= 3), JSON.stringify(j.top));

    // D1 writes per request: the workload (misses store objects), then 300 hits on one blob.
    const workload = { ...j.d1 };
    const blob = seen.find((x) => x.upstream === 'plain' && !x.manifest).path;
    for (let i = 0; i < 300; i++) assert.equal((await get(undefined, STATS_PORT, blob)).status, 200);
    const hot = (await stats(STATS_PORT)).d1;
    const hits = hot.requests_counted - workload.requests_counted;
    const rows = hot.rows_written - workload.rows_written;
    const report = [
      `workload: ${workload.requests_counted} requests, ${workload.statements} D1 statements, ${workload.rows_written} rows written (${(workload.rows_written / workload.requests_counted).toFixed(3)} per request; objects stored and first hits included)`,
      `hits: ${hits} requests, ${hot.statements - workload.statements} D1 statements, ${rows} rows written (${(rows / hits).toFixed(4)} per request)`,
    ].join('\n');
    fs.writeFileSync(outputFile('storage-d1-writes.txt'), report + '\n');
    console.log(report);
    assert.equal(hits, 300);
    assert.ok(rows / hits <= 0.05, `hits cost at most one row per 20 requests: ${report}`);

    // The page, in a real browser: the same numbers, nothing loaded from elsewhere.
    const final = await stats(STATS_PORT);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    const page = await browser.newPage({ extraHTTPHeaders: AUTH });
    const requests = [];
    page.on('request', (r) => requests.push(r.url()));
    const resp = await page.goto(`http://127.0.0.1:${STATS_PORT}/_admin/stats/page`);
    assert.equal(resp.status(), 200);
    const after = await stats(STATS_PORT); // nothing counted in between (admin requests are not)
    assert.deepEqual(after.total, final.total);
    for (const k of ['requests', 'hits', 'misses', 'stale', 'revalidated', 'upstream_requests', 'manifest_gets_upstream', 'pulls_served', 'pulls_saved', 'bytes_store', 'bytes_upstream']) {
      assert.equal(await page.textContent(`#${k}`), String(final.total[k]), `page #${k}`);
    }
    assert.equal(await page.textContent('#store_objects'), String(final.store.objects));
    assert.equal(await page.textContent('#store_bytes'), String(final.store.bytes));
    assert.equal(await page.$$eval('svg', (s) => s.length), 3, 'three charts (no budget set: no usage bar)');
    assert.deepEqual(requests.filter((u) => !u.startsWith(`http://127.0.0.1:${STATS_PORT}/`)), [], 'nothing loaded from elsewhere');
    await page.screenshot({ path: outputFile('stats-page.png'), fullPage: true });
    await page.close();

    // Without the admin token: refused.
    assert.equal((await raw({ port: STATS_PORT, path: '/_admin/stats/page' })).status, 401);
  });

  it('without the D1 binding the mirror pulls as before and the page says how to turn stats on', async () => {
    offMirror = await mirrorWith({ port: OFF_PORT, r2: true, kv: true, vars: { ADMIN_TOKEN: TOKEN, STORE_MAX_BYTES: '1MiB', UPSTREAMS: { plain: { registry: w.up.plain, prefixes: ['plain'] } } } });
    await pullImage({ port: OFF_PORT, name: `plain/stats-${run}/s2`, ref: 'latest' });
    const worker = await offMirror.mf.getWorker();
    assert.equal((await worker.scheduled({ cron: '*/30 * * * *' })).outcome, 'ok');
    const j = await stats(OFF_PORT);
    assert.equal(j.enabled, false);
    assert.match(j.how, /wrangler d1 create/);
    const page = await raw({ port: OFF_PORT, path: '/_admin/stats/page', headers: AUTH });
    assert.equal(page.status, 200);
    assert.match(page.body.toString(), /Stats are off/);
  });
});
