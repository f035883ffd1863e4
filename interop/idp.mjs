// idp.mjs — a real external OpenID Connect identity provider for jit's
// end-to-end tests, built on `oidc-provider` 8.x (the last major line that
// supports Node.js 20; 9.x wants Node.js 22).
//
// jit brokers sign-in to this IdP (it is one of jit's "connections"). Tests
// spawn it as a child process, wait for the `READY <issuer>` line on stdout,
// and drive a scripted browser through its login form.
//
// Environment:
//   IDP_PORT            port to listen on (127.0.0.1 only). Required.
//   IDP_ISSUER          issuer URL, default http://127.0.0.1:IDP_PORT
//   IDP_CLIENTS         JSON array of clients:
//                         [{"client_id": "jit", "client_secret": "s3cret",
//                           "redirect_uris": ["http://127.0.0.1:8080/federation/corp/callback"],
//                           "token_endpoint_auth_method": "client_secret_basic"}]
//                       token_endpoint_auth_method: client_secret_basic (default)
//                       or client_secret_post ("none" also works, for public
//                       clients). Any other oidc-provider client metadata
//                       (e.g. id_token_signed_response_alg: "ES256") is passed through.
//   IDP_USERS           JSON object: login name -> claims, e.g.
//                         {"alice": {"sub": "alice-sub", "email": "Alice@Example.com",
//                                    "email_verified": true, "given_name": "Alice",
//                                    "preferred_username": "alice"}}
//                       `sub` defaults to the login name.
//   IDP_TEST_CONTROL    "1" enables the test-only control endpoints below.
//   IDP_ID_TOKEN_CLAIMS "0" keeps profile/email claims out of the ID token
//                       (userinfo only — the spec's default behaviour). Default "1":
//                       the claims are in the ID token and at userinfo.
//   IDP_REUSE_SESSION   "1" lets a browser that already signed in here skip the
//                       login form on its next authorization request (normal SSO;
//                       signing in as another user from that browser then shows
//                       an auto-submitting logout form first). Default: the IdP
//                       ignores its session cookie on authorization requests, so
//                       every one shows the login form and a scripted browser
//                       always does exactly the same steps.
//
// Protocol: authorization code flow only, PKCE required (S256 is the only
// method), `nonce` echoed in the ID token, scopes openid profile email
// (+ phone, address). Consent is granted automatically; there is no consent page.
//
// ---------------------------------------------------------------------------
// HOW A SCRIPTED BROWSER SIGNS IN (keep cookies per host and path!)
//
//   1. GET <issuer>/auth?response_type=code&client_id=..&redirect_uri=..
//          &scope=openid+profile+email&state=..&nonce=..
//          &code_challenge=..&code_challenge_method=S256
//      -> 303, Location: /interaction/<uid>       (sets _interaction cookies)
//   2. GET <issuer>/interaction/<uid>
//      -> 200 HTML with one login form:
//           <form method="post" action="/interaction/<uid>/login">
//             <input name="login"> <input name="password" type="password">
//      (and a second form, action "/interaction/<uid>/abort", to cancel)
//   3. POST <issuer>/interaction/<uid>/login
//          Content-Type: application/x-www-form-urlencoded
//          body: login=alice&password=anything      (the password is ignored)
//      -> 303, Location: <issuer>/auth/<uid>      (unknown login: 401 + the form again)
//   4. GET <issuer>/auth/<uid>
//      -> 303, Location: <redirect_uri>?code=..&state=..&iss=..
//   POST <issuer>/interaction/<uid>/abort instead of step 3 ends the flow with
//   <redirect_uri>?error=access_denied&state=.. (the user cancelled).
// ---------------------------------------------------------------------------
//
// Test-only control endpoints (only when IDP_TEST_CONTROL=1):
//   POST /_test/users   JSON body replaces IDP_USERS; takes effect at the next
//                       token/userinfo request (claims are read when tokens are issued).
//   GET  /_test/users   the current users.
//
// Other endpoints are oidc-provider's: /.well-known/openid-configuration,
// /jwks, /token, /me (userinfo), /session/end, ...
//
// Logs go to stderr; stdout carries only the READY line. SIGTERM/SIGINT exit 0.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

// oidc-provider prints development notices with console.info (stdout); keep
// stdout for the READY line only.
console.info = console.error;
console.log = console.error;

// ---------------------------------------------------------------- config ---

function fail(message) {
  console.error(`idp.mjs: ${message}`);
  process.exit(2);
}

function parseJsonEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  try {
    return JSON.parse(raw);
  } catch (err) {
    return fail(`${name} is not valid JSON: ${err.message}`);
  }
}

function checkUsers(users, where) {
  if (users === null || typeof users !== 'object' || Array.isArray(users)) {
    throw new Error(`${where} must be a JSON object mapping login name to claims`);
  }
  for (const [login, claims] of Object.entries(users)) {
    if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) {
      throw new Error(`${where}: claims of "${login}" must be a JSON object`);
    }
  }
  return users;
}

