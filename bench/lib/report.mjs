// The output: the markdown table with its footnotes, and the results JSON and markdown under
// bench/results/ (a --smoke run writes its own files, so it never replaces the full run's).
import { updatePerformanceDoc } from '../../scripts/perf_doc.mjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CFG, SMOKE, ONLY, HERE, SYSTEMS, PROXY_PORTS, MIRROR_PORT, FRONT_PORT, CONTROL_PORTS, MANIFEST_REF, PULL_REF, secondPath, perRepN } from './config.mjs';
import { T0, anomalies } from './log.mjs';
import { U } from './harness.mjs';
import { sys, mirrorStarts } from './systems.mjs';
import { results, pooled, ran } from './results.mjs';
import { median, pct } from './tools.mjs';
import { fmtNum, ratio, burstMBps, burstsOf, controlCell } from './rows.mjs';
import { CONTROLS } from './controls.mjs';
import { wrkMs } from './measure/wrk.mjs';

export function renderTable(rows) {
  const lines = [
    `| measure | unit | direct | distribution proxy | edgemirror | control | edgemirror/direct | edgemirror/proxy | edgemirror/control |`,
    `|---|---|---:|---:|---:|---:|---:|---:|---:|`,
  ];
  for (const r of rows) {
    const cell = (s) => r.cells?.[s] ?? fmtNum(r.values[s], r.digits);
    const dir = r.better === 'lower' ? '↓' : '↑';
    lines.push(`| ${r.label} | ${r.unit} ${dir} | ${cell('direct')} | ${cell('proxy')} | ${cell('mirror')} | ${controlCell(r)} | ` +
      `${ratio(r.values.mirror, r.values.direct)} | ${ratio(r.values.mirror, r.values.proxy)} | ${r.control ? ratio(r.values.mirror, r.values.control) : '—'} |`);
  }
  lines.push('', ...footnotes());
  return lines.join('\n');
}

/** The footnotes of the phases that ran (¹–⁸ belong to the first phases, as before). */
function footnotes() {
  const cores = os.availableParallelism?.() ?? os.cpus().length;
  const all = footnoteTexts(cores);
  return [all.head, all.controls, ...all.byPhase.filter(([k]) => k.split('|').some((p) => ran.has(p))).map(([, v]) => v())];
}

function controlsNote() {
  const used = Object.entries(CONTROLS).map(([, c]) => `**${c.tag}** = ${c.label}`).join('; ');
  return `Control column (issue 17): small workers written for the benchmark (JS, and one in Rust) (\`bench/controls/\`), each in a Miniflare of its own, in the same workerd build, measured in the same run, interleaved with edgemirror: ${used}. They go upstream as an anonymous client does (token per repository, 307 followed); they check nothing and coalesce nothing. edgemirror/control is the ratio to the control whose tag the cell shows.`;
}

function dockerFlowNote() {
  const runs = results.manifest.mirror.filter((r) => r.dockerFlow);
  const during = runs.map((r) => r.dockerFlow.upstream?.hub ?? []);
  const mid = during[Math.floor(during.length / 2)] ?? [];
  return `¹³ As Docker, containerd and podman ask on their first pull: after the \`GET /v2/\` challenge, a token from edgemirror's \`/token\` for the repository's scope, then the GET with it; timed from the token request, on a fresh instance with empty storage (the pass-through control's cold row is the same pair: its \`/v2/auth\`, then the GET). edgemirror answers the token at once and fetches the upstream token after it (learning the realm with an anonymous \`GET /v2/\` on first contact); the GET finds it or joins the fetch. What the hub registry saw (median run): ${mid.join(', ') || '—'}; token requests: ${fmtNum(median(runs.map((r) => r.dockerFlow.upstream?.token ?? 0)), 0)}.`;
}

