// Control: the smallest JS worker, answering every request itself with one log line: the runtime's
// own cost of a request (beside edgemirror's `GET /v2/`, which it also answers without a store or
// the upstream) and its cold start.
export default {
  fetch(req) {
    console.log(JSON.stringify({ method: req.method, path: new URL(req.url).pathname, status: 200 }));
    return new Response('{}', { headers: { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' } });
  },
};