const port = Number(process.env.IDP_PORT);
if (!Number.isInteger(port) || port <= 0 || port > 65535) fail('IDP_PORT must be a port number');
const issuer = process.env.IDP_ISSUER || `http://127.0.0.1:${port}`;
const testControl = process.env.IDP_TEST_CONTROL === '1';
const idTokenClaims = process.env.IDP_ID_TOKEN_CLAIMS !== '0';
const reuseSession = process.env.IDP_REUSE_SESSION === '1';

const clients = parseJsonEnv('IDP_CLIENTS', []);
if (!Array.isArray(clients)) fail('IDP_CLIENTS must be a JSON array');

let users;
try {
  users = checkUsers(parseJsonEnv('IDP_USERS', {}), 'IDP_USERS');
} catch (err) {
  fail(err.message);
}

// Claims released per scope. Claim names found in the initial IDP_USERS that are
// not standard are released with the `openid` scope, so tests can send custom
// attributes (e.g. "department"). A claim name must appear in IDP_USERS at
// start-up to be released; /_test/users can change values, not add new names.
const scopeClaims = {
  openid: ['sub'],
  profile: [
    'name', 'family_name', 'given_name', 'middle_name', 'nickname',
    'preferred_username', 'profile', 'picture', 'website', 'gender',
    'birthdate', 'zoneinfo', 'locale', 'updated_at',
  ],
  email: ['email', 'email_verified'],
  phone: ['phone_number', 'phone_number_verified'],
  address: ['address'],
};
const standardClaims = new Set(Object.values(scopeClaims).flat());
for (const claims of Object.values(users)) {
  for (const name of Object.keys(claims)) {
    if (!standardClaims.has(name)) {
      standardClaims.add(name);
      scopeClaims.openid.push(name);
    }
  }
}

// Fresh signing keys for every run: RS256 (default) and ES256.
function signingKey(type, options, alg) {
  const { privateKey } = crypto.generateKeyPairSync(type, options);
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `${alg.toLowerCase()}-${crypto.randomUUID()}`, alg, use: 'sig' };
}
const jwks = {
  keys: [
    signingKey('rsa', { modulusLength: 2048 }, 'RS256'),
    signingKey('ec', { namedCurve: 'P-256' }, 'ES256'),
  ],
};

// --------------------------------------------------------------- provider ---

