// The one small HTTP client of the end-to-end tests and the benchmark: a request whose answer is read
// whole, with a timeout. world.mjs's raw(), pull.mjs's get() and bench/ are thin wrappers over it.
import http from 'node:http';

const now = () => Number(process.hrtime.bigint()) / 1e6; // ms

/**
 * One HTTP request; the body is read whole.
 *
 * `target`: a URL (string or URL object), or `{ port, path, host = '127.0.0.1' }`, whose path is
 * sent exactly as given (`..`, `%2e`, `//` reach the server as written; Host settable in headers).
 *
 * `agent`: none unless one is passed, i.e. a connection of its own per request. With Node's default
 * keep-alive agent, a burst that reuses sockets left idle by an earlier burst now and then meets one
 * that workerd is closing at that moment ("socket hang up" before any byte: a client-side race, not
 * the mirror's answer). Pass an `http.Agent` to measure or test keep-alive.
 *
 * `body`: a Buffer or string, sent whole (Node sets Content-Length for it).
 *
 * Rejects on no answer, on the timeout (socket idle for `timeout` ms) and on a body cut short.
 * -> { status, headers, body: Buffer, ms } (ms: from sending to the body's end)
 */
export function request(target, { method = 'GET', headers = {}, body, agent, timeout = 20_000 } = {}) {
  const isUrl = typeof target === 'string' || target instanceof URL;
  const what = `${method} ${isUrl ? String(target) : target.path}`;
  return new Promise((resolve, reject) => {
    const t0 = now();
    const options = { method, headers, agent: agent ?? false, timeout };
    const onResponse = (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), ms: now() - t0 }));
      res.on('error', reject); // a body cut short
      res.on('aborted', () => reject(new Error(`body cut: ${what}`)));
    };
    const req = isUrl
      ? http.request(target, options, onResponse)
      : http.request({ host: target.host ?? '127.0.0.1', port: target.port, path: target.path, ...options }, onResponse);
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeout} ms: ${what}`)));
    req.on('error', reject);
    req.end(body);
  });
}
