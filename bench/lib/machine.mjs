// The machine and tool versions the run measured on, for the JSON.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from '../../tests/e2e/lib/proc.mjs';
import { REPO } from './config.mjs';

export async function machine() {
  const first = async (cmd, args) => { try { const r = await run(cmd, args, { timeout: 10_000 }); return (r.stdout + r.stderr).trim().split('\n')[0]; } catch { return null; } };
  const pkg = (p) => { try { return JSON.parse(fs.readFileSync(path.join(REPO, 'node_modules', p, 'package.json'), 'utf8')).version; } catch { return null; } };
  const git = async (args) => { try { return (await run('git', ['-C', REPO, ...args], { timeout: 10_000 })).stdout.trim(); } catch { return null; } };
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu: os.cpus()[0]?.model ?? null,
    memoryBytes: os.totalmem(),
    memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    loadAvgAtStart: os.loadavg().map((x) => +x.toFixed(2)),
    node: process.version,
    date: new Date().toISOString(),
    tools: {
      distribution: await first('docker-registry', ['--version']),
      skopeo: await first('skopeo', ['--version']),
      curl: await first('curl', ['--version']),
      wrk: await first('wrk', ['-v']),
      miniflare: pkg('miniflare'),
      workerd: pkg('workerd'),
    },
    git: { commit: await git(['rev-parse', 'HEAD']), dirty: !!(await git(['status', '--porcelain', '--untracked-files=no'])) },
  };
}
