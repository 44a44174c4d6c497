// Scheduled prewarm end to end: the cron event is dispatched in workerd (Miniflare), the mirror warms
// a multi-arch image (manifests and, with R2, blobs), and a following skopeo pull of it makes 0 GETs
// to the registry and 0 requests to the blob host.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startWorld, ROOT } from './lib/world.mjs';
import { skopeo, startTlsRejectingFront } from './lib/clients.mjs';

const PORT = 18797, FRONT = 18798;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('scheduled prewarm', { timeout: 300_000 }, () => {
  let w, front;
  before(async () => {
    const state = path.join(ROOT, 'prewarm-state');
    fs.rmSync(state, { recursive: true, force: true });
    w = await startWorld({ port: PORT, r2: true, state, vars: { PREWARM: JSON.stringify(['docker.io/library/multi:oci', 'docker.io/library/nothere:latest']), PREWARM_BUDGET: '100' } });
    front = await startTlsRejectingFront({ port: FRONT, targetPort: PORT });
  }, { timeout: 240_000 });
  after(async () => { await front?.stop(); await w?.stop(); }, { timeout: 60_000 });

  it('warms every platform and blob, then a pull makes 0 upstream GETs', async () => {
    const m = w.mark();
    const worker = await w.mirror.mf.getWorker();
    const result = await worker.scheduled({ cron: '*/30 * * * *' });
    assert.equal(result.outcome, 'ok');
    await sleep(1500); // deferred store writes
    const lines = w.mirror.entries(m.mirror).filter((e) => e.msg === 'prewarm');
    assert.deepEqual(lines.map((l) => [l.image, l.result]), [['docker.io/library/multi:oci', 'warmed'], ['docker.io/library/nothere:latest', 'failed']]);
    assert.equal(lines[0].manifests, 3, 'the index and both platforms');
    assert.ok(lines[0].blobs_fetched >= 4, JSON.stringify(lines[0]));
    assert.ok(w.mirror.entries(m.mirror).some((e) => e.msg === 'prewarm done'));

    const pull = w.mark();
    const dir = path.join(ROOT, 'prewarm-copy');
    fs.rmSync(dir, { recursive: true, force: true });
    const r = await skopeo(['copy', '--all', '--src-tls-verify=false', '--retry-times', '0', `docker://${front.host}/library/multi:oci`, `dir:${dir}`], { timeout: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    await sleep(300);
    const s = w.since(pull);
    assert.deepEqual(s.hub.filter((q) => q.method === 'GET'), [], 'no GET reached the registry');
    assert.deepEqual(s.blobs, [], 'no request reached the blob host');

    // A second run finds everything held and fetches no blob.
    const again = w.mark();
    await worker.scheduled({ cron: '*/30 * * * *' });
    const second = w.mirror.entries(again.mirror).filter((e) => e.msg === 'prewarm' && e.result === 'warmed');
    assert.equal(second[0].blobs_fetched, 0);
    assert.ok(second[0].blobs_held >= 4);
  });
});
