// check/smoke.mjs — smoke test of idp.mjs and app.mjs without jit.
//
//   cd interop && npm ci && node check/smoke.mjs      (or: npm run check)
//
// 1. Starts idp.mjs and walks a full authorization code + PKCE login with a
//    tiny scripted browser (fetch + cookie jar): GET /auth -> login form ->
//    POST login -> redirect with code -> token exchange (client_secret_basic and
//    client_secret_post) -> ID token claims and nonce -> userinfo.
//    Also: PKCE is required, wrong verifier is rejected, unknown login is
//    refused, cancel yields access_denied, /_test/users changes the claims of
//    the next login, IDP_ID_TOKEN_CLAIMS=0 keeps claims out of the ID token.
// 2. Starts app.mjs against an unreachable issuer: /login answers 500 JSON.
// 3. Starts app.mjs with idp.mjs as its issuer (standing in for jit) and walks
//    /login -> IdP login form -> /callback -> 200 {id_token_claims, userinfo};
//    a replayed callback answers 400 JSON; ?error=access_denied and a bad code
//    answer 400 JSON; an ES256-signing client works with APP_ID_TOKEN_ALG=ES256
//    and is refused with APP_ID_TOKEN_ALG=RS256; an ID token whose signature
//    was tampered with by a proxy is refused (the app really checks the JWKS
//    signature).
//
// Exits 0 when every check passes. Uses fixed ports 47101..47112 on 127.0.0.1.

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import * as assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('..', import.meta.url));
const children = [];

// ------------------------------------------------------------- processes ---

function start(script, env) {
  const child = spawn(process.execPath, [script], {
    cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`${script}: no READY line\n${stderr}`)), 10000);
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = stdout.match(/^READY (\S+)$/m);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1], stderr: () => stderr });
      }
    });
    child.on('exit', (code) => reject(new Error(`${script} exited ${code}\n${stderr}`)));
  });
}

function stop({ child }) {
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    child.on('exit', (code, signal) => resolve({ code, signal }));
    child.kill('SIGTERM');
  });
}

// ------------------------------------------------------- scripted browser ---

// Minimal cookie jar: name/value per host, honouring Path (enough for oidc-provider).
class Browser {
  cookies = []; // {host, path, name, value}

  cookieHeader(url) {
    return this.cookies
      .filter((c) => c.host === url.host && url.pathname.startsWith(c.path))
      .map((c) => `${c.name}=${c.value}`).join('; ');
  }

  store(url, setCookies) {
    for (const line of setCookies) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = false;
      for (const a of attrs) {
        const [k, v] = a.split('=');
        if (k.toLowerCase() === 'path') path = v;
        if (k.toLowerCase() === 'expires' && new Date(v) < new Date()) expired = true;
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
      }
      this.cookies = this.cookies.filter((c) => !(c.host === url.host && c.path === path && c.name === name));
      if (!expired) this.cookies.push({ host: url.host, path, name, value });
    }
  }

  async request(method, href, { body, headers = {} } = {}) {
    const url = new URL(href);
    const res = await fetch(url, {
      method,
      redirect: 'manual',
      headers: { ...headers, cookie: this.cookieHeader(url) },
      body,
    });
    this.store(url, res.headers.getSetCookie());
    const location = res.headers.get('location');
    return {
      status: res.status,
      location: location ? new URL(location, url).href : undefined,
      text: await res.text(),
    };
  }

  get(href) { return this.request('GET', href); }

  postForm(href, fields) {
    return this.request('POST', href, {
      body: new URLSearchParams(fields).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
  }

  // Follow redirects (GET) until one leaves `host` or a non-redirect answers.
  async follow(href, host) {
    let res = await this.get(href);
    while (res.location && new URL(res.location).host === host) {
      res = await this.get(res.location);
    }
    return res;
  }
}

// Signs in at idp.mjs: from the authorization URL to the redirect back to the client.
async function idpLogin(browser, authorizeUrl, login, { abort = false } = {}) {
  const idpHost = new URL(authorizeUrl).host;
  const form = await browser.follow(authorizeUrl, idpHost);
  assert.equal(form.status, 200, `login page: ${form.status} ${form.text}`);
  const action = form.text.match(/<form id="login" method="post" action="([^"]+)"/)[1];
  assert.match(action, /^\/interaction\/[^/]+\/login$/);
  for (const field of ['name="login"', 'name="password"']) assert.ok(form.text.includes(field));
  const origin = new URL(authorizeUrl).origin;
  const submit = abort
    ? await browser.postForm(`${origin}${action.replace(/\/login$/, '/abort')}`, {})
    : await browser.postForm(`${origin}${action}`, { login, password: 'ignored' });
  if (submit.status !== 303) return submit; // e.g. 401 unknown user
  assert.equal(submit.status, 303, submit.text);
  // -> /auth/<uid> -> redirect_uri?code=...
  const back = await browser.follow(submit.location, idpHost);
  assert.equal(back.status, 303, `resume: ${back.status} ${back.text}`);
  return back;
}

