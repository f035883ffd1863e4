// app.mjs — a relying-party application for jit's end-to-end tests, built on
// `openid-client`. It signs users in at jit (jit is the OpenID provider here)
// with the authorization code flow + PKCE, validates the ID token and shows
// what it received.
//
// Environment:
//   APP_PORT           port to listen on (127.0.0.1 only). Required.
//   APP_ISSUER         jit's issuer URL; metadata from
//                      APP_ISSUER/.well-known/openid-configuration. Required.
//   APP_CLIENT_ID      client id registered at jit. Required.
//   APP_CLIENT_SECRET  client secret; absent or empty = public client (auth "none").
//   APP_TOKEN_AUTH_METHOD  client_secret_basic (default with a secret),
//                      client_secret_post, or none (default without a secret).
//   APP_REDIRECT_URI   default http://127.0.0.1:APP_PORT/callback
//   APP_ID_TOKEN_ALG   optional: the only accepted ID token "alg" (e.g. RS256,
//                      ES256). Default: any of the OP's
//                      id_token_signing_alg_values_supported.
//
// Routes:
//   GET /login[?fidp=NAME&...]
//       302 to jit's authorization endpoint: response_type=code, PKCE S256,
//       state, nonce, scope "openid profile email". Every query parameter of
//       /login is passed through to the authorization request (fidp, prompt,
//       login_hint, max_age, acr_values, ...; `scope` replaces the default),
//       except the ones the app owns (client_id, redirect_uri, response_type,
//       state, nonce, code_challenge, code_challenge_method).
//       500 {"error": "..."} if jit cannot be reached / discovered.
//   GET /callback?code=..&state=..
//       Exchanges the code (PKCE verifier), validates the ID token (signature
//       via jit's JWKS — always, see enableNonRepudiationChecks — alg, iss,
//       aud, exp, iat, nonce), checks `iss` in the redirect if the OP
//       advertises it (RFC 9207), calls userinfo (its sub must be
//       the ID token's sub), then
//       200 {"id_token_claims": {...}, "userinfo": {...}}
//       400 {"error": "..."} on any failure, including ?error=... from jit.
//
// Discovery runs on the first /login or /callback (and is retried until it
// succeeds), so the app can start before jit. Plain http issuers are allowed
// (allowInsecureRequests) — this is a test harness on loopback.
//
// Logs go to stderr; stdout carries only `READY http://127.0.0.1:PORT`.
// SIGTERM/SIGINT exit 0.

import * as http from 'node:http';

import * as client from 'openid-client';

// ---------------------------------------------------------------- config ---

function fail(message) {
  console.error(`app.mjs: ${message}`);
  process.exit(2);
}

const port = Number(process.env.APP_PORT);
if (!Number.isInteger(port) || port <= 0 || port > 65535) fail('APP_PORT must be a port number');
const issuer = process.env.APP_ISSUER || fail('APP_ISSUER is required');
const clientId = process.env.APP_CLIENT_ID || fail('APP_CLIENT_ID is required');
const clientSecret = process.env.APP_CLIENT_SECRET || undefined;
const redirectUri = process.env.APP_REDIRECT_URI || `http://127.0.0.1:${port}/callback`;
const authMethod = process.env.APP_TOKEN_AUTH_METHOD
  || (clientSecret ? 'client_secret_basic' : 'none');
const idTokenAlg = process.env.APP_ID_TOKEN_ALG || undefined;
const baseUrl = `http://127.0.0.1:${port}`;

let issuerUrl;
try {
  issuerUrl = new URL(issuer);
} catch {
  fail(`APP_ISSUER is not a URL: ${issuer}`);
}

function clientAuth() {
  switch (authMethod) {
    case 'client_secret_basic': return client.ClientSecretBasic(clientSecret);
    case 'client_secret_post': return client.ClientSecretPost(clientSecret);
    case 'none': return client.None();
    default: return fail(`unsupported APP_TOKEN_AUTH_METHOD: ${authMethod}`);
  }
}
const auth = clientAuth();
if (authMethod !== 'none' && !clientSecret) fail(`${authMethod} needs APP_CLIENT_SECRET`);

const DEFAULT_SCOPE = 'openid profile email';
const APP_OWNED_PARAMS = new Set([
  'client_id', 'redirect_uri', 'response_type', 'state', 'nonce',
  'code_challenge', 'code_challenge_method',
]);

// ------------------------------------------------------------- discovery ---

