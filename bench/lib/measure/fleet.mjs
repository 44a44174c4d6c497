// Concurrent cold pulls over two isolates (issue 13): the built worker as two workers of one
// Miniflare (scripts/serve.mjs startMirrorFleet: routed by Host a.test / b.test, sharing the Cache
// API, R2 and, when bound, the COORDINATOR Durable Object namespace); CFG.burst.fleetN clients pull
// one fresh image at once, alternately through each isolate; with and without the Durable Object.
import { request } from '../../../tests/e2e/lib/http.mjs';
import { sleep, within } from '../../../tests/e2e/lib/proc.mjs';
import { rssKb, findWorkerd } from '../../../tests/e2e/lib/procstats.mjs';
import { CFG, CONTROL_PORTS } from '../config.mjs';
import { log, anomaly } from '../log.mjs';
import { workerdPids } from '../cleanup.mjs';
import { startPinnedFleet } from '../build.mjs';
import { mirrorTable } from '../systems.mjs';
import { results } from '../results.mjs';
import { pushBurstImage, burst } from './bursts.mjs';
import { median } from '../tools.mjs';

const NAMES = ['a', 'b'];

async function fleetBurst(rep, coordinator) {
  const n = CFG.burst.fleetN;
  const img = await pushBurstImage(rep, n, { kind: `fleet-${coordinator ? 'do' : 'nodo'}` });
  let lastStoreAt = Date.now();
  const onLog = (line) => { if (line.includes('"stored"')) lastStoreAt = Date.now(); };
  const before = new Set(findWorkerd());
  const fleet = await within(startPinnedFleet({ port: CONTROL_PORTS.fleet, names: NAMES, coordinator, vars: { UPSTREAMS: mirrorTable() }, onLog }), 60_000);
  if (fleet === 'timeout') throw new Error('the fleet did not start within 60 s');
  const pids = findWorkerd().filter((p) => !before.has(p));
  for (const p of pids) workerdPids.add(p);
  try {
    const base = `http://127.0.0.1:${CONTROL_PORTS.fleet}`;
    for (const name of NAMES) await request({ port: CONTROL_PORTS.fleet, path: '/v2/' }, { headers: { host: `${name}.test` } });
    const b = await burst('fleet', n, img, { base, label: `fleet (${coordinator ? 'Durable Object' : 'no Durable Object'})`, headers: (i) => ({ host: `${NAMES[i % NAMES.length]}.test` }) });
    // the store writes run after the answers: wait for them to settle before the fleet stops
    for (const t0 = Date.now(); Date.now() - lastStoreAt < 500 && Date.now() - t0 < 30_000;) await sleep(100);
    results.fleet.push({ rep, coordinator, ...b });
    log(`${n} concurrent cold pulls over ${NAMES.length} isolates, ${coordinator ? 'with' : 'without'} the Durable Object, rep ${rep}: ` +
      `p50 ${median(b.times)?.toFixed(0)} ms, max ${Math.max(...b.times).toFixed(0)} ms, ${b.upstream.total} upstream (${b.upstream.get} GET, ${b.upstream.head} HEAD, ${b.upstream.token} token, ${b.upstream.blobHost} blob host)`);
  } finally {
    await fleet.stop();
    for (const p of pids) if (rssKb(p) == null) workerdPids.delete(p);
  }
}

export async function measureFleet() {
  for (let rep = 0; rep < CFG.reps; rep++) {
    for (const coordinator of rep % 2 ? [false, true] : [true, false]) await fleetBurst(rep, coordinator);
  }
  if (!results.fleet.some((r) => r.coordinator)) anomaly('fleet: no burst with the Durable Object');
}