// ------------------------------------------------------------------- util ---

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const decodeJwt = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());

function pkcePair() {
  const verifier = b64url(crypto.randomBytes(32));
  return { verifier, challenge: b64url(crypto.createHash('sha256').update(verifier).digest()) };
}

let passed = 0;
function ok(what) {
  passed += 1;
  console.log(`ok ${passed} - ${what}`);
}

// ---------------------------------------------------------------- the IdP ---

const IDP_PORT = 47101;
const REDIRECT = 'http://127.0.0.1:47199/federation/corp/callback';
const USERS = {
  alice: {
    sub: 'alice-sub', email: 'Alice@Example.com', email_verified: true,
    given_name: 'Alice', family_name: 'Liddell', preferred_username: 'alice', department: 'eng',
  },
  bob: { sub: 'bob-sub', email: 'bob@example.com', email_verified: false },
};
const CLIENTS = [
  { client_id: 'jit-basic', client_secret: 'basic-secret', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'client_secret_basic' },
  { client_id: 'jit-post', client_secret: 'post-secret', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'client_secret_post' },
];

async function authorizeUrl(issuer, clientId, { pkce = pkcePair(), nonce = b64url(crypto.randomBytes(12)), state = b64url(crypto.randomBytes(12)), withPkce = true } = {}) {
  const u = new URL(`${issuer}/auth`);
  u.search = new URLSearchParams({
    response_type: 'code', client_id: clientId, redirect_uri: REDIRECT,
    scope: 'openid profile email', state, nonce,
    ...(withPkce ? { code_challenge: pkce.challenge, code_challenge_method: 'S256' } : {}),
  }).toString();
  return { url: u.href, pkce, nonce, state };
}

async function tokenRequest(issuer, client, code, verifier) {
  const body = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier });
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  if (client.token_endpoint_auth_method === 'client_secret_post') {
    body.set('client_id', client.client_id);
    body.set('client_secret', client.client_secret);
  } else {
    headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret)}`).toString('base64')}`;
  }
  const res = await fetch(`${issuer}/token`, { method: 'POST', headers, body });
  return { status: res.status, json: await res.json() };
}

async function fullLogin(issuer, client, login) {
  const browser = new Browser();
  const req = await authorizeUrl(issuer, client.client_id);
  const back = await idpLogin(browser, req.url, login);
  const cb = new URL(back.location);
  assert.equal(`${cb.origin}${cb.pathname}`, REDIRECT);
  assert.equal(cb.searchParams.get('state'), req.state);
  assert.equal(cb.searchParams.get('iss'), issuer);
  const code = cb.searchParams.get('code');
  assert.ok(code);
  const token = await tokenRequest(issuer, client, code, req.pkce.verifier);
  assert.equal(token.status, 200, JSON.stringify(token.json));
  const idToken = decodeJwt(token.json.id_token);
  assert.equal(idToken.iss, issuer);
  assert.equal(idToken.aud, client.client_id);
  assert.equal(idToken.nonce, req.nonce);
  const ui = await fetch(`${issuer}/me`, { headers: { authorization: `Bearer ${token.json.access_token}` } });
  assert.equal(ui.status, 200);
  return { idToken, userinfo: await ui.json(), code, req, header: JSON.parse(Buffer.from(token.json.id_token.split('.')[0], 'base64url')) };
}