let configPromise;
function getConfig() {
  const metadata = {
    ...(clientSecret ? { client_secret: clientSecret } : {}),
    ...(idTokenAlg ? { id_token_signed_response_alg: idTokenAlg } : {}),
  };
  configPromise ??= client.discovery(issuerUrl, clientId, metadata, auth, {
    // http issuer on loopback; and always verify the ID token signature with
    // the OP's JWKS (openid-client skips it by default for ID tokens that come
    // straight from the token endpoint over TLS).
    execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
  }).catch((err) => {
    configPromise = undefined; // retry on the next request
    throw new Error(`discovery of ${issuer} failed: ${describe(err)}`);
  });
  return configPromise;
}

// ----------------------------------------------------------------- state ---

// Pending logins by `state`: PKCE verifier and nonce. Entries are single-use
// and expire after 10 minutes.
const pending = new Map();
const PENDING_TTL_MS = 10 * 60 * 1000;

function rememberLogin(state, entry) {
  const now = Date.now();
  for (const [key, value] of pending) {
    if (now - value.createdAt > PENDING_TTL_MS) pending.delete(key);
  }
  pending.set(state, { ...entry, createdAt: now });
}

// --------------------------------------------------------------- helpers ---

// One readable line from an openid-client / oauth4webapi / fetch error,
// including the OAuth `error` / `error_description` and the cause chain.
function describe(err) {
  const parts = [];
  // Follow `cause` through Errors only (oauth4webapi puts response bodies there too).
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth += 1) {
    let text = e.message || e.name;
    if (e.error) text += ` (${e.error}${e.error_description ? `: ${e.error_description}` : ''})`;
    if (e.code && !text.includes(e.code)) text += ` [${e.code}]`;
    if (!parts.includes(text)) parts.push(text);
  }
  if (parts.length === 0) parts.push(String(err));
  return parts.join(': ');
}

function sendJson(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(`${JSON.stringify(body)}\n`);
}

// ---------------------------------------------------------------- routes ---

async function login(req, res, url) {
  let config;
  try {
    config = await getConfig();
  } catch (err) {
    console.error(`app.mjs: /login: ${err.message}`);
    sendJson(res, 500, { error: err.message });
    return;
  }

  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const params = { scope: DEFAULT_SCOPE };
  for (const [key, value] of url.searchParams) {
    if (!APP_OWNED_PARAMS.has(key)) params[key] = value; // fidp, prompt, login_hint, scope, ...
  }
  Object.assign(params, {
    redirect_uri: redirectUri,
    response_type: 'code',
    state,
    nonce,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
  });
  rememberLogin(state, { codeVerifier, nonce });

  const location = client.buildAuthorizationUrl(config, params);
  res.writeHead(302, { location: location.href, 'cache-control': 'no-store' });
  res.end();
}

async function callback(req, res, url) {
  try {
    const config = await getConfig();
    const state = url.searchParams.get('state');
    const entry = state === null ? undefined : pending.get(state);
    if (!entry) {
      // Still surface an error response from jit (e.g. ?error=access_denied) if there is one.
      const error = url.searchParams.get('error');
      if (error) {
        const description = url.searchParams.get('error_description');
        throw new Error(`authorization failed (${error}${description ? `: ${description}` : ''}) and state is unknown`);
      }
      throw new Error(state === null ? 'callback without state' : `unknown or already used state: ${state}`);
    }
    pending.delete(state);

    // The URL the authorization server redirected to: registered redirect_uri + this query.
    const currentUrl = new URL(redirectUri);
    currentUrl.search = url.search;

    const tokens = await client.authorizationCodeGrant(config, currentUrl, {
      pkceCodeVerifier: entry.codeVerifier,
      expectedState: state,
      expectedNonce: entry.nonce,
      idTokenExpected: true,
    });
    const idTokenClaims = tokens.claims();
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, idTokenClaims.sub);
    sendJson(res, 200, { id_token_claims: idTokenClaims, userinfo });
  } catch (err) {
    const message = describe(err);
    console.error(`app.mjs: /callback: ${message}`);
    sendJson(res, 400, { error: message });
  }
}

// ---------------------------------------------------------------- server ---

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, baseUrl);
  try {
    if (req.method === 'GET' && url.pathname === '/login') {
      await login(req, res, url);
    } else if (req.method === 'GET' && url.pathname === '/callback') {
      await callback(req, res, url);
    } else {
      sendJson(res, 404, { error: `no route for ${req.method} ${url.pathname}` });
    }
  } catch (err) {
    console.error(`app.mjs: ${req.method} ${url.pathname}: ${describe(err)}`);
    if (!res.headersSent) sendJson(res, 500, { error: describe(err) });
    else res.end();
  }
});

function shutdown(signal) {
  console.error(`app.mjs: ${signal}, shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`READY ${baseUrl}\n`);
});
