// Puts the last full benchmark run (bench/results/latest.md and the targets in latest.json) into
// docs/performance.md between its markers, so no figure there is typed by hand. Run by
// `npm run bench` after a full run, or by hand: `node scripts/perf_doc.mjs`. tests/docs.rs checks
// that the document holds latest.md unchanged.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const START = '<!-- generated from bench/results/latest.md by scripts/perf_doc.mjs: do not edit -->';
export const END = '<!-- end of generated -->';

/** The generated part: the run's date and machine, its table, its targets. */
export function generated(root = ROOT) {
  const md = fs.readFileSync(path.join(root, 'bench/results/latest.md'), 'utf8').trimEnd();
  const run = JSON.parse(fs.readFileSync(path.join(root, 'bench/results/latest.json'), 'utf8'));
  const m = run.machine ?? {};
  const when = `Run of ${m.date ?? 'unknown date'} on ${m.nproc ?? '?'} cores, ${m.memoryGiB ?? '?'} GiB (${m.cpu ?? 'unknown CPU'}), build ${m.git?.commit ?? m.git ?? '?'}.`;
  const targets = (run.targets ?? []).map((t) => `- ${t.met ? '**met**' : '**missed**'}: ${t.target}${t.detail ? ` (${t.detail})` : ''}`);
  return [START, '', when, '', md, '', '### Targets', '', ...targets, '', END].join('\n');
}

/** docs/performance.md with its generated part replaced. */
export function updated(doc, part) {
  const a = doc.indexOf(START), b = doc.indexOf(END);
  if (a < 0 || b < a) throw new Error('docs/performance.md: generated markers missing');
  return doc.slice(0, a) + part + doc.slice(b + END.length);
}

export function updatePerformanceDoc(root = ROOT) {
  const file = path.join(root, 'docs/performance.md');
  fs.writeFileSync(file, updated(fs.readFileSync(file, 'utf8'), generated(root)));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  updatePerformanceDoc();
  console.log('docs/performance.md: updated from bench/results/latest.md');
}