async function checkIdp() {
  const idp = await start('idp.mjs', {
    IDP_PORT: String(IDP_PORT), IDP_CLIENTS: JSON.stringify(CLIENTS),
    IDP_USERS: JSON.stringify(USERS), IDP_TEST_CONTROL: '1',
  });
  const issuer = idp.url;
  assert.equal(issuer, `http://127.0.0.1:${IDP_PORT}`);
  ok('idp.mjs prints READY <issuer>');

  const disco = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  assert.equal(disco.issuer, issuer);
  assert.deepEqual(disco.code_challenge_methods_supported, ['S256']);
  assert.equal(disco.authorization_endpoint, `${issuer}/auth`);
  assert.equal(disco.token_endpoint, `${issuer}/token`);
  assert.equal(disco.userinfo_endpoint, `${issuer}/me`);
  ok('discovery document');

  for (const client of CLIENTS) {
    const { idToken, userinfo, header } = await fullLogin(issuer, client, 'alice');
    assert.equal(header.alg, 'RS256');
    for (const [k, v] of Object.entries(USERS.alice)) {
      assert.deepEqual(idToken[k], v, `id token ${k}`);
      assert.deepEqual(userinfo[k], v, `userinfo ${k}`);
    }
    ok(`full code+PKCE login, ${client.token_endpoint_auth_method}: claims + nonce in ID token, claims at userinfo`);
  }

  // Code reuse and wrong verifier.
  {
    const browser = new Browser();
    const req = await authorizeUrl(issuer, 'jit-basic');
    const back = await idpLogin(browser, req.url, 'bob');
    const code = new URL(back.location).searchParams.get('code');
    const wrong = await tokenRequest(issuer, CLIENTS[0], code, pkcePair().verifier);
    assert.equal(wrong.status, 400);
    assert.equal(wrong.json.error, 'invalid_grant');
    ok('wrong PKCE verifier -> invalid_grant');
  }
  {
    const req = await authorizeUrl(issuer, 'jit-basic', { withPkce: false });
    const res = await new Browser().get(req.url);
    const loc = new URL(res.location);
    assert.equal(loc.searchParams.get('error'), 'invalid_request');
    assert.match(loc.searchParams.get('error_description'), /PKCE/);
    ok('authorization request without PKCE -> invalid_request');
  }
  {
    const secret = { ...CLIENTS[0], client_secret: 'nope' };
    const browser = new Browser();
    const req = await authorizeUrl(issuer, 'jit-basic');
    const back = await idpLogin(browser, req.url, 'alice');
    const res = await tokenRequest(issuer, secret, new URL(back.location).searchParams.get('code'), req.pkce.verifier);
    assert.equal(res.status, 401);
    assert.equal(res.json.error, 'invalid_client');
    ok('wrong client secret -> invalid_client');
  }
  {
    const req = await authorizeUrl(issuer, 'jit-basic');
    const res = await idpLogin(new Browser(), req.url, 'mallory');
    assert.equal(res.status, 401);
    assert.match(res.text, /Unknown user/);
    ok('unknown login -> 401 with the form again');
  }
  {
    const req = await authorizeUrl(issuer, 'jit-basic');
    const res = await idpLogin(new Browser(), req.url, null, { abort: true });
    const loc = new URL(res.location);
    assert.equal(loc.searchParams.get('error'), 'access_denied');
    assert.equal(loc.searchParams.get('state'), req.state);
    ok('cancel -> redirect_uri?error=access_denied');
  }
  {
    // The same browser signs in again: the login form is shown again (no silent SSO).
    const browser = new Browser();
    const r1 = await authorizeUrl(issuer, 'jit-basic');
    await idpLogin(browser, r1.url, 'alice');
    const r2 = await authorizeUrl(issuer, 'jit-basic');
    const back = await idpLogin(browser, r2.url, 'bob');
    const token = await tokenRequest(issuer, CLIENTS[0], new URL(back.location).searchParams.get('code'), r2.pkce.verifier);
    assert.equal(decodeJwt(token.json.id_token).sub, 'bob-sub');
    ok('second login in the same browser shows the form again (and can switch user)');
  }

  // Control endpoint: change alice's claims, the next login sees them.
  {
    const changed = { ...USERS, alice: { ...USERS.alice, email: 'alice.new@example.com', given_name: 'Alicia', department: 'sales' } };
    delete changed.alice.family_name;
    const res = await fetch(`${issuer}/_test/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(changed) });
    assert.equal(res.status, 200);
    const bad = await fetch(`${issuer}/_test/users`, { method: 'POST', body: '[1]' });
    assert.equal(bad.status, 400);
    const { idToken, userinfo } = await fullLogin(issuer, CLIENTS[1], 'alice');
    for (const c of [idToken, userinfo]) {
      assert.equal(c.email, 'alice.new@example.com');
      assert.equal(c.given_name, 'Alicia');
      assert.equal(c.department, 'sales');
      assert.equal(c.family_name, undefined);
      assert.equal(c.sub, 'alice-sub');
    }
    ok('POST /_test/users changes the claims of the next login');
  }
  const exit = await stop(idp);
  assert.equal(exit.code, 0);
  ok('idp.mjs exits 0 on SIGTERM');

  // Without test control the endpoint does not exist; IDP_ID_TOKEN_CLAIMS=0;
  // IDP_REUSE_SESSION=1 gives normal SSO.
  const idp2 = await start('idp.mjs', {
    IDP_PORT: String(IDP_PORT + 1), IDP_CLIENTS: JSON.stringify(CLIENTS),
    IDP_USERS: JSON.stringify(USERS), IDP_ID_TOKEN_CLAIMS: '0', IDP_REUSE_SESSION: '1',
  });
  {
    const browser = new Browser();
    await idpLogin(browser, (await authorizeUrl(idp2.url, 'jit-basic')).url, 'alice');
    const again = await browser.get((await authorizeUrl(idp2.url, 'jit-basic')).url);
    assert.equal(again.status, 303);
    assert.ok(new URL(again.location).searchParams.get('code'), again.location);
    ok('IDP_REUSE_SESSION=1: second authorization in the same browser skips the form (SSO)');
  }
  const res = await fetch(`${idp2.url}/_test/users`, { method: 'POST', body: '{}' });
  assert.equal(res.status, 404);
  ok('no /_test/users without IDP_TEST_CONTROL=1');
  const { idToken, userinfo } = await fullLogin(idp2.url, CLIENTS[0], 'alice');
  assert.equal(idToken.email, undefined);
  assert.equal(userinfo.email, 'Alice@Example.com');
  ok('IDP_ID_TOKEN_CLAIMS=0: claims at userinfo only');
  await stop(idp2);
}

// ---------------------------------------------------------------- the app ---

async function checkApp() {
  // Unreachable issuer.
  {
    const app = await start('app.mjs', {
      APP_PORT: '47103', APP_ISSUER: 'http://127.0.0.1:47109', APP_CLIENT_ID: 'x', APP_CLIENT_SECRET: 'y',
    });
    assert.equal(app.url, 'http://127.0.0.1:47103');
    const res = await fetch(`${app.url}/login?fidp=corp`, { redirect: 'manual' });
    assert.equal(res.status, 500);
    const body = await res.json();
    assert.match(body.error, /discovery of http:\/\/127\.0\.0\.1:47109 failed: .*ECONNREFUSED/);
    const cb = await fetch(`${app.url}/callback?code=x&state=y`);
    assert.equal(cb.status, 400);
    assert.ok((await cb.json()).error);
    ok(`app.mjs: unreachable issuer -> /login 500 ${JSON.stringify(body)}`);
    assert.equal((await stop(app)).code, 0);
  }

  // idp.mjs standing in for jit.
  const APP_PORT = 47104;
  const appRedirect = `http://127.0.0.1:${APP_PORT}/callback`;
  const idp = await start('idp.mjs', {
    IDP_PORT: '47105',
    IDP_CLIENTS: JSON.stringify([
      { client_id: 'app', client_secret: 'app-secret', redirect_uris: [appRedirect] },
      { client_id: 'app-public', redirect_uris: [`http://127.0.0.1:${APP_PORT + 2}/callback`], token_endpoint_auth_method: 'none' },
    ]),
    IDP_USERS: JSON.stringify(USERS),
  });
  for (const [port, env] of [
    [APP_PORT, { APP_CLIENT_ID: 'app', APP_CLIENT_SECRET: 'app-secret' }],
    [APP_PORT + 2, { APP_CLIENT_ID: 'app-public' }],
  ]) {
    const app = await start('app.mjs', { APP_PORT: String(port), APP_ISSUER: idp.url, ...env });
    const browser = new Browser();
    const login = await browser.get(`${app.url}/login?fidp=corp`);
    assert.equal(login.status, 302);
    const authz = new URL(login.location);
    assert.equal(authz.origin + authz.pathname, `${idp.url}/auth`);
    const p = authz.searchParams;
    assert.equal(p.get('fidp'), 'corp');
    assert.equal(p.get('scope'), 'openid profile email');
    assert.equal(p.get('code_challenge_method'), 'S256');
    assert.equal(p.get('response_type'), 'code');
    for (const k of ['state', 'nonce', 'code_challenge']) assert.ok(p.get(k), k);
    const back = await idpLogin(browser, authz.href, 'alice');
    assert.ok(back.location.startsWith(`${app.url}/callback?`));
    const cb = await browser.get(back.location);
    assert.equal(cb.status, 200, cb.text);
    const body = JSON.parse(cb.text);
    assert.equal(body.id_token_claims.sub, 'alice-sub');
    assert.equal(body.id_token_claims.nonce, p.get('nonce'));
    assert.equal(body.id_token_claims.email, 'Alice@Example.com');
    assert.equal(body.userinfo.email, 'Alice@Example.com');
    ok(`app.mjs (${env.APP_CLIENT_SECRET ? 'confidential, client_secret_basic' : 'public'}) against idp.mjs: /login -> IdP form -> /callback 200 ${cb.text.trim().slice(0, 80)}...`);
    const replay = await browser.get(back.location);
    assert.equal(replay.status, 400);
    assert.match(JSON.parse(replay.text).error, /unknown or already used state/);
    ok('app.mjs: replayed callback -> 400 JSON');
    await stop(app);
  }
  // Error from the OP on the callback.
  {
    const app = await start('app.mjs', { APP_PORT: String(APP_PORT), APP_ISSUER: idp.url, APP_CLIENT_ID: 'app', APP_CLIENT_SECRET: 'app-secret' });
    const browser = new Browser();
    const login = await browser.get(`${app.url}/login`);
    const back = await idpLogin(browser, login.location, null, { abort: true });
    const cb = await browser.get(back.location);
    assert.equal(cb.status, 400);
    assert.match(JSON.parse(cb.text).error, /access_denied/);
    ok(`app.mjs: ?error=access_denied -> 400 ${cb.text.trim()}`);
    // A tampered code is rejected by the token endpoint.
    const login2 = await browser.get(`${app.url}/login`);
    const back2 = await idpLogin(browser, login2.location, 'alice');
    const tampered = new URL(back2.location);
    tampered.searchParams.set('code', 'not-a-code');
    const cb2 = await browser.get(tampered.href);
    assert.equal(cb2.status, 400);
    assert.match(JSON.parse(cb2.text).error, /invalid_grant/);
    ok(`app.mjs: bad code -> 400 ${cb2.text.trim()}`);
    await stop(app);
  }
  await stop(idp);

  // ES256: the IdP signs with ES256 for this client; the app pins the alg.
  {
    const idpEs = await start('idp.mjs', {
      IDP_PORT: '47107',
      IDP_CLIENTS: JSON.stringify([{ client_id: 'app', client_secret: 'app-secret', redirect_uris: [appRedirect], id_token_signed_response_alg: 'ES256' }]),
      IDP_USERS: JSON.stringify(USERS),
    });
    for (const [alg, status] of [['ES256', 200], ['RS256', 400]]) {
      const app = await start('app.mjs', {
        APP_PORT: String(APP_PORT), APP_ISSUER: idpEs.url, APP_CLIENT_ID: 'app', APP_CLIENT_SECRET: 'app-secret', APP_ID_TOKEN_ALG: alg,
      });
      const browser = new Browser();
      const login = await browser.get(`${app.url}/login`);
      const back = await idpLogin(browser, login.location, 'alice');
      const cb = await browser.get(back.location);
      assert.equal(cb.status, status, cb.text);
      ok(`app.mjs: ES256 ID token, APP_ID_TOKEN_ALG=${alg} -> ${status} ${cb.text.trim().slice(0, 120)}`);
      await stop(app);
    }
    await stop(idpEs);
  }

  // A proxy in front of the IdP corrupts the ID token signature at /token.
  {
    const upstream = 47108;
    const front = 47109 + 1;
    const idpT = await start('idp.mjs', {
      IDP_PORT: String(upstream), IDP_ISSUER: `http://127.0.0.1:${front}`,
      IDP_CLIENTS: JSON.stringify([{ client_id: 'app', client_secret: 'app-secret', redirect_uris: [appRedirect] }]),
      IDP_USERS: JSON.stringify(USERS),
    });
    const proxy = http.createServer((req, res) => {
      const up = http.request({ host: '127.0.0.1', port: upstream, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
        const chunks = [];
        upRes.on('data', (c) => chunks.push(c));
        upRes.on('end', () => {
          let body = Buffer.concat(chunks);
          if (req.url.startsWith('/token') && upRes.statusCode === 200) {
            const json = JSON.parse(body);
            const [h, p, sig] = json.id_token.split('.');
            const i = Math.floor(sig.length / 2);
            json.id_token = `${h}.${p}.${sig.slice(0, i)}${sig[i] === 'A' ? 'B' : 'A'}${sig.slice(i + 1)}`;
            body = Buffer.from(JSON.stringify(json));
          }
          const headers = { ...upRes.headers, 'content-length': body.length };
          delete headers['transfer-encoding'];
          res.writeHead(upRes.statusCode, headers);
          res.end(body);
        });
      });
      req.pipe(up);
    });
    await new Promise((r) => proxy.listen(front, '127.0.0.1', r));
    const app = await start('app.mjs', { APP_PORT: String(APP_PORT), APP_ISSUER: `http://127.0.0.1:${front}`, APP_CLIENT_ID: 'app', APP_CLIENT_SECRET: 'app-secret' });
    const browser = new Browser();
    const login = await browser.get(`${app.url}/login`);
    const back = await idpLogin(browser, login.location, 'alice');
    const cb = await browser.get(back.location);
    assert.equal(cb.status, 400, cb.text);
    assert.match(JSON.parse(cb.text).error, /signature/i);
    ok(`app.mjs: tampered ID token signature -> 400 ${cb.text.trim()}`);
    await stop(app);
    proxy.close();
    await stop(idpT);
  }
}

try {
  await checkIdp();
  await checkApp();
  console.log(`all ${passed} checks passed`);
} catch (err) {
  console.error(err);
  for (const c of children) c.kill('SIGTERM');
  process.exitCode = 1;
}