function footnoteTexts(cores) {
  const byPhase = []; // [phases ('a|b': any of them ran), text]
  const head = `↓ lower is better, ↑ higher is better. Medians of ${CFG.reps} repetition(s); all on 127.0.0.1 (${cores} cores, load average ${os.loadavg()[0].toFixed(2)} at the end); "direct" is the Docker-Hub-like upstream (token auth, blobs answered 307 to a separate blob host), except in the wrk row.`;
  byPhase.push(['manifests', () => `¹ Cold: for distribution and edgemirror, the first request for the manifest after a fresh start with empty storage (a new Miniflare instance with a new state dir / a new distribution storage root; the process has answered one \`GET /v2/\` first, so start-up is not counted). For direct, a new client's first request: the anonymous token, then the request on a new connection, as every client of a token-auth registry pays (the same upstream exchange the caches make inside; with a token already held the first request took ${fmtNum(median(results.manifest.direct.map((r) => r.HEAD.coldFirstWithTokenMs)), 1)} ms HEAD / ${fmtNum(median(results.manifest.direct.map((r) => r.GET.coldFirstWithTokenMs)), 1)} ms GET). Warm: then ${perRepN()} sequential requests on one keep-alive connection (after 10 unrecorded), node's http client; p50/p99 over all repetitions' requests together. Upstream requests received per warm GET: ${SYSTEMS.map((s) => `${sys[s].label} ${upstreamPerRequest(s, 'GET')}`).join(', ')}. edgemirror's floor in this runtime (\`GET /v2/\`, answered by the worker itself: no store, no upstream): p50 ${fmtNum(pooled('mirror', 'GET', 0.5, 'floorV2'), 2)} ms.`]);
  byPhase.push(['blobs|memory', () => `² Blob rows: curl, MB/s = bytes / total time; cold = the first GET after a fresh start (for direct: the first GET, i.e. the same as warm); warm = the next GET, after edgemirror logged the blob stored (R2 is bound, so blobs go to R2, not the Cache API) / after distribution wrote it. Pass-through: \`Range: bytes=0-\` requests, which edgemirror never stores (direct: the same request to the hub). "Stored while streamed": a ${CFG.storedMb} MiB layer, the first GET after a fresh start, in the memory phase. Controls: the R2 control's cold GET tee()s the upstream body to the client and into R2 (what edgemirror does), its warm GET reads R2; the pass-through control streams the upstream body and stores nothing (every GET is a first GET: the ceiling of a worker in this runtime); the Cache API control tee()s it into the Cache API instead (no R2): what edgemirror's first GET costs with each local store. The local default: a second edgemirror started as \`npm start\` runs it (R2 on disk, \`BLOB_FILL=after-answer\`), whose client asks its \`/token\` first (as clients do, and as the pass-through control's client gets its token before its timed GET), whose first GET passes the upstream's body through and then fetches the blob again for R2 (the wait until it is stored and the next GET: the JSON's \`raw.blob.local\`).`]);
  byPhase.push(['pulls', () => `³ skopeo 1.9 \`copy --all\` (2 platforms) to a \`dir:\`, wall time; to edgemirror through a TLS-rejecting TCP front (skopeo first tries HTTPS and would stall 10 s on workerd's port). Cold = on a fresh instance.`]);
  byPhase.push(['pulls|bursts|followers|many', () => `⁴ Requests the upstream side received during the pull: the hub registry's access log (GET/HEAD, incl. 401s), its token server and its blob host (where the 307s point).`]);
  byPhase.push(['pulls', () => `⁵ edgemirror: a second upstream entry for the same hub with \`tag_ttl = ${CFG.shortTagTtl}s\`, pulled once, then again after ${CFG.shortTagTtl + 0.7} s. direct and distribution have no tag TTL (distribution asks the remote for every tag): their value is one more warm pull.`]);
  byPhase.push(['memory|blobs', () => `⁶ RSS of the process that streams the bytes: edgemirror = the workerd process Miniflare runs (the R2 simulator runs inside it), distribution = its registry process; sampled every 20 ms. idle = after start and one request; pass-through = \`Range: bytes=0-\` requests (never stored); cold = a plain GET of a blob not yet held, sampled until edgemirror logged it stored (the ${CFG.bigMb} MiB layer: during the blob rows' cold GETs, median; the ${CFG.storedMb} MiB one; with R2 bound edgemirror stores blobs up to 5 GiB, with the Cache API alone up to 512 MiB). The direct hub redirects, so it streams nothing itself.`]);
  byPhase.push(['wrk', () => `⁷ The wrk row uses the plain (no auth) registry: direct = the plain registry itself, distribution = its proxy of the plain registry, edgemirror = its \`plain\` upstream; the same manifest by digest, warmed once first. wrk runs on the same ${cores} cores as the server. The runtime's share, under the same wrk in the same workerd: a JavaScript worker answering a constant 1 KB: ${wrkControl('constant')}; the Cache API control (**C**) answering the same manifest by digest as a hit from the local Cache API simulator (where edgemirror keeps manifests): ${wrkControl('cacheHit')}. ${CFG.wrkRuns} runs per system, interleaved (mirror, control, constant, … in turn); every run's p99 is listed, since the tail differs between runs.`]);
  byPhase.push(['many', () => manyNote()]);
  byPhase.push(['bursts', () => burstNote()]);
  byPhase.push(['followers', () => followersNote()]);
  byPhase.push(['fleet', () => fleetNote()]);
  byPhase.push(['cpu', () => cpuNote()]);
  byPhase.push(['manifests', () => dockerFlowNote()]);
  byPhase.push(['wan', () => `¹⁴ The network put back in (\`bench/lib/measure/wan.mjs\`): every upstream exchange of the worker held ${CFG.wan.upstreamMs} ms before it is sent (Miniflare's \`outboundService\`: an upstream ${CFG.wan.upstreamMs} ms of round trip away, as a registry is from a distant data centre), and the client ${CFG.wan.clientMs} ms of round trip from the worker (slept between the token's answer and the GET, while the worker works on). The flow of Docker, containerd and podman: the challenge (not timed), a token from the worker's realm, the GET with it; timed from the token request; a fresh instance with empty storage per series, then a second repository on the same instance. edgemirror answers the token at once; with the scope it fetches the upstream token ahead meanwhile (and, on first contact, the realm with an anonymous \`GET /v2/\`); without one it cannot, and the GET pays the 401 and the token exchange itself. The pass-through control (**P**) forwards the token request to the upstream's realm (after a \`GET /v2/\` to learn it) and the GET.`]);
  byPhase.push(['manifests', () => `¹⁵ edgemirror keeps the manifests it fetched or read from the store in the isolate's memory (\`MANIFEST_MEMORY\`, 4 MiB by default), so the warm rows above make no store lookup; a second instance with \`MANIFEST_MEMORY=0\` (started per repetition, the manifest fetched once, then the same series) answers every hit from the store: the tag's record with the manifest's bytes, one Cache API lookup, as the Cache API control (**C**) does.`]);
  byPhase.push(['manifests', () => `¹⁶ After the cold request of row ¹ (and its store writes), a GET of \`${secondPath}\` on the same instance, on a new connection: a repository it has not seen, so a miss with a token of its own, but the instance's one-time costs (its code's first run, the local stores' first use, the registry's realm) are paid already. The pass-through control (**P**): its \`/v2/auth\` for that repository and the GET, after its first pair. The Cache API control (**C**), the same GET after its warm series: ${fmtNum(median(results.manifest.cache.map((r) => r.secondRepoMs)), 1)} ms.`]);
  byPhase.push(['manifests|pulls', () => `¹⁷ edgemirror with no store: another instance of the same build with no R2 bucket, Miniflare's Cache API turned off (\`cache: false\`: a lookup misses at once, a write is accepted and dropped) and \`MANIFEST_MEMORY=0\`, fresh for each repetition. It takes every step of a miss (routing, the token, the upstream GET, the digest check, the blob's \`tee()\` and the write handed over, the log line) but waits for no store, so beside the pass-through control (**P**) it tells what the local store simulators cost (the rows without "no store") from what edgemirror's own path costs. "Again on that instance": its second skopeo pull, cold as well, but the instance's code has run once (the control's second pull, likewise on its used instance).`]);
  return { head, controls: controlsNote(), byPhase };
}

