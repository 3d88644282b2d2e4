// The tests' webshop or PIM API: json-server's router (json-server 0.17.4, from
// tools/peers/node_modules) over an in-memory database, on 127.0.0.1 at a port the system
// picks, which the first line on stdout names ("listening on 127.0.0.1:PORT").
//
// POST /__peer/reset replaces the whole state: {"db": {collection: [items]}, "auth": {...},
// "rules": {collection: {field: {"pattern": regexp, "message": text, "status": code}}}}.
// auth is one of {"bearer": token}, {"user": u, "password": p} or {"header": name, "key": k},
// or empty for none; a request without it gets 401 {"message": ...}. A create or update of
// a collection whose body has a rule's field not matching its pattern gets the rule's status
// (422 by default) with {"message": message}, as a shop refusing a record would answer.
//
// "trouble": {"status": 429, "count": n, "retry_after": "1", "method": "POST", "path": "/orders"}
// answers the next n requests (of that method and path, when named; never resets) with status, its Retry-After
// and {"message": ...}, as an API that is busy or down for a moment would.
//
// The server exits when its stdin closes, so it never outlives the test process.
'use strict';

const jsonServer = require('json-server');

const app = jsonServer.create();
let state = { router: jsonServer.router({}), auth: {}, rules: {}, trouble: {}, slow: {} };

app.post('/__peer/reset', jsonServer.bodyParser, (req, res) => {
  const body = req.body || {};
  try {
    state = {
      router: jsonServer.router(body.db || {}),
      auth: body.auth || {},
      rules: body.rules || {},
      trouble: Object.assign({}, body.trouble),
      slow: body.slow || {},
    };
  } catch (err) {
    res.status(400).json({ message: String(err.message || err) });
    return;
  }
  res.json({ reset: Object.keys(body.db || {}) });
});

// "slow": {"POST /customers": 200} takes every request of that method and path up that many
// milliseconds late, as a busy API would: a record being created is not there yet for a
// lookup meanwhile.
app.use((req, res, next) => {
  const ms = state.slow[req.method + ' ' + req.path];
  if (ms > 0) {
    setTimeout(next, ms);
    return;
  }
  next();
});

app.use((req, res, next) => {
  const trouble = state.trouble;
  if (trouble.count > 0 && (!trouble.method || trouble.method === req.method) && (!trouble.path || trouble.path === req.path)) {
    trouble.count--;
    if (trouble.retry_after) {
      res.set('Retry-After', trouble.retry_after);
    }
    res.status(trouble.status).json({ message: 'trouble asked for by the test' });
    return;
  }
  next();
});

app.use((req, res, next) => {
  const auth = state.auth;
  const given = req.get('authorization') || '';
  let ok = true;
  if (auth.bearer) {
    ok = given === 'Bearer ' + auth.bearer;
  } else if (auth.user) {
    ok = given === 'Basic ' + Buffer.from(auth.user + ':' + auth.password).toString('base64');
  } else if (auth.header) {
    ok = req.get(auth.header) === auth.key;
  }
  if (!ok) {
    res.status(401).json({ message: 'missing or wrong credentials' });
    return;
  }
  next();
});

app.use(jsonServer.bodyParser, (req, res, next) => {
  if (!['POST', 'PUT', 'PATCH'].includes(req.method)) {
    next();
    return;
  }
  const collection = req.path.split('/')[1];
  const rules = state.rules[collection] || {};
  for (const [field, rule] of Object.entries(rules)) {
    if (req.body && field in req.body && !new RegExp(rule.pattern).test(String(req.body[field]))) {
      res.status(rule.status || 422).json({ message: rule.message });
      return;
    }
  }
  next();
});

app.use((req, res, next) => state.router(req, res, next));

const server = app.listen(0, '127.0.0.1', () => {
  const { address, port } = server.address();
  process.stdout.write(`listening on ${address}:${port}\n`);
});

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
