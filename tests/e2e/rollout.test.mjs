// A rollout across isolates (issue 13): 64 clients pull one cold image at once through two
// instances of the worker (two isolates in one workerd, sharing the Cache API, R2 and, with the
// COORDINATOR binding, one Durable Object namespace) in front of the token-auth upstream with 307
// blob redirects. With the coordinator the upstream sees one GET per manifest and per blob; without
// it, at most one per isolate. Every client checks every digest. Figures: test-output/rollout.md.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { ROOT, upstreamTable, outputFile } from './lib/world.mjs';
import { startUpstreams, pushImage, logOffset, readRequests, readJsonLines, ACCEPT_ALL } from './lib/upstreams.mjs';
import { request } from './lib/http.mjs';
import { startMirrorFleet } from '../../scripts/serve.mjs';

const PORT = 18757;
const CLIENTS = 64;
const ISOLATES = ['a', 'b'];
const sha256 = (b) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

describe('a rollout through two isolates', { timeout: 600_000 }, () => {
  let up;
  const rows = [];
  before(async () => {
    fs.mkdirSync(ROOT, { recursive: true });
    up = await startUpstreams({ root: ROOT });
  }, { timeout: 120_000 });
  after(async () => {
    fs.writeFileSync(outputFile('rollout.md'), `# ${CLIENTS} clients, one cold image, ${ISOLATES.length} isolates\n\n| coordinator | tag HEAD / GET | GETs per blob | token requests | pulls ok |\n|---|---|---|---:|---:|\n${rows.join('\n')}\n`);
    await up?.stop();
  }, { timeout: 60_000 });

  const get = (host, path, headers = {}) => request({ port: PORT, path }, { headers: { host, ...headers }, timeout: 120_000 });

  /** One client: the manifest by tag through `host`, then every blob; every digest checked. */
  async function pull(host, name, image) {
    const m = await get(host, `/v2/${name}/manifests/latest`, { accept: ACCEPT_ALL });
    assert.equal(m.status, 200, m.body.toString());
    assert.equal(sha256(m.body), image.manifest.digest);
    const manifest = JSON.parse(m.body);
    const blobs = [manifest.config, ...manifest.layers];
    await Promise.all(blobs.map(async (b) => {
      const r = await get(host, `/v2/${name}/blobs/${b.digest}`);
      assert.equal(r.status, 200);
      assert.equal(sha256(r.body), b.digest);
    }));
    return blobs;
  }

  async function rollout(coordinator) {
    const fleet = await startMirrorFleet({ port: PORT, names: ISOLATES, coordinator, vars: { UPSTREAMS: upstreamTable(up) }, onLog: () => {} });
    try {
      const repo = `library/rollout-${crypto.randomUUID().slice(0, 8)}`;
      const image = await pushImage(repo, { layers: 3, layerBytes: 2 * 1024 * 1024 });
      const name = repo.replace(/^library\//, '');
      const marks = { hub: logOffset(up.logs.hub), token: logOffset(up.logs.token), blobs: logOffset(up.logs.blobs) };
      const pulls = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => pull(`${ISOLATES[i % ISOLATES.length]}.test`, name, image)));
      // The upstreams write their logs after answering: wait until every blob's GET shows (at most
      // 10 s), then settle so that a second GET would show too.
      const blobGets = () => {
        const blobs = readJsonLines(up.logs.blobs, marks.blobs);
        return pulls[0].map((b) => blobs.filter((q) => q.m === 'GET' && q.path.includes(b.digest.slice(7))).length);
      };
      for (let t = 0; t < 100 && blobGets().some((n) => n === 0); t++) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 1000));
      const hub = readRequests(up.logs.hub, marks.hub);
      const answered = (method, p) => hub.filter((q) => q.method === method && q.path === p && q.status < 400).length;
      const tagPath = `/v2/${repo}/manifests/latest`;
      const tag = [answered('HEAD', tagPath), answered('GET', tagPath)];
      const perBlob = blobGets();
      const tokens = readJsonLines(up.logs.token, marks.token).length;
      rows.push(`| ${coordinator ? 'bound' : 'none'} | ${tag.join(' / ')} | ${perBlob.join(', ')} | ${tokens} | ${pulls.length} |`);
      return { tag, perBlob, tokens };
    } finally {
      await fleet.stop();
    }
  }

  it(`with the coordinator: one GET per manifest and per blob for ${CLIENTS} clients on ${ISOLATES.length} isolates`, async () => {
    const { tag, perBlob, tokens } = await rollout(true);
    assert.deepEqual(tag, [0, 1], 'a cold repository: one GET, no HEAD first');
    assert.deepEqual(perBlob, perBlob.map(() => 1));
    assert.ok(tokens <= 1, `token requests: ${tokens}`);
  });

  it('a token one isolate fetched serves the other (one realm request for the fleet)', async () => {
    const fleet = await startMirrorFleet({ port: PORT, names: ISOLATES, coordinator: true, vars: { UPSTREAMS: upstreamTable(up) }, onLog: () => {} });
    try {
      const repo = `library/rollout-${crypto.randomUUID().slice(0, 8)}`;
      const image = await pushImage(repo, { layers: 2, layerBytes: 256 * 1024 });
      const name = repo.replace(/^library\//, '');
      const mark = logOffset(up.logs.token);
      // The manifest through the first isolate, then every blob through the second only: the
      // second leads the blobs and needs a token for the same scope.
      const m = await get('a.test', `/v2/${name}/manifests/latest`, { accept: ACCEPT_ALL });
      assert.equal(m.status, 200);
      const manifest = JSON.parse(m.body);
      for (const b of [manifest.config, ...manifest.layers]) {
        const r = await get('b.test', `/v2/${name}/blobs/${b.digest}`);
        assert.equal(r.status, 200);
        assert.equal(sha256(r.body), b.digest);
      }
      // The token server's log is written by a pipe: wait for the line, then a little more.
      const count = () => readJsonLines(up.logs.token, mark).length;
      for (let t = 0; t < 50 && count() < 1; t++) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 500));
      const tokens = count();
      rows.push(`| bound, token fetched by a, blobs through b | — | — | ${tokens} | 1 |`);
      assert.equal(tokens, 1, 'the second isolate used the first one\'s token');
      assert.equal(image.manifest.digest, sha256(m.body));
    } finally {
      await fleet.stop();
    }
  });

  it('without it: at most one GET per object per isolate', async () => {
    const { tag, perBlob, tokens } = await rollout(false);
    assert.ok(tokens <= ISOLATES.length, `token requests: ${tokens}`);
    assert.ok(tag[1] >= 1 && tag[1] <= ISOLATES.length, `tag GETs ${tag[1]}`);
    assert.ok(perBlob.every((n) => n >= 1 && n <= ISOLATES.length), `blob GETs ${perBlob}`);
  });
});
