// `npm run dev`: wrangler dev on 127.0.0.1:8787 unless told otherwise. Arguments after `--` go to
// wrangler as they are (`npm run dev -- --port 23002 --var UPSTREAMS:'{…}' --test-scheduled`);
// wrangler reads secrets from .dev.vars itself.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** wrangler dev's arguments: ours, then the user's; --ip/--port only when the user gave none. */
export function devArgs(user, env = process.env) {
  const has = (flag) => user.some((a) => a === flag || a.startsWith(`${flag}=`));
  return [
    'dev',
    ...(has('--ip') ? [] : ['--ip', '127.0.0.1']),
    ...(has('--port') ? [] : ['--port', String(env.PORT ?? 8787)]),
    '--show-interactive-dev-session=false',
    ...user,
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const env = { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_HIDE_BANNER: 'true' };
  const child = spawn(path.join(ROOT, 'node_modules/.bin/wrangler'), devArgs(process.argv.slice(2)), { stdio: 'inherit', env, cwd: ROOT });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
