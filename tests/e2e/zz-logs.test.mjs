// Runs last: every log line the mirror printed during the end-to-end run, checked for credentials.
// The run pulled through a token-auth upstream (the mirror held real JWTs) and a user alice (USER)
// exists upstream; none of it may appear in a log.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { LOG_DIR, ROOT } from './lib/world.mjs';
import { USER, readJsonLines } from './lib/upstreams.mjs';
import { ADMIN_TOKEN, ACCESS, MIRROR_LOGIN } from './lib/secrets.mjs';

it('no credential or token in any mirror log line of the run', () => {
  const files = fs.existsSync(LOG_DIR) ? fs.readdirSync(LOG_DIR).filter((f) => f.endsWith('.log')) : [];
  assert.ok(files.length > 0, 'the run left mirror logs to check');
  const lines = files.flatMap((f) => fs.readFileSync(path.join(LOG_DIR, f), 'utf8').split('\n').filter(Boolean).map((l) => [f, l]));
  assert.ok(lines.some(([, l]) => l.includes('"msg":"request"')), 'request lines were logged');
  const forbidden = [
    [/eyJ[A-Za-z0-9_-]{10,}/, 'a JWT'],
    [/bearer\s+\S/i, 'a bearer credential'],
    [/basic\s+[A-Za-z0-9+/=]{8,}/i, 'basic credentials'],
    [new RegExp(`\\b${USER.password}\\b`), "the test user's password"],
    [/authorization/i, 'an Authorization header'],
    [new RegExp(ADMIN_TOKEN), 'the admin token'],
    [new RegExp(ACCESS.id), 'the Access client id'],
    [new RegExp(ACCESS.secret), 'the Access client secret'],
    [new RegExp(MIRROR_LOGIN.password), 'the mirror login password'],
    [/em1\.[^"\s]*\.[0-9a-f]{64}/, 'a mirror token'],
    [/-----BEGIN [A-Z ]*KEY-----/, 'a PEM key (signature policy keys)'],
  ];
  for (const [file, line] of lines) {
    for (const [pattern, what] of forbidden) assert.doesNotMatch(line, pattern, `${what} in ${file}: ${line.slice(0, 200)}`);
  }
});

it('the blob host and every host reached by a redirect never received Authorization (whole run)', () => {
  // The blob host logs every request's Authorization scheme (null when none); the fault proxies
  // log, for every request, whether one was sent. Their files are appended to by every suite.
  const blobs = readJsonLines(path.join(ROOT, 'logs', 'blobs.log'));
  assert.ok(blobs.length > 0, 'the blob host was used');
  assert.deepEqual(blobs.filter((l) => l.authz || l.access), [], 'blob host requests with credentials');
  const proxied = ['faultproxy.log', 'hostile-proxy.log'].flatMap((f) => readJsonLines(path.join(ROOT, 'logs', f)));
  assert.ok(proxied.some((l) => l.proxy === 'blobs'), 'the fault proxy in front of the blob host was used');
  assert.deepEqual(proxied.filter((l) => l.proxy === 'blobs' && l.authz), [], 'redirect targets that got Authorization');
});
