// Whole pulls with skopeo: cold, warm, and after the tag TTL, with the upstream requests of each.
import fs from 'node:fs';
import path from 'node:path';
import { run, sleep } from '../../../tests/e2e/lib/proc.mjs';
import { CFG, ROOT, PULL_REF, SYSTEMS, CONTROL_PORTS } from '../config.mjs';
import { log } from '../log.mjs';
import { markUpstream, upstreamSince } from '../upstream.mjs';
import { sys, pullHost, localDefaultMirror, noStoreMirror } from '../systems.mjs';
import { startTlsRejectingFront } from '../harness.mjs';
import { results } from '../results.mjs';
import { hr } from '../tools.mjs';
import { freshControl, stopControl, controlPullHost } from '../controls.mjs';

async function skopeoPull(host, ref, label) {
  const dir = path.join(ROOT, 'pulls', label);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const t0 = hr();
  const r = await run('skopeo', ['copy', '--all', '--src-tls-verify=false', '--src-no-creds', '--retry-times', '0',
    `docker://${host}/${ref}`, `dir:${dir}`], { timeout: 180_000 });
  const secs = (hr() - t0) / 1000;
  if (r.code !== 0) throw new Error(`skopeo copy ${host}/${ref} failed (${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stderr.slice(-800)}`);
  return secs;
}

/** After the tag TTL: the mirror's short-ttl upstream (same hub, tag_ttl 3 s): prime, wait, re-pull.
 *  direct and distribution have no tag TTL: every tag lookup goes upstream (a third, warm pull). */
async function pullAfterTtl(name) {
  const ref = name === 'mirror' ? `short-ttl/${PULL_REF}` : PULL_REF;
  await skopeoPull(pullHost(name), ref, `${name}-prime`);
  await sys[name].settle();
  if (name === 'mirror') await sleep(CFG.shortTagTtl * 1000 + 700);
  const m = markUpstream();
  const afterTtlSecs = await skopeoPull(pullHost(name), ref, `${name}-after-ttl`);
  return { afterTtlSecs, afterTtlUpstream: await upstreamSince(m) };
}

/** Runs `pulls(host)` against the second mirror `m` (started on `port`) through a TLS-rejecting
 *  front on `frontPort` (skopeo tries HTTPS first); stops both after. */
async function throughFront(m, port, frontPort, pulls) {
  const front = await startTlsRejectingFront({ port: frontPort, targetPort: port });
  try {
    await pulls(`127.0.0.1:${frontPort}`);
  } finally {
    await front.stop();
    await m.stop();
  }
}

/** A cold pull from edgemirror as `npm start` runs it (`localDefaultMirror`: R2 on disk,
 *  BLOB_FILL=after-answer, the coordinator): the same pull, blobs of 4 MiB or more stored after
 *  their answers. */
async function pullLocalDefault(rep) {
  await throughFront(await localDefaultMirror(`local-pull-${rep}`), CONTROL_PORTS.local, CONTROL_PORTS.localFront, async (host) => {
    const mark = markUpstream();
    const coldSecs = await skopeoPull(host, PULL_REF, 'local-cold');
    results.pull.local.push({ rep, coldSecs, coldUpstream: await upstreamSince(mark) });
    log(`pull, local default (BLOB_FILL=after-answer) rep ${rep}: cold ${coldSecs.toFixed(2)} s (${results.pull.local.at(-1).coldUpstream.total} upstream)`);
  });
}

/** edgemirror with no store (`noStoreMirror`): a fresh instance's cold pull, then the same pull
 *  again on it, which is cold too (nothing is kept) but finds the instance's code run once. */
async function pullNoStore(rep) {
  await throughFront(await noStoreMirror(), CONTROL_PORTS.noStore, CONTROL_PORTS.noStoreFront, async (host) => {
    const mark = markUpstream();
    const coldSecs = await skopeoPull(host, PULL_REF, 'nostore-cold');
    const coldUpstream = await upstreamSince(mark);
    const usedSecs = await skopeoPull(host, PULL_REF, 'nostore-used');
    results.pull.noStore.push({ rep, coldSecs, usedSecs, coldUpstream });
    log(`pull, edgemirror with no store rep ${rep}: cold ${coldSecs.toFixed(2)} s (${coldUpstream.total} upstream), again on the same instance ${usedSecs.toFixed(2)} s`);
  });
}

export async function measurePull(rep) {
  for (const name of SYSTEMS) {
    const s = sys[name];
    await s.fresh();
    let m = markUpstream();
    const coldSecs = await skopeoPull(pullHost(name), PULL_REF, `${name}-cold`);
    const coldUp = await upstreamSince(m);
    await s.settle();
    m = markUpstream();
    const warmSecs = await skopeoPull(pullHost(name), PULL_REF, `${name}-warm`);
    const warmUp = await upstreamSince(m);
    const out = { rep, coldSecs, warmSecs, coldUpstream: coldUp, warmUpstream: warmUp };
    if (rep === 0) Object.assign(out, await pullAfterTtl(name));
    results.pull[name].push(out);
    log(`pull ${name} rep ${rep}: cold ${coldSecs.toFixed(2)} s (${coldUp.total} upstream), warm ${warmSecs.toFixed(2)} s (${warmUp.total} upstream)` +
      (out.afterTtlUpstream ? `, after TTL ${out.afterTtlUpstream.total} upstream` : ''));
  }
  await pullLocalDefault(rep);
  await pullNoStore(rep);
  // the controls: the pass-through proxy (holds nothing: its pull is always the cold one) and the R2
  // control, cold then warm
  await freshControl('pass');
  let m = markUpstream();
  const passSecs = await skopeoPull(controlPullHost('pass'), PULL_REF, 'pass-cold');
  const passUp = await upstreamSince(m);
  // again on the same instance: its code run once, as the no-store mirror's second pull
  const usedSecs = await skopeoPull(controlPullHost('pass'), PULL_REF, 'pass-used');
  results.pull.pass.push({ rep, coldSecs: passSecs, usedSecs, coldUpstream: passUp });
  await stopControl('pass');
  await freshControl('r2');
  m = markUpstream();
  const r2Cold = await skopeoPull(controlPullHost('r2'), PULL_REF, 'r2-cold');
  const r2Up = await upstreamSince(m);
  await sleep(500); // its store writes run after the answers
  const r2Warm = await skopeoPull(controlPullHost('r2'), PULL_REF, 'r2-warm');
  results.pull.r2.push({ rep, coldSecs: r2Cold, warmSecs: r2Warm, coldUpstream: r2Up });
  await stopControl('r2');
  log(`pull controls rep ${rep}: pass-through ${passSecs.toFixed(2)} s (${results.pull.pass.at(-1).coldUpstream.total} upstream); R2 control cold ${r2Cold.toFixed(2)} s, warm ${r2Warm.toFixed(2)} s`);
}
