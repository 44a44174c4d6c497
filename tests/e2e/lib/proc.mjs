// Process plumbing for the e2e harness: background daemons logging to a file (killed by stop() and
// when this node process exits), one-shot commands with a timeout, port and condition polling.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

const live = new Set(); // started and not yet stopped, in start order: { pid, kind, stopMs }

function killGroup(pid, sig) {
  try { process.kill(-pid, sig); } catch { try { process.kill(pid, sig); } catch { /* gone */ } }
}

function alive(pid) { // our exited children stay zombies until node reaps them: read /proc
  try { return !/^\d+ \(.*\) Z/s.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; }
}

const sleepSync = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

// On exit without stop(): kill commands, then stop daemons newest first (dockerd before containerd),
// synchronously (an 'exit' handler cannot await), each SIGTERM then SIGKILL after its stopMs.
function stopAllSync() {
  const all = [...live].reverse();
  for (const d of all) if (d.kind === 'cmd') killGroup(d.pid, 'SIGKILL');
  for (const d of all) {
    if (d.kind === 'cmd') continue;
    killGroup(d.pid, 'SIGTERM');
    const until = Date.now() + d.stopMs;
    while (alive(d.pid) && Date.now() < until) sleepSync(50);
    if (alive(d.pid)) killGroup(d.pid, 'SIGKILL');
  }
  live.clear();
}

let hooked = false;
function hookExit() {
  if (hooked) return;
  hooked = true;
  process.on('exit', stopAllSync);
  for (const [sig, n] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) {
    process.once(sig, () => process.exit(128 + n)); // -> 'exit' -> stopAllSync
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolve to `p`'s value, or to 'timeout' after ms (the timer is cleared either way). */
export function within(p, ms) {
  let timer;
  const t = new Promise((r) => { timer = setTimeout(() => r('timeout'), ms); });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Last `n` lines of a file (for error messages). */
export function tail(file, n = 15) {
  try { return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n'); } catch { return ''; }
}

/**
 * Start `cmd args` in its own process group, stdout+stderr appended to `log`.
 * Returns { name, pid, log, exited: null | {code, signal}, stop(timeoutMs = stopMs) }:
 * stop() sends SIGTERM to the group, SIGKILL after timeoutMs.
 */
export function daemon(name, cmd, args, { log, env = process.env, cwd, stopMs = 10000 } = {}) {
  hookExit();
  const fd = fs.openSync(log, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], detached: true, env, cwd });
  fs.closeSync(fd);
  child.unref(); // never keep node alive; the exit hook kills it
  const d = { name, pid: child.pid, log, exited: null, kind: 'daemon', stopMs };
  const done = new Promise((resolve) => {
    child.on('error', (e) => { d.exited = { code: null, signal: null, error: e }; resolve(); });
    child.on('exit', (code, signal) => { d.exited = { code, signal }; resolve(); });
  });
  live.add(d);
  d.stop = async (timeoutMs = stopMs) => {
    if (!d.exited) {
      killGroup(d.pid, 'SIGTERM');
      if (await within(done, timeoutMs) === 'timeout') { killGroup(d.pid, 'SIGKILL'); await within(done, 3000); }
    }
    live.delete(d);
  };
  return d;
}

function connects(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    const end = (ok) => { s.destroy(); resolve(ok); };
    s.once('connect', () => end(true));
    s.once('error', () => end(false));
    s.setTimeout(1000, () => end(false));
  });
}

/** Throw if something already listens on 127.0.0.1:port (e.g. a leftover run). */
export async function assertPortFree(port) {
  if (await connects(port)) {
    throw new Error(`127.0.0.1:${port} is already in use (a previous harness run still alive? ` +
      `find it with: ss -ltnp 'sport = :${port}')`);
  }
}

/** Wait until 127.0.0.1:port accepts connections; fail early if daemon `d` dies. */
export async function waitPort(port, d, timeoutMs = 15000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (d?.exited) {
      throw new Error(`${d.name} exited (${JSON.stringify(d.exited)}) before listening on :${port}; ` +
        `see ${d.log}:\n${tail(d.log)}`);
    }
    if (await connects(port)) return;
    if (Date.now() > until) {
      throw new Error(`${d?.name ?? 'server'} not listening on 127.0.0.1:${port} after ${timeoutMs} ms; ` +
        `see ${d?.log}:\n${tail(d?.log)}`);
    }
    await sleep(100);
  }
}

/** Poll `fn` until it returns a truthy value (returned); throw after timeoutMs. */
export async function waitUntil(fn, { timeout = 5000, interval = 50, what = 'condition' } = {}) {
  const until = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(interval);
  }
}

/**
 * Run a command to completion (own process group, killed with SIGKILL after `timeout` ms).
 * Resolves { code, signal, stdout, stderr, timedOut, ms }; with check: true rejects unless code 0.
 */
export function run(cmd, args, { timeout = 60000, env = process.env, cwd, input, check = false } = {}) {
  hookExit();
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, cwd, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '', stderr = '', timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (s) => { stdout += s; });
    child.stderr.setEncoding('utf8').on('data', (s) => { stderr += s; });
    const timer = setTimeout(() => { timedOut = true; killGroup(child.pid, 'SIGKILL'); }, timeout);
    const d = { pid: child.pid, kind: 'cmd' }; // so that the exit hook kills it too
    live.add(d);
    child.on('error', (e) => { clearTimeout(timer); live.delete(d); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(d);
      if (timedOut) stderr += `\n[harness] ${cmd} killed after ${timeout} ms timeout`;
      const r = { code, signal, stdout, stderr, timedOut, ms: Date.now() - t0 };
      if (check && code !== 0) {
        reject(new Error(`${cmd} ${args.join(' ')} failed (code ${code}${timedOut ? ', timed out' : ''}):\n${stderr}${stdout}`));
      } else resolve(r);
    });
    child.stdin.on('error', () => {}); // a child that exits before reading its input is no crash
    child.stdin.end(input ?? '');
  });
}
