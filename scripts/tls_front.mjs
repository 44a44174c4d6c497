// A TCP front that answers a TLS ClientHello at once. skopeo, podman and docker (even for an
// insecure registry) try HTTPS first; workerd ignores the hello, so each connection stalled 10 s
// (Go's TLS handshake timeout) before they fell back to HTTP. The front closes a connection whose
// first byte is a TLS handshake record (0x16), so the client falls back immediately, and pipes
// everything else unchanged to 127.0.0.1:targetPort. Used by `npm start` and the e2e tests.
import net from 'node:net';

/** Listens on 127.0.0.1:port; `targetPort` is a number, or a function giving it when a
 *  connection arrives (so the front can take its port before the target exists).
 *  -> { url: 'http://127.0.0.1:port', host, port, stop() } */
export async function startTlsRejectingFront({ port, targetPort }) {
  const target = typeof targetPort === 'function' ? targetPort : () => targetPort;
  const conns = new Set();
  // No Nagle on either side: a relay forwards each chunk as it comes, and a small one held back
  // until the peer's delayed ACK costs a request 40 ms.
  const server = net.createServer({ noDelay: true }, (c) => {
    conns.add(c);
    c.on('close', () => conns.delete(c));
    c.on('error', () => c.destroy());
    c.once('data', (first) => {
      if (first[0] === 0x16) return c.destroy();
      const u = net.connect({ port: target(), host: '127.0.0.1', noDelay: true });
      conns.add(u);
      u.on('close', () => { conns.delete(u); c.destroy(); });
      u.on('error', () => c.destroy());
      c.on('close', () => u.destroy());
      u.write(first);
      c.pipe(u).pipe(c);
    });
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  server.unref();
  const stop = () => new Promise((resolve) => { for (const s of conns) s.destroy(); server.close(() => resolve()); });
  const actual = server.address().port;
  return { url: `http://127.0.0.1:${actual}`, host: `127.0.0.1:${actual}`, port: actual, stop };
}
