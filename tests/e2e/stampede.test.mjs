// A burst inside one isolate (issue 13, first part): 16 clients pull one cold image at the same
// moment through the token-auth upstream (blobs 307 to the blob host). The upstream must see one
// GET for the tag (a cold repository: no HEAD first) and one GET per blob; every client checks
// every digest.
// Figures land in test-output/stampede.md.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { startWorld, raw, outputFile } from './lib/world.mjs';
import { pushImage, ACCEPT_ALL } from './lib/upstreams.mjs';

const PORT = 18758;
const CLIENTS = 16;
const sha256 = (b) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`;

describe('a burst of clients for one cold image, one isolate', { timeout: 300_000 }, () => {
  let w;
  const rows = [];
  before(async () => {
    w = await startWorld({ port: PORT });
  }, { timeout: 240_000 });
  after(async () => {
    fs.writeFileSync(outputFile('stampede.md'), `# Coalescing in one isolate\n\n| what | upstream requests |\n|---|---:|\n${rows.map(([k, v]) => `| ${k} | ${v} |`).join('\n')}\n`);
    await w?.stop();
  }, { timeout: 60_000 });

  /** One client's pull: the manifest by tag, then every layer; every digest checked. */
  async function pull(name, image) {
    const m = await raw({ port: PORT, path: `/v2/${name}/manifests/latest`, headers: { accept: ACCEPT_ALL }, timeout: 60_000 });
    assert.equal(m.status, 200, m.body.toString());
    assert.equal(sha256(m.body), image.manifest.digest);
    const manifest = JSON.parse(m.body);
    const blobs = [manifest.config, ...manifest.layers];
    await Promise.all(blobs.map(async (b) => {
      const r = await raw({ port: PORT, path: `/v2/${name}/blobs/${b.digest}`, timeout: 60_000 });
      assert.equal(r.status, 200);
      assert.equal(sha256(r.body), b.digest, 'the bytes hash to the digest');
    }));
    return blobs;
  }

  it(`${CLIENTS} clients at once: one GET for the tag (no HEAD: a cold repository), one GET per blob`, async () => {
    const repo = `library/stampede-${crypto.randomUUID().slice(0, 8)}`;
    const image = await pushImage(repo, { layers: 3, layerBytes: 4 * 1024 * 1024 });
    const name = repo.replace(/^library\//, '');
    const m = w.mark();
    const pulls = await Promise.all(Array.from({ length: CLIENTS }, () => pull(name, image)));
    await new Promise((r) => setTimeout(r, 500));
    const s = w.since(m);
    const answered = (method, p) => s.hub.filter((q) => q.method === method && q.path === p && q.status < 400).length;
    const tagPath = `/v2/${repo}/manifests/latest`;
    const heads = answered('HEAD', tagPath), gets = answered('GET', tagPath);
    const blobs = pulls[0];
    const perBlob = blobs.map((b) => s.blobs.filter((q) => q.m === 'GET' && q.path.includes(b.digest.slice(7))).length);
    const tokens = s.token.length;
    rows.push([`tag: HEAD / GET (${CLIENTS} clients)`, `${heads} / ${gets}`]);
    rows.push([`blob GETs at the blob host, per blob (${blobs.length} blobs)`, perBlob.join(', ')]);
    rows.push(['token requests', tokens]);
    assert.deepEqual([heads, gets], [0, 1], JSON.stringify(s.hub.map((q) => `${q.method} ${q.path} ${q.status}`)));
    assert.deepEqual(perBlob, blobs.map(() => 1));
    assert.ok(tokens <= 1, `token requests: ${tokens}`);
  });
});
