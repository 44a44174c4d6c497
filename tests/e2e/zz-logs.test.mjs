// Runs last: every log line the mirror printed during the end-to-end run, checked for credentials.
// The run pulled through a token-auth upstream (the mirror held real JWTs) and a user alice:secret
// exists upstream; none of it may appear in a log.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { LOG_DIR } from './lib/world.mjs';
import { USER } from './lib/upstreams.mjs';
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
  ];
  for (const [file, line] of lines) {
    for (const [pattern, what] of forbidden) assert.doesNotMatch(line, pattern, `${what} in ${file}: ${line.slice(0, 200)}`);
  }
});
