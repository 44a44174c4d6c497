// The end-to-end tests' upstreams (tests/e2e/lib/upstreams.mjs) and TLS-rejecting front, moved out
// of a test run's way.
//
// The upstreams must not collide with a test run (15000-15400): the harness moves them by this offset.
// Set before the harness is imported (it reads the variable once, at import): hence the dynamic
// imports, and every bench module takes the harness from here, never from tests/e2e/lib directly.
process.env.EDGEMIRROR_PORT_OFFSET = '1000';
export const U = await import('../../tests/e2e/lib/upstreams.mjs');
export const { startTlsRejectingFront } = await import('../../tests/e2e/lib/clients.mjs');