const provider = new Provider(issuer, {
  clients: clients.map((c) => ({
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    ...c,
  })),
  jwks,
  claims: scopeClaims,
  scopes: ['openid', 'profile', 'email', 'phone', 'address'],
  // Profile/email claims go into the ID token, not only userinfo.
  conformIdTokenClaims: !idTokenClaims,
  // PKCE for every client, S256 only.
  pkce: { methods: ['S256'], required: () => true },
  // Signed cookies that work over plain HTTP: no `secure` flag unless the
  // request is HTTPS, and SameSite=Lax (v8's default SameSite=None would need
  // `Secure`, which cookie jars and browsers refuse over http).
  cookies: {
    keys: [crypto.randomBytes(32).toString('base64url')],
    long: { httpOnly: true, sameSite: 'lax' },
    short: { httpOnly: true, sameSite: 'lax' },
  },
  // Fixed lifetimes in seconds (also keeps oidc-provider's "you SHOULD change
  // the default ttl" notices out of the log).
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    Grant: 3600,
    Interaction: 3600,
    Session: 3600,
  },
  features: {
    devInteractions: { enabled: false }, // our own login form below
    userinfo: { enabled: true },
  },
  interactions: {
    url: (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  // Auto-consent: grant whatever scopes/claims the request asks for, so no
  // consent prompt is ever shown.
  async loadExistingGrant(ctx) {
    const { Grant } = ctx.oidc.provider;
    const grant = new Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' '));
    if (ctx.oidc.requestParamClaims.size) {
      grant.addOIDCClaims([...ctx.oidc.requestParamClaims]);
    }
    await grant.save();
    return grant;
  },
  // accountId is the login name; claims are read from `users` every time, so a
  // change via /_test/users shows up in the next tokens.
  async findAccount(ctx, accountId) {
    if (!Object.hasOwn(users, accountId)) return undefined;
    return {
      accountId,
      async claims() {
        const current = users[accountId] ?? {};
        return { ...current, sub: current.sub ?? accountId };
      },
    };
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1>IdP error</h1><pre id="error">${escapeHtml(JSON.stringify(out, null, 2))}</pre>`);
  },
});

for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error', 'introspection.error']) {
  provider.on(event, (ctx, err) => {
    console.error(`idp.mjs: ${event}: ${err?.message}${err?.error_description ? ` (${err.error_description})` : ''}`);
  });
}

// ------------------------------------------------------ interaction pages ---

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body>
${body}
</body></html>
`;
}

function loginPage(uid, clientId, error, loginHint) {
  return page('Sign in — test IdP', `<h1>Test IdP sign-in</h1>
<p>Client: <code>${escapeHtml(clientId)}</code></p>
${error ? `<p id="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form id="login" method="post" action="/interaction/${escapeHtml(uid)}/login">
  <label>Login <input type="text" name="login" value="${escapeHtml(loginHint ?? '')}" required autofocus></label>
  <label>Password <input type="password" name="password"></label>
  <button type="submit">Sign in</button>
</form>
<form id="abort" method="post" action="/interaction/${escapeHtml(uid)}/abort">
  <button type="submit">Cancel</button>
</form>`);
}

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
  res.end(body);
}

async function readBody(req, limit = 1024 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

// GET /interaction/:uid — show the login form (or finish an unexpected consent prompt).
async function showInteraction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'consent') {
    // Not expected (loadExistingGrant grants everything), but never show a consent page.
    const grant = new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    if (details.prompt.details.missingOIDCScope) grant.addOIDCScope(details.prompt.details.missingOIDCScope.join(' '));
    if (details.prompt.details.missingOIDCClaims) grant.addOIDCClaims(details.prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  send(res, 200, 'text/html; charset=utf-8',
    loginPage(details.uid, details.params.client_id, undefined, details.params.login_hint));
}

// POST /interaction/:uid/login — form fields `login` (must be a key of the
// users) and `password` (ignored).
async function submitLogin(req, res) {
  const details = await provider.interactionDetails(req, res);
  const form = new URLSearchParams(await readBody(req));
  const login = form.get('login') ?? '';
  if (!Object.hasOwn(users, login)) {
    send(res, 401, 'text/html; charset=utf-8',
      loginPage(details.uid, details.params.client_id, `Unknown user "${login}"`, login));
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
}

// POST /interaction/:uid/abort — the user cancels: error=access_denied to the client.
async function abortLogin(req, res) {
  await provider.interactionFinished(req, res, {
    error: 'access_denied',
    error_description: 'End-User aborted interaction',
  }, { mergeWithLastSubmission: false });
}

async function testUsers(req, res) {
  if (req.method === 'GET') {
    send(res, 200, 'application/json', JSON.stringify(users));
    return;
  }
  if (req.method !== 'POST') {
    send(res, 405, 'application/json', JSON.stringify({ error: 'method not allowed' }), { allow: 'GET, POST' });
    return;
  }
  try {
    users = checkUsers(JSON.parse(await readBody(req)), 'body');
  } catch (err) {
    send(res, 400, 'application/json', JSON.stringify({ error: err.message }));
    return;
  }
  console.error(`idp.mjs: users replaced: ${Object.keys(users).join(', ')}`);
  send(res, 200, 'application/json', JSON.stringify({ ok: true, users: Object.keys(users) }));
}

// ------------------------------------------------------------------ server ---

const providerCallback = provider.callback();

// Unless IDP_REUSE_SESSION=1, the authorization endpoint (/auth and its resume
// step /auth/<uid>) never sees the browser's IdP session cookie: every
// authorization request starts a new session, so the login form is always shown
// and a different user can sign in from the same browser (with the cookie,
// oidc-provider would first show an auto-submitting "log out the previous
// user" form).
const SESSION_COOKIE = /^_session(?:\.legacy)?(?:\.sig)?$/;
function forgetSessionCookie(req) {
  if (!req.headers.cookie) return;
  const kept = req.headers.cookie.split(';')
    .filter((pair) => !SESSION_COOKIE.test(pair.split('=')[0].trim()));
  req.headers.cookie = kept.join(';');
}

const server = http.createServer(async (req, res) => {
  const { pathname } = new URL(req.url, issuer);
  let m;
  try {
    if (testControl && pathname === '/_test/users') {
      await testUsers(req, res);
    } else if (req.method === 'GET' && (m = pathname.match(/^\/interaction\/([^/]+)$/))) {
      await showInteraction(req, res);
    } else if (req.method === 'POST' && (m = pathname.match(/^\/interaction\/([^/]+)\/login$/))) {
      await submitLogin(req, res);
    } else if (req.method === 'POST' && (m = pathname.match(/^\/interaction\/([^/]+)\/abort$/))) {
      await abortLogin(req, res);
    } else {
      if (!reuseSession && (pathname === '/auth' || pathname.startsWith('/auth/'))) forgetSessionCookie(req);
      providerCallback(req, res);
    }
  } catch (err) {
    // e.g. SessionNotFound when the interaction cookie is missing or expired.
    console.error(`idp.mjs: ${req.method} ${pathname}: ${err.name}: ${err.message}`);
    if (!res.headersSent) {
      const status = err.statusCode || err.status || 500;
      send(res, status, 'text/html; charset=utf-8',
        page('Error', `<h1>IdP error</h1><p id="error">${escapeHtml(`${err.name}: ${err.message}`)}</p>`));
    } else {
      res.end();
    }
  }
});

function shutdown(signal) {
  console.error(`idp.mjs: ${signal}, shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

// Static clients are validated lazily by oidc-provider; fail at start-up instead.
for (const c of clients) {
  try {
    if (!await provider.Client.find(String(c.client_id))) throw new Error('not found');
  } catch (err) {
    fail(`IDP_CLIENTS: client ${JSON.stringify(c.client_id)} is invalid: ${err.error_description || err.message}`);
  }
}

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`READY ${issuer}\n`);
});