function burstNote() {
  const b = CFG.burst, sum = (s, f) => results.burst[s].reduce((a, r) => a + (f(r) ?? 0), 0);
  const overflows = ['proxy', 'mirror'].map((s) => `${sys[s].label} ${sum(s, (r) => r.listenOverflows)}`).join(', ');
  const agg = ['proxy', 'mirror'].map((s) => `${sys[s].label} ${b.ns.map((n) => `${fmtNum(burstMBps(s, n), 0)}`).join(' / ')}`).join(', ');
  const manifestP50 = (s, n) => median(burstsOf(s, n).flatMap((r) => r.manifestMs));
  return `⁹ N clients in this node process pull one image at the same moment: each GETs the manifest by tag, then the config and all ${b.layers} layers (${(b.layerBytes / 2 ** 20).toFixed(2)} MiB each, random) at once, every request on a connection of its own, every body hashed and checked against its digest; pull time = from the manifest request to the last blob's last byte. A fresh image (pushed to the hub just before) for every N and repetition, so every burst is cold; one fresh instance per system and repetition takes N = ${b.ns.join(', ')} in turn (after each burst: edgemirror's store writes done). p50/p99 over every client of every repetition (nearest rank). Upstream requests: the whole burst, the repetition with the median total. Memory: the streaming process (workerd / distribution's registry) after the N = ${b.ns.at(-1)} burst, peak sampled every 20 ms until its store writes were done, "after" 0.5 s later; edgemirror's wasm memory from its \`/healthz\` header \`edgemirror-wasm-memory\` (the isolate's linear memory; it never shrinks). direct has nothing to coalesce and is not measured. Every client receives the whole image, so a burst moves N times the bytes through one server and one client process on the same cores: aggregate MB/s (all clients' bytes / the burst's wall time, median) at N = ${b.ns.join(' / ')}: ${agg}. The manifest GET alone, p50 at N = ${b.ns.join(' / ')}: ${['proxy', 'mirror'].map((s) => `${sys[s].label} ${b.ns.map((n) => fmtNum(manifestP50(s, n), 0)).join(' / ')} ms`).join(', ')}. Listen-queue overflows during the bursts (summed): ${overflows}. ${warmBurstNote()}`;
}

