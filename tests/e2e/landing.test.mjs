// The landing page in a real browser (Debian's Chromium, driven by playwright-core): loaded from the
// running worker under two host names, its snippets carry the host it was served on, it loads
// nothing from elsewhere, and a screenshot is saved in test-output/.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { mirrorWith, outputFile } from './lib/world.mjs';

const PORT = 18796;
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('landing page in headless Chromium', { timeout: 120_000 }, () => {
  let mirror, browser;
  before(async () => {
    mirror = await mirrorWith({
      port: PORT,
      vars: { UPSTREAMS: {
        'docker.io': { registry: 'http://127.0.0.1:9', prefixes: ['docker.io'], ns: ['docker.io'], library: true },
        'ghcr.io': { registry: 'http://127.0.0.1:9', hosts: ['ghcr.localhost'], prefixes: ['ghcr.io', 'ghcr'], ns: ['ghcr.io'] },
        quay: { registry: 'http://127.0.0.1:9', prefixes: ['quay.io'] },
      } },
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  }, { timeout: 60_000 });
  after(async () => { await browser?.close(); await mirror?.stop(); }, { timeout: 30_000 });

  for (const host of [`127.0.0.1:${PORT}`, `localhost:${PORT}`]) {
    it(`shows configuration for ${host}`, async () => {
      const page = await browser.newPage();
      const requests = [];
      page.on('request', (r) => requests.push(r.url()));
      const resp = await page.goto(`http://${host}/`);
      assert.equal(resp.status(), 200);
      assert.match(resp.headers()['content-type'], /^text\/html/);
      const text = async (id) => (await page.textContent(`#${id}`)) ?? '';
      assert.equal(await text('mirror-host'), host);
      assert.match(await text('daemon-json'), new RegExp(`"registry-mirrors": \\["http://${host}"\\]`));
      const hosts = await text('hosts-toml');
      assert.ok(hosts.includes(`# /etc/containerd/certs.d/docker.io/hosts.toml`), hosts);
      assert.ok(hosts.includes(`[host."http://${host}"]`), hosts);
      assert.ok(hosts.includes(`[host."http://${host}/v2/quay.io"]`) && hosts.includes('override_path = true'), hosts);
      assert.ok((await text('k8s')).includes('config_path = "/etc/containerd/certs.d"'));
      const podman = await text('registries-conf');
      assert.ok(podman.includes(`location = "${host}"`) && podman.includes(`location = "${host}/ghcr.io"`), podman);
      assert.ok((await text('direct')).includes(`docker pull ${host}/ghcr.io/OWNER/IMAGE:TAG`));
      const rows = await page.$$eval('#upstreams tr', (trs) => trs.map((tr) => tr.textContent));
      assert.equal(rows.length, 4, 'a header and three upstreams');
      assert.ok(rows.some((r) => r.includes('ghcr.localhost')));
      const foreign = requests.filter((u) => !u.startsWith(`http://${host}/`));
      assert.deepEqual(foreign, [], 'nothing loaded from elsewhere');
      const shot = outputFile(`landing-${host.replace(/[:.]/g, '_')}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      await page.close();
    });
  }
});
