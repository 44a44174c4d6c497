// A fault-injecting HTTP proxy on 127.0.0.1, one listener per upstream (registry, token server,
// blob host, plain registry). It forwards everything unless a rule armed for that listener
// matches the request; the rule's fault then replaces or mangles the answer. Absolute URLs the
// upstreams hand out (Location, the WWW-Authenticate realm) are rewritten to point at the matching
// listener, so every hop of a pull (registry -> token -> blob host) passes through it.
//
// Faults: status (any code, optional Retry-After), hang (no headers, ever), delay (headers after
// `ms`), stall (headers and `after` bytes, then silence), reset (headers and `after` bytes, then
// a TCP RST), short (headers with the real Content-Length, all but `missing` bytes, then FIN),
// wrong (same length, every byte flipped), loop (307 to itself, for ever), redirect (307 to `to`),
// badjson (200 with a body that is not JSON), expired (the token server issues a token that
// already expired, while saying it lasts 300 s).
// A listener with `rejectAuthorization` answers 400 to any request carrying Authorization (as S3
// does for a presigned URL), whatever the rules say.
import http from 'node:http';
import fs from 'node:fs';

const HOP = ['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'te', 'trailer'];

/**
 * `targets`: { name: { port, target: 'http://127.0.0.1:N', rejectAuthorization? } }.
 * `logFile`: one JSON line per request ({proxy, method, path, status, authz, fault}); no values of
 * credentials, only whether one was sent.
 * -> { urls: {name: url}, arm(name, rule), disarm(), requests(from?), mark(), stop() }
 * A rule: { method?, path?: RegExp, fault, times = 1, ...fault parameters }.
 */
export async function startFaultProxies({ targets, logFile }) {
  const urls = Object.fromEntries(Object.entries(targets).map(([n, t]) => [n, `http://127.0.0.1:${t.port}`]));
  // target origin -> proxy origin, for every header value that names one
  const rewrites = Object.entries(targets).map(([n, t]) => [t.target, urls[n]]);
  const rewrite = (v) => rewrites.reduce((s, [from, to]) => s.split(from).join(to), v);
  const rules = Object.fromEntries(Object.keys(targets).map((n) => [n, []]));
  const log = [];
  const held = new Set(); // sockets kept open by hang/stall, closed at stop
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

  const record = (entry) => {
    log.push(entry);
    if (logFile) fs.appendFileSync(logFile, JSON.stringify(entry) + '\n');
  };
  const take = (name, req) => {
    const list = rules[name];
    const i = list.findIndex((r) => (!r.method || r.method === req.method) && (!r.path || r.path.test(req.url)));
    if (i < 0) return null;
    const rule = list[i];
    if (--rule.times <= 0) list.splice(i, 1);
    return rule;
  };

  const servers = await Promise.all(Object.entries(targets).map(([name, t]) => new Promise((resolve, reject) => {
    const server = http.createServer((req, res) => {
      const authz = req.headers.authorization !== undefined;
      const entry = { proxy: name, method: req.method, path: req.url, authz, fault: null, status: 0 };
      if (t.rejectAuthorization && authz) {
        entry.status = 400;
        entry.fault = 'rejected-authorization';
        record(entry);
        const body = '<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>';
        res.writeHead(400, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
        return res.end(body);
      }
      const rule = take(name, req);
      entry.fault = rule?.fault ?? null;
      record(entry);
      req.resume();
      const answer = (status, headers = {}, body = '') => {
        entry.status = status;
        res.writeHead(status, { 'content-length': Buffer.byteLength(body), ...headers });
        res.end(body);
      };
      switch (rule?.fault) {
        case 'status': {
          const headers = { 'content-type': 'application/json', ...(rule.retryAfter !== undefined ? { 'retry-after': String(rule.retryAfter) } : {}) };
          return answer(rule.code, headers, rule.body ?? JSON.stringify({ errors: [{ code: 'UNKNOWN', message: `injected ${rule.code}` }] }));
        }
        case 'hang':
          held.add(req.socket);
          return;
        case 'loop':
          return answer(307, { location: `${urls[name]}${req.url}` });
        case 'redirect':
          return answer(307, { location: rule.to });
        case 'badjson':
          return answer(200, { 'content-type': 'application/json' }, '{"token": "abc", oops');
        default:
          break;
      }
      const go = () => forward(name, t, req, res, rule, entry);
      if (rule?.fault === 'delay') setTimeout(go, rule.ms); else go();
    });
    const forward = (name, t, req, res, rule, entry) => {
      const headers = { ...req.headers, host: new URL(t.target).host };
      if (rule?.fault === 'expired') headers['x-fault-expired'] = '1';
      const up = http.request(`${t.target}${req.url}`, { method: req.method, headers, agent }, (ures) => {
        entry.status = ures.statusCode;
        const out = {};
        for (const [k, v] of Object.entries(ures.headers)) {
          if (HOP.includes(k)) continue;
          out[k] = k === 'location' || k === 'www-authenticate' ? rewrite(String(v)) : v;
        }
        const len = Number(ures.headers['content-length'] ?? -1);
        const fault = rule?.fault;
        if (!['stall', 'reset', 'short', 'wrong'].includes(fault) || req.method === 'HEAD' || len <= 0) {
          res.writeHead(ures.statusCode, out);
          ures.pipe(res);
          return;
        }
        // Mangled bodies: the real headers (Content-Length included), then the fault.
        res.writeHead(ures.statusCode, out);
        const cut = fault === 'short' ? Math.max(0, len - (rule.missing ?? 1)) : Math.min(rule.after ?? Math.floor(len / 2), len - 1);
        let sent = 0;
        ures.on('data', (chunk) => {
          if (fault === 'wrong') {
            res.write(Buffer.from(chunk.map((b) => b ^ 0xff)));
            return;
          }
          if (sent >= cut) return;
          const part = chunk.subarray(0, cut - sent);
          sent += part.length;
          res.write(part);
          if (sent < cut) return;
          ures.destroy();
          if (fault === 'stall') held.add(res.socket);
          else if (fault === 'reset') res.socket.resetAndDestroy();
          else res.socket.end(); // short: FIN with bytes missing
        });
        ures.on('end', () => { if (fault === 'wrong') res.end(); });
      });
      up.on('error', () => { if (!res.headersSent) { entry.status = 502; res.writeHead(502, { 'content-length': 0 }); } res.end(); });
      req.pipe(up);
    };
    server.on('connection', (s) => s.on('close', () => held.delete(s)));
    server.keepAliveTimeout = 5000;
    server.on('error', reject);
    server.listen(t.port, '127.0.0.1', () => resolve(server));
  })));

  return {
    urls,
    /** Arms a fault on listener `name` (see the top of this file). */
    arm(name, rule) {
      if (!rules[name]) throw new Error(`no listener ${name}`);
      rules[name].push({ times: 1, ...rule });
    },
    disarm() { for (const list of Object.values(rules)) list.length = 0; },
    /** How many armed faults have not fired yet. */
    pending() { return Object.values(rules).reduce((n, l) => n + l.length, 0); },
    mark: () => log.length,
    requests: (from = 0) => log.slice(from),
    async stop() {
      for (const s of held) s.destroy();
      agent.destroy();
      await Promise.all(servers.map((s) => new Promise((r) => { s.closeAllConnections?.(); s.close(() => r()); })));
    },
  };
}

/** The usual set: one listener each before the hub registry, its token server, its blob host
 *  (refusing Authorization, like S3) and the plain registry of `startUpstreams`' `up`, on
 *  `ports` {hub, token, blobs, plain}. */
export function proxyUpstreams(up, ports, logFile) {
  return startFaultProxies({
    logFile,
    targets: {
      hub: { port: ports.hub, target: up.hub },
      token: { port: ports.token, target: up.token },
      blobs: { port: ports.blobs, target: up.blobs, rejectAuthorization: true },
      plain: { port: ports.plain, target: up.plain },
    },
  });
}