/** The warm bursts and the small-layer series: how much of p50(N=max) / p50(N=1) is coalescing. */
function warmBurstNote() {
  const b = CFG.burst, n1 = b.ns[0], nMax = b.ns.at(-1);
  const p50 = (s, n, o) => { const t = burstsOf(s, n, o).flatMap((r) => r.times); return t.length ? pct(t, 0.5) : null; };
  const growth = (s, o) => ratio(p50(s, nMax, o), p50(s, n1, o));
  const series = [['main', b.layerBytes], ...(b.smallLayerBytes ? [['small', b.smallLayerBytes]] : [])];
  const parts = series.map(([series, bytes]) => `${(bytes / 1024).toFixed(0)} KiB layers: ` + ['proxy', 'mirror'].map((s) =>
    `${sys[s].label} cold ${growth(s, { series })}× / warm ${growth(s, { series, warm: true })}× ` +
    `(aggregate MB/s at N = ${b.ns.join(' / ')}, warm: ${b.ns.map((n) => fmtNum(burstMBps(s, n, { series, warm: true }), 0)).join(' / ')})`).join(', ')).join('; ');
  return `Warm: after each cold burst (and its store writes) the same N clients pull the same image again, now held: nothing to coalesce and, for edgemirror, nothing upstream; what the machine costs for N clients at once. ${b.smallLayerBytes ? `A second series pulls images of ${b.layers} × ${(b.smallLayerBytes / 1024).toFixed(0)} KiB layers (cold, then warm), where bandwidth does not dominate. ` : ''}p50(N = ${nMax}) / p50(N = ${n1}): ${parts}.`;
}

function followersNote() {
  const f = results.followers;
  const cs = f.mirror ? [...new Set(f.mirror.clients.map((c) => c.cacheStatus ?? 'error'))].join(' | ') : '—';
  return `¹⁰ ${CFG.burst.followers} clients GET the ${CFG.bigMb} MiB layer (\`library/big\`) at once from a fresh instance, once. Time to first byte = to the first body byte. edgemirror's leader is the one answer that went upstream (cache-status ${cs}); it streams the layer to its client and into R2 at once, and the others wait for that write to land, then stream from R2, so their time to first byte is the leader's total plus the moment the write takes to commit after the last byte. distribution has no leader: the client answered first is shown as one; the upstream row shows how often it fetched the layer. Control **B** (\`bench/controls/branch.js\`): the other option of issue 13, followers receive a \`tee()\` branch of the leader's stream; workerd forbids reading a stream in another request's handler, so its in-flight map lives in a Durable Object per digest (the requests go worker → DO); requests arriving before the upstream's answer get a branch, one more branch goes into R2, later ones wait for the R2 write. Peak RSS: the instance's workerd process (R2 simulator and DO inside), sampled every 20 ms until the last client and the R2 write were done.`;
}

