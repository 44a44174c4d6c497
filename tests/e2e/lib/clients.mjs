// Real registry clients for the e2e tests, run by hand under a private ROOT (no system services):
// containerd 1.6 + ctr, dockerd 20.10 + docker CLI (registry-mirrors), skopeo. Every daemon is
// killed by stop() and when this node process exits; every command has a timeout.
// dockerd and containerd silently fall back to the real upstream when a mirror fails: the fallback
// is pointed at a dead loopback port (127.0.0.1:9), and tests must still assert from the mirror's
// or the upstream's log that the mirror served the pull.
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import { daemon, run, sleep, tail } from './proc.mjs';
import { PORTS } from './upstreams.mjs';

const DEAD = 'http://127.0.0.1:9';
const UPSTREAM_REGISTRIES = [`127.0.0.1:${PORTS.plain}`, `127.0.0.1:${PORTS.hub}`];

function checkSockPath(p) { // sun_path is 108 bytes; containerd also appends ".ttrpc"
  if (Buffer.byteLength(p) > 100) throw new Error(`socket path too long for a unix socket (${p}); use a shorter root`);
}

function listening(sock) {
  return new Promise((resolve) => {
    const s = net.connect(sock);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

// Poll `probe()` (a run() result) until code 0; fail early if daemon `d` died.
async function waitReady(d, probe, timeoutMs) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (d.exited) throw new Error(`${d.name} exited (${JSON.stringify(d.exited)}); see ${d.log}:\n${tail(d.log, 25)}`);
    const r = await probe();
    if (r.code === 0) return;
    if (Date.now() > until) {
      throw new Error(`${d.name} not ready after ${timeoutMs} ms (${r.stderr.trim()}); see ${d.log}:\n${tail(d.log, 25)}`);
    }
    await sleep(200);
  }
}

/**
 * containerd 1.6 under root (config root/conf/containerd.toml, CRI disabled, log root/logs/containerd.log).
 * -> { sock, log, ctr(args, {timeout=120000, env, input, check}) -> {code, stdout, stderr, ...}, stop() }
 */
export async function startContainerd({ root }) {
  const run_ = path.join(root, 'run', 'containerd');
  const sock = path.join(run_, 'containerd.sock');
  checkSockPath(sock + '.ttrpc');
  for (const d of [run_, path.join(root, 'storage', 'containerd'), path.join(root, 'conf'), path.join(root, 'logs')]) {
    fs.mkdirSync(d, { recursive: true });
  }
  if (await listening(sock)) throw new Error(`a containerd already listens on ${sock} (leftover run?)`);
  for (const f of ['containerd.sock', 'containerd.sock.ttrpc', 'debug.sock']) fs.rmSync(path.join(run_, f), { force: true });
  const conf = path.join(root, 'conf', 'containerd.toml');
  fs.writeFileSync(conf, `# rendered by tests/e2e/lib/clients.mjs
version = 2
root = "${root}/storage/containerd"
state = "${run_}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "${sock}"
[ttrpc]
  address = "${sock}.ttrpc"
[debug]
  address = "${run_}/debug.sock"
  level = "info"
[plugins."io.containerd.snapshotter.v1.overlayfs"]
  root_path = "${root}/storage/containerd/overlay"
`);
  const log = path.join(root, 'logs', 'containerd.log');
  const d = daemon('containerd', 'containerd', ['--config', conf], { log, stopMs: 15000 });
  const ctr = (args, opts = {}) => run('ctr', ['-a', sock, ...args], { timeout: 120000, ...opts });
  try {
    await waitReady(d, () => ctr(['version'], { timeout: 5000 }), 20000);
  } catch (e) { await d.stop(); throw e; }
  return { sock, log, ctr, stop: () => d.stop() };
}

/**
 * containerd registry host config: writes dir/docker.io/hosts.toml sending docker.io pulls to
 * `mirror` (e.g. 'http://127.0.0.1:18787'), fallback = dead port. Use `ctr images pull --hosts-dir dir
 * docker.io/library/alpine:latest`. containerd adds `?ns=docker.io` to mirror requests. -> file path
 */
export function writeHostsToml({ dir, mirror }) {
  const f = path.join(dir, 'docker.io', 'hosts.toml');
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, `# rendered by tests/e2e/lib/clients.mjs; fallback server is a dead port (never the real Hub)
server = "${DEAD}"
[host."${mirror}"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
`);
  return f;
}

