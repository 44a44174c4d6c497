// Test data beyond the harness's images, pushed to the plain registry and kept between runs: 1 MiB
// blobs for the concurrency rows and large random layers for the memory rows.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { run } from '../../tests/e2e/lib/proc.mjs';
import { request } from '../../tests/e2e/lib/http.mjs';
import { ROOT } from './config.mjs';
import { log } from './log.mjs';
import { sha256 } from './tools.mjs';

/** Pushes one blob to the plain registry with the OCI upload API (monolithic: POST, then PUT). */
async function pushBlob(registry, repo, { data, file, digest }) {
  const head = await request(`${registry}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
  if (head.status === 200) return false;
  const post = await request(`${registry}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { 'content-length': 0 } });
  if (post.status !== 202 || !post.headers.location) throw new Error(`upload POST ${repo}: ${post.status} ${post.body}`);
  const loc = new URL(post.headers.location, registry);
  loc.searchParams.set('digest', digest);
  if (data) {
    const put = await request(loc.toString(), { method: 'PUT', body: data,
      headers: { 'content-type': 'application/octet-stream', 'content-length': data.length } });
    if (put.status !== 201) throw new Error(`upload PUT ${repo}: ${put.status} ${put.body}`);
  } else {
    const r = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-T', file,
      '-H', 'content-type: application/octet-stream', loc.toString()], { timeout: 300_000 });
    if (r.stdout.trim() !== '201') throw new Error(`upload PUT ${repo} (curl): ${r.stdout} ${r.stderr}`);
  }
  return true;
}

/** `n` distinct 1 MiB blobs in library/many (deterministic: AES-CTR keystream of the index). */
export async function pushMany(registry, n) {
  const blobs = [];
  let pushed = 0;
  for (let i = 0; i < n; i++) {
    const key = crypto.createHash('sha256').update(`edgemirror-bench-many-${i}`).digest().subarray(0, 16);
    const data = crypto.createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(1 << 20));
    const digest = sha256(data);
    if (await pushBlob(registry, 'library/many', { data, digest })) pushed++;
    blobs.push({ digest, size: data.length });
  }
  log(`library/many: ${n} blobs of 1 MiB (${pushed} pushed now)`);
  return blobs;
}

/** One random blob of `mb` MiB in `repo` (kept between runs; the file is removed after the push). */
export async function pushRandom(registry, repo, mb) {
  const marker = path.join(ROOT, 'data', `${repo.replace('/', '_')}-${mb}.json`);
  try {
    const m = JSON.parse(fs.readFileSync(marker, 'utf8'));
    if ((await request(`${registry}/v2/${repo}/blobs/${m.digest}`, { method: 'HEAD' })).status === 200) return m;
  } catch { /* build it */ }
  const file = path.join(ROOT, 'data', `random-${mb}.bin`);
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(8 << 20);
  for (let left = mb * 2 ** 20; left > 0; left -= chunk.length) {
    const c = left >= chunk.length ? chunk : chunk.subarray(0, left);
    crypto.randomFillSync(c);
    h.update(c);
    fs.writeSync(fd, c);
  }
  fs.closeSync(fd);
  const m = { repo, digest: 'sha256:' + h.digest('hex'), size: mb * 2 ** 20 };
  await pushBlob(registry, repo, { file, digest: m.digest });
  fs.rmSync(file, { force: true });
  fs.writeFileSync(marker, JSON.stringify(m));
  log(`${repo}: one ${mb} MiB blob pushed`);
  return m;
}
