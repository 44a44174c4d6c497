// Every server and subprocess the run starts is stopped at the end, on an error, on Ctrl-C and at
// the deadline: each registers its stop here.
import { within } from '../../tests/e2e/lib/proc.mjs';
import { log } from './log.mjs';

const cleanups = [];
export const onCleanup = (name, fn) => cleanups.push({ name, fn });

/** Runs the registered stops, last first, each within 30 s. */
export async function cleanupAll() {
  while (cleanups.length) {
    const c = cleanups.pop();
    try {
      if (await within(Promise.resolve().then(c.fn), 30_000) === 'timeout') log(`cleanup ${c.name}: timed out`);
    } catch (e) { log(`cleanup ${c.name}: ${e.message}`); }
  }
}

/** workerd processes, killed on exit if a cleanup could not run (proc.mjs kills its own daemons). */
export const workerdPids = new Set();

/** Installs the exit, signal and uncaught-exception hooks. */
export function guardProcess() {
  process.on('exit', () => {
    for (const pid of workerdPids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  });
  for (const [sig, n] of [['SIGINT', 2], ['SIGTERM', 15]]) {
    // (the harness's own handler may exit first: then the 'exit' hooks above and in proc.mjs kill what is left)
    process.once(sig, () => { log(`${sig}: stopping`); cleanupAll().finally(() => process.exit(128 + n)); });
  }
  // Anything unexpected still ends with every server stopped.
  process.on('uncaughtException', (e) => {
    console.error(e?.stack ?? e);
    cleanupAll().finally(() => process.exit(1));
  });
}

/** Stops everything and exits 3 once `ms` have passed. -> a function that disarms it */
export function startWatchdog(ms) {
  const t = setTimeout(() => {
    log(`deadline of ${ms / 1000} s passed: stopping everything`);
    cleanupAll().finally(() => process.exit(3));
  }, ms);
  return () => clearTimeout(t);
}