function fleetNote() {
  const n = CFG.burst.fleetN, one = results.burst.mirror.filter((r) => r.n === n && (r.series ?? 'main') === 'main' && !r.warm).flatMap((r) => r.times);
  return `¹¹ The built worker as two workers of one Miniflare (\`startMirrorFleet\` of \`scripts/serve.mjs\`: two isolates in one workerd, sharing the Cache API, R2 and, when bound, the COORDINATOR Durable Object namespace), routed by Host (\`a.test\` / \`b.test\`); ${n} clients pull one fresh image (${CFG.burst.layers} × ${(CFG.burst.layerBytes / 2 ** 20).toFixed(2)} MiB layers) at once, alternately through each isolate, every digest checked; ${CFG.reps} repetition(s) each, a fresh fleet and image every time. Without the Durable Object each isolate coalesces only its own misses (≤ 1 upstream GET per object per isolate). The fleet keeps its Cache API and R2 in memory (\`startMirrorFleet\` takes no state directory), the single mirror of the other rows on disk. One isolate, the same N, in this run (bursts phase): p50 ${fmtNum(one.length ? pct(one, 0.5) : null, 0)} ms.`;
}

function cpuNote() {
  const c = CFG.cpu;
  return `¹² CPU: the workerd process's utime + stime (\`/proc/<pid>/stat\`, 10 ms ticks) over ${c.requests} sequential keep-alive requests, per request; ${c.blocks} block(s) per system, edgemirror's and the control's interleaved, median block, after one unrecorded pass of up to 300 requests per system (V8 recompiles a worker's hot functions in the background after its first requests; that CPU is the start's, not a request's). \`GET /v2/\`: edgemirror answers it itself (no store, no upstream; and again on a second instance with a \`RATELIMIT\` KV namespace bound, where a ping shows the client's remaining pulls: read from KV once per isolate and window) vs control **L**, a JS worker answering with one log line (edgemirror logs one line per request too), and control **W**, the same in Rust (\`bench/controls/log-rs\`: workers-rs, built by worker-build as edgemirror is, names stripped). Warm manifest GET by tag: edgemirror's hit (from the isolate's memory; and again on a third instance with \`MANIFEST_MEMORY=0\`, from the Cache API: the tag's record with the manifest's bytes) vs the Cache API control's hit (one \`caches.default.match\`). Warm 1 MiB blob GET (${Math.ceil(c.requests / 5)} requests per block): edgemirror's R2 hit vs the R2 control's (one \`BLOBS.get\`), the body read whole each time. Cold start: a new Miniflare instance (new workerd process) from the call that starts it until its first answer to \`GET /v2/\` (in brackets: until Miniflare reported it ready); ${c.coldStarts} start(s) each, interleaved; the second row is the first request alone, once ready; the last two put control **W** beside them (any Rust → wasm worker's start and first request in this runtime: what edgemirror adds is the first run of more code, as V8 compiles a wasm function when it is first called).`;
}