/**
 * dockerd under root with registry-mirrors: [mirror] (and mirror + upstreams as insecure registries),
 * no iptables/bridge, overlay2 (vfs if overlay2 fails), proxies pointed at a dead port so a fallback
 * to the real Docker Hub fails at once. Uses `containerd` (a startContainerd() result) or starts one.
 * -> { sock, log, storageDriver, docker(args, {timeout=180000, ...}) -> {code, stdout, stderr, ...}, stop() }
 */
export async function startDockerd({ root, mirror, containerd } = {}) {
  const ownContainerd = !containerd;
  if (ownContainerd) containerd = await startContainerd({ root });
  const runDir = path.join(root, 'run', 'docker');
  const sock = path.join(runDir, 'docker.sock');
  checkSockPath(sock);
  for (const d of [path.join(runDir, 'exec'), path.join(root, 'storage', 'docker'), path.join(root, 'docker-cli')]) {
    fs.mkdirSync(d, { recursive: true });
  }
  const mirrorHost = mirror ? new URL(mirror).host : null;
  const proxyEnv = { HTTPS_PROXY: DEAD, HTTP_PROXY: DEAD, NO_PROXY: '127.0.0.1,localhost',
    https_proxy: DEAD, http_proxy: DEAD, no_proxy: '127.0.0.1,localhost' };
  const cliEnv = { ...process.env, DOCKER_CONFIG: path.join(root, 'docker-cli') }; // no user creds/contexts
  delete cliEnv.DOCKER_HOST; delete cliEnv.DOCKER_CONTEXT;
  const docker = (args, opts = {}) => run('docker', ['-H', `unix://${sock}`, ...args], { timeout: 180000, env: cliEnv, ...opts });
  const log = path.join(root, 'logs', 'dockerd.log');

  const tryStart = async (driver) => {
    const conf = path.join(root, 'conf', 'daemon.json');
    fs.writeFileSync(conf, JSON.stringify({
      'registry-mirrors': mirror ? [mirror] : [],
      'insecure-registries': [...new Set([...(mirrorHost ? [mirrorHost] : []), ...UPSTREAM_REGISTRIES])],
      'data-root': path.join(root, 'storage', 'docker'),
      'exec-root': path.join(runDir, 'exec'),
      pidfile: path.join(runDir, 'dockerd.pid'),
      hosts: [`unix://${sock}`],
      containerd: containerd.sock,
      iptables: false, ip6tables: false, 'ip-forward': false, 'ip-masq': false,
      bridge: 'none',
      'storage-driver': driver,
      'shutdown-timeout': 2, // seconds dockerd waits for containers on SIGTERM (default 15)
      debug: true, // logs each registry request/fallback ("Trying to pull ... from ...")
    }, null, 2));
    fs.rmSync(sock, { force: true });
    const from = fs.existsSync(log) ? fs.statSync(log).size : 0;
    const d = daemon('dockerd', 'dockerd', ['--config-file', conf], { log, env: { ...process.env, ...proxyEnv }, stopMs: 20000 });
    try {
      await waitReady(d, () => docker(['version'], { timeout: 5000 }), 40000);
      return d;
    } catch (e) {
      await d.stop();
      e.logFrom = from;
      throw e;
    }
  };

  let d, storageDriver = 'overlay2';
  try {
    try {
      d = await tryStart('overlay2');
    } catch (e) {
      const text = fs.readFileSync(log).subarray(e.logFrom ?? 0).toString();
      if (!/overlay/i.test(text)) throw e;
      storageDriver = 'vfs';
      d = await tryStart('vfs');
    }
  } catch (e) {
    if (ownContainerd) await containerd.stop();
    throw e;
  }
  const stop = async () => {
    await d.stop();
    if (ownContainerd) await containerd.stop();
  };
  return { sock, log, storageDriver, containerd, docker, stop };
}

/** skopeo with a timeout (default 120 s). -> {code, stdout, stderr, timedOut, ms} */
export function skopeo(args, opts = {}) {
  return run('skopeo', args, { timeout: 120000, ...opts });
}

// skopeo (even with --tls-verify=false) first tries HTTPS: the front that answers its TLS hello
// at once lives with `npm start`, which uses it too.
export { startTlsRejectingFront } from '../../../scripts/tls_front.mjs';