function manyNote() {
  const mn = results.many;
  const sum = (name, f) => mn[name].reduce((a, r) => a + (f(r) ?? 0), 0);
  const overflows = SYSTEMS.map((s) => `${sys[s].label} ${sum(s, (r) => r.listenOverflows.cold)} cold / ${sum(s, (r) => r.listenOverflows.warm)} warm`).join(', ');
  const any = SYSTEMS.some((s) => sum(s, (r) => r.listenOverflows.cold + r.listenOverflows.warm) > 0);
  const tokens = SYSTEMS.filter((s) => s !== 'direct').map((s) => `${sys[s].label} ${median(mn[s].map((r) => r.coldUpstream.token))}`).join(', ');
  return `⁸ One curl with --parallel, all ${CFG.manyBlobs} at once; MB/s = bytes / wall time. Warm: the median of 5 such bursts one after another (one burst takes ~0.1 s, so a single one is mostly jitter; every burst's MB/s is in the JSON's \`raw.many\`). The hub's blob host and token server are Python \`ThreadingHTTPServer\`s, whose listen backlog is 5: connections dropped because a listen queue was full (kernel ListenOverflows, summed over the repetitions): ${overflows}${any ? '; each drop costs the client a SYN retransmit after 1 s, which dominates the rows it happens in' : ''}. The same blobs straight from the plain registry (Go): ${fmtNum(median(mn.direct.map((r) => r.plainMBps)), 0)} MB/s. Token fetches upstream during one cold run (median): ${tokens}.`;
}

function upstreamPerRequest(name, method) {
  const v = median(results.manifest[name].map((r) => r[method].warm.upstreamDuringSeries.total / (r[method].warm.n + 10)));
  return v == null ? '—' : v.toFixed(2);
}

/** "N req/s (median), p99 of every run a, b, c ms" of a control of the wrk row. */
function wrkControl(name) {
  const runs = results.wrk[name]?.runs ?? [];
  return `${fmtNum(median(runs.map((r) => r.rps)), 0)} req/s, p99 of each run ${runs.map((r) => fmtNum(wrkMs(r.latencyP99), 0)).join(', ')} ms`;
}

/** Writes bench/results/<ISO time>[-smoke].json, latest[-smoke].json and latest[-smoke].md, and prints
 *  the table, the targets and the notes on stdout. */
export function writeResults({ mach, timings, images, data: { big, huge, stored, many }, rows, table, targets }) {
  const manifest = `${MANIFEST_REF.repo}:${MANIFEST_REF.tag}`;
  const out = {
    mode: CFG.mode, only: ONLY, config: CFG, machine: { ...mach, loadAvgAtEnd: os.loadavg().map((x) => +x.toFixed(2)) }, durationSecs: (Date.now() - T0) / 1000, phaseSecs: timings,
    ports: { upstream: U.PORTS, proxy: PROXY_PORTS, mirror: MIRROR_PORT, front: FRONT_PORT, controls: CONTROL_PORTS },
    data: { manifest, manifestDigest: images[manifest].digest, pull: PULL_REF, bigLayer: big, huge, stored, many: { repo: 'library/many', count: many.length, size: 1 << 20 },
      burst: { ...CFG.burst, images: results.burst.mirror.map((r) => r.repo) } },
    rows: rows.map(({ key, label, unit, better, values, cells, warm, cold, control }) => ({ key, label, unit, better, warm, cold, values, cells, control,
      vsDirect: ratio(values.mirror, values.direct), vsProxy: ratio(values.mirror, values.proxy), vsControl: control ? ratio(values.mirror, values.control) : null })),
    targets, anomalies, raw: results, mirrorInstances: mirrorStarts(), table,
  };
  fs.mkdirSync(path.join(HERE, 'results'), { recursive: true });
  const stamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z').replaceAll(':', '-');
  const suffix = (SMOKE ? '-smoke' : '') + (ONLY ? '-only' : ''); // an --only run never replaces a whole run's files
  for (const f of [`${stamp}${suffix}.json`, `latest${suffix}.json`]) fs.writeFileSync(path.join(HERE, 'results', f), JSON.stringify(out, null, 2) + '\n');
  fs.writeFileSync(path.join(HERE, 'results', `latest${suffix}.md`), table + '\n');
  // A full run's figures go into docs/performance.md (never typed by hand there).
  if (!SMOKE) updatePerformanceDoc();
  console.log(table);
  console.log('\nTargets:');
  for (const t of targets) console.log(`- ${t.met == null ? 'skip  ' : t.met ? 'met   ' : 'MISSED'} ${t.target}: ${t.detail}`);
  if (anomalies.length) { console.log('\nNotes:'); for (const a of anomalies) console.log(`- ${a}`); }
  console.log(`\n(${CFG.mode} run, ${out.durationSecs.toFixed(0)} s; results in bench/results/${stamp}${suffix}.json)`);
}
