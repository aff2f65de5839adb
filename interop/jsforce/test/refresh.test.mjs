// The real jsforce client (pinned in package.json) against a running Tessera server:
// Web Server flow with PKCE, REST calls, refresh on expiry, refresh errors, rotation.
// Run through run.sh, which starts the server, creates the fixtures and sets the env.
// The tests in this file run in order and share state (later ones reuse the login of (a)).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import jsforce from 'jsforce';
import { browserLogin } from './login.mjs';
import {
  env,
  waitForExpiry,
  traceConnection,
  traceOAuth2,
  formatTrace,
  expectOk,
  expectReject,
  within,
  EXPIRY_WAIT_MS,
} from './util.mjs';

const TESSERA_URL = env('TESSERA_URL');
const CLIENT_ID = env('TESSERA_CLIENT_ID');
const CLIENT_SECRET = env('TESSERA_CLIENT_SECRET');
const ROT_CLIENT_ID = env('TESSERA_ROTATING_CLIENT_ID', { required: false });
const ROT_CLIENT_SECRET = env('TESSERA_ROTATING_CLIENT_SECRET', { required: false });
const USERNAME = env('TESSERA_USERNAME');
const PASSWORD = env('TESSERA_PASSWORD');
const REDIRECT_URI = process.env.TESSERA_REDIRECT_URI || 'http://127.0.0.1:8976/callback';
const SCOPE = 'api id refresh_token web';

// What jsforce produces for the server's 400 {"error":"invalid_grant","error_description":"expired access/refresh token"}:
// OAuth2._postParams throws Error(error_description) named `error`, and
// SessionRefreshDelegate.refresh rethrows it as `Unable to refresh session due to: ${err.message}`.
const EXPIRED_RT = 'expired access/refresh token';
const REFRESH_FAILED = (description) => `Unable to refresh session due to: ${description}`;

const CALL_TIMEOUT_MS = 15000;

/** oauth2 settings as an app would pass them to `new jsforce.Connection({ oauth2 })`. */
const oauth2Config = (clientId = CLIENT_ID, clientSecret = CLIENT_SECRET) => ({
  clientId,
  clientSecret,
  redirectUri: REDIRECT_URI,
  loginUrl: TESSERA_URL,
});

/** State shared by the tests of this file, which run in order. */
const S = {};

/**
 * Web Server flow with PKCE: jsforce builds the authorization URL, login.mjs plays the
 * browser, jsforce exchanges the code. Returns the authorized connection and its tokens.
 */
async function webServerLogin(clientId, clientSecret, label) {
  const oauth2 = new jsforce.OAuth2({ ...oauth2Config(clientId, clientSecret), useVerifier: true });
  const state = `st-${randomBytes(12).toString('base64url')}`;
  const authorizationUrl = oauth2.getAuthorizationUrl({ scope: SCOPE, state });
  const login = await browserLogin(authorizationUrl, { username: USERNAME, password: PASSWORD, redirectUri: REDIRECT_URI });
  const conn = new jsforce.Connection({ oauth2 });
  const trace = traceConnection(conn, label);
  const userInfo = await expectOk(conn.authorize(login.code), `[${label}] conn.authorize(code)`, trace);
  return {
    conn,
    trace,
    oauth2,
    state,
    authorizationUrl,
    login,
    userInfo,
    accessToken: conn.accessToken,
    refreshToken: conn.refreshToken,
    instanceUrl: conn.instanceUrl,
    lastUse: Date.now(),
  };
}

/** A connection built from stored tokens, the usual way an app resumes a session. */
function resumedConnection({ instanceUrl, accessToken, refreshToken }, oauth2 = oauth2Config(), label = 'conn') {
  const conn = new jsforce.Connection({ oauth2, instanceUrl, accessToken, refreshToken });
  const trace = traceConnection(conn, label);
  const refreshes = [];
  conn.on('refresh', (newAccessToken, res) => refreshes.push({ accessToken: newAccessToken, res, at: Date.now() }));
  return { conn, trace, refreshes };
}

const withTrace = (msg, trace) => `${msg}\nHTTP trace:\n${formatTrace(trace)}`;

// ---------------------------------------------------------------------------

test('a. Web Server flow with PKCE through jsforce', { timeout: 30000 }, async (t) => {
  const r = await webServerLogin(CLIENT_ID, CLIENT_SECRET, 'a');
  t.diagnostic(`consent page shown: ${r.login.consentShown}; login steps: ${r.login.steps.length}`);

  const au = new URL(r.authorizationUrl);
  assert.ok(au.searchParams.get('code_challenge'), 'jsforce (useVerifier) sends code_challenge');
  assert.equal(r.login.state, r.state, 'state must round-trip unchanged in the redirect');
  assert.ok(r.login.code, 'redirect carries a code');

  const { conn, userInfo, trace } = r;
  assert.equal(typeof conn.accessToken, 'string', withTrace('conn.accessToken is set', trace));
  assert.ok(conn.accessToken.length > 0);
  assert.equal(typeof conn.refreshToken, 'string', withTrace('conn.refreshToken is set (scope has refresh_token)', trace));
  assert.ok(conn.refreshToken.length > 0);
  assert.equal(conn.instanceUrl, TESSERA_URL, withTrace('instance_url is the server URL, no trailing slash', trace));
  assert.match(userInfo.id, /^005[A-Za-z0-9]{15}$/, withTrace('user id from the id URL: 18 chars, 005 prefix', trace));
  assert.match(userInfo.organizationId, /^00D[A-Za-z0-9]{15}$/, withTrace('org id from the id URL: 18 chars, 00D prefix', trace));
  assert.deepEqual(conn.userInfo, userInfo);
  S.a = r;
});

test('b. REST calls work with the access token', { timeout: 20000 }, async (t) => {
  if (!S.a) return t.skip('needs (a)');
  const { conn, trace } = S.a;

  const call = (promise, what) => within(CALL_TIMEOUT_MS, expectOk(promise, what, trace), what, trace);

  const versions = await call(conn.request('/services/data'), "conn.request('/services/data')");
  assert.ok(Array.isArray(versions) && versions.length > 0, withTrace(`version list is a non-empty array, got ${JSON.stringify(versions)}`, trace));
  for (const v of versions) {
    assert.equal(typeof v.version, 'string', `version entry ${JSON.stringify(v)}`);
    assert.equal(typeof v.url, 'string', `version entry ${JSON.stringify(v)}`);
    assert.equal(typeof v.label, 'string', `version entry ${JSON.stringify(v)}`);
    assert.ok(v.url.endsWith(`/v${v.version}`), `url ends with /v<version>: ${JSON.stringify(v)}`);
  }
  t.diagnostic(`versions: ${versions.map((v) => v.version).join(', ')}; jsforce uses v${conn.version}`);

  const created = await call(conn.sobject('Note').create({ Title: 'hello', Body: 'world' }), "conn.sobject('Note').create(...)");
  assert.equal(created.success, true, withTrace(`create result ${JSON.stringify(created)}`, trace));
  assert.equal(typeof created.id, 'string', `create result ${JSON.stringify(created)}`);
  assert.ok(created.id.length > 0);

  const rec = await call(conn.sobject('Note').retrieve(created.id), `retrieve(${created.id})`);
  assert.equal(rec.Title, 'hello', withTrace(`retrieved ${JSON.stringify(rec)}`, trace));
  assert.equal(rec.Body, 'world', `retrieved ${JSON.stringify(rec)}`);
  S.noteId = created.id;
  S.a.lastUse = Date.now();
});

test('c. a resumed Connection refreshes the expired access token on 401', { timeout: 30000 }, async (t) => {
  if (!S.a || !S.noteId) return t.skip('needs (a) and (b)');
  // The access token of (a) was last used at the end of (b); let it expire unused.
  await waitForExpiry(S.a.lastUse);
  const { conn, trace, refreshes } = resumedConnection(S.a, oauth2Config(), 'c');

  const rec = await within(
    CALL_TIMEOUT_MS,
    expectOk(conn.sobject('Note').retrieve(S.noteId), 'retrieve after expiry', trace),
    'retrieve after expiry',
    trace,
  );
  assert.equal(rec.Title, 'hello', withTrace(`retrieved ${JSON.stringify(rec)}`, trace));
  assert.equal(
    refreshes.length,
    1,
    withTrace(`expected exactly one 'refresh' event (access token unused for ${EXPIRY_WAIT_MS} ms, TTL 3 s)`, trace),
  );
  const [ev] = refreshes;
  assert.equal(typeof ev.accessToken, 'string');
  assert.notEqual(ev.accessToken, S.a.accessToken, 'the refreshed access token differs from the old one');
  assert.equal(conn.accessToken, ev.accessToken);
  assert.equal(conn.refreshToken, S.a.refreshToken, 'no rotation on this client: the refresh token stays');
  const first = trace.find((e) => e.who === 'c');
  assert.equal(first?.status, 401, withTrace('the expired token was answered with 401 (what makes jsforce refresh)', trace));
  S.c = { res: ev.res, conn };
});

test('c2. the refresh response has the Salesforce shape (docs/salesforce-compatibility.md, "Token response"; expires_in tolerated)', async (t) => {
  if (!S.c) return t.skip('needs (c)');
  const res = S.c.res;
  const show = JSON.stringify({ ...res, access_token: '…', signature: res?.signature });
  assert.equal(typeof res, 'object', 'jsforce passes the parsed token response to the refresh event');
  assert.equal(typeof res.access_token, 'string', show);
  assert.equal(res.instance_url, TESSERA_URL, show);
  const { id: userId, organizationId } = S.a.userInfo;
  assert.ok(res.id.endsWith(`/id/${organizationId}/${userId}`), `id URL ends with /id/<org>/<user>: ${show}`);
  assert.equal(res.token_type, 'Bearer', show);
  assert.match(res.issued_at ?? '', /^\d{13}$/, `issued_at is a 13-digit millisecond string: ${show}`);
  assert.equal(typeof res.scope, 'string', show);
  // Salesforce never sends expires_in; Tessera adds it unless `serve --expires-in false`
  // (a documented default). jsforce ignores it; if present it must at least be sane.
  if ('expires_in' in res) {
    t.diagnostic(`expires_in present (${res.expires_in}); Salesforce omits it`);
    assert.ok(Number.isInteger(res.expires_in) && res.expires_in > 0 && res.expires_in <= 3, `expires_in for a 3 s TTL: ${show}`);
  }
  assert.equal('refresh_token' in res, false, `no refresh_token without rotation: ${show}`);
  const expected = createHmac('sha256', CLIENT_SECRET).update(res.id + res.issued_at).digest('base64');
  assert.equal(res.signature, expected, `signature = base64(HMAC-SHA256(client_secret, id + issued_at)): ${show}`);
});

test('c3. the PKCE Connection of (a) refreshes too (jsforce adds code_verifier to the refresh POST)', { timeout: 30000 }, async (t) => {
  if (!S.a || !S.noteId) return t.skip('needs (a) and (b)');
  await waitForExpiry(S.a.lastUse); // already over after (c); kept for independence
  const { conn, trace } = S.a;
  const refreshes = [];
  conn.on('refresh', (accessToken, res) => refreshes.push({ accessToken, res }));
  const before = trace.length;
  const rec = await within(
    CALL_TIMEOUT_MS,
    expectOk(conn.sobject('Note').retrieve(S.noteId), 'retrieve with the (a) connection after expiry', trace),
    'retrieve with the (a) connection after expiry',
    trace,
  );
  assert.equal(rec.Body, 'world');
  assert.equal(refreshes.length, 1, withTrace("expected one 'refresh' event", trace));
  assert.notEqual(refreshes[0].accessToken, S.a.accessToken);
  const tokenPost = trace.slice(before).find((e) => e.url.endsWith('/services/oauth2/token'));
  assert.match(tokenPost?.reqBody ?? '', /(^|&)code_verifier=/, withTrace('jsforce sent code_verifier with the refresh', trace));
});

test('d. an unknown refresh token fails with jsforce\'s "expired access/refresh token" message', { timeout: 20000 }, async (t) => {
  const { conn, trace } = resumedConnection(
    { instanceUrl: TESSERA_URL, accessToken: 'bogus', refreshToken: 'garbage-token' },
    oauth2Config(),
    'd',
  );
  const err = await within(
    CALL_TIMEOUT_MS,
    expectReject(conn.sobject('Note').retrieve(S.noteId ?? '002000000000000AAA'), 'API call with a garbage refresh token', trace),
    'API call with a garbage refresh token',
    trace,
  );
  assert.equal(err.message, REFRESH_FAILED(EXPIRED_RT), withTrace('jsforce error message', trace));
  const first = trace.find((e) => e.who === 'd');
  assert.equal(first?.status, 401, withTrace("the bogus access token was answered with 401", trace));

  // The same through OAuth2 directly: error code and description as jsforce exposes them.
  const oauth2 = new jsforce.OAuth2(oauth2Config());
  const direct = traceOAuth2(oauth2);
  const e2 = await expectReject(oauth2.refreshToken('garbage-token'), 'OAuth2.refreshToken(garbage)', direct);
  assert.equal(e2.name, 'invalid_grant', withTrace('error', direct));
  assert.equal(e2.message, EXPIRED_RT, withTrace('error_description', direct));
  assert.equal(direct[0]?.status, 400, withTrace('token endpoint status', direct));
});

test('e. a wrong client secret fails the refresh with "invalid client credentials"', { timeout: 20000 }, async (t) => {
  if (!S.a) return t.skip('needs (a)');
  const wrong = oauth2Config(CLIENT_ID, `${CLIENT_SECRET}-wrong`);
  const { conn, trace } = resumedConnection(
    { instanceUrl: S.a.instanceUrl, accessToken: 'bogus', refreshToken: S.a.refreshToken },
    wrong,
    'e',
  );
  const err = await within(
    CALL_TIMEOUT_MS,
    expectReject(conn.sobject('Note').retrieve(S.noteId ?? '002000000000000AAA'), 'API call refreshing with a wrong secret', trace),
    'API call refreshing with a wrong secret',
    trace,
  );
  assert.match(err.message, /invalid client credentials/, withTrace('jsforce error message', trace));
  assert.equal(err.message, REFRESH_FAILED('invalid client credentials'), withTrace('jsforce error message', trace));

  const oauth2 = new jsforce.OAuth2(wrong);
  const direct = traceOAuth2(oauth2);
  const e2 = await expectReject(oauth2.refreshToken(S.a.refreshToken), 'OAuth2.refreshToken with a wrong secret', direct);
  assert.equal(e2.name, 'invalid_client', withTrace('error', direct));
  assert.equal(direct[0]?.status, 400, withTrace('token endpoint status (Salesforce answers 400, not 401)', direct));

  // A failed client authentication must not use up the refresh token.
  const ok = new jsforce.OAuth2(oauth2Config());
  const okTrace = traceOAuth2(ok);
  const res = await expectOk(ok.refreshToken(S.a.refreshToken), 'refresh with the right secret afterwards', okTrace);
  assert.equal(typeof res.access_token, 'string');
});

test('f. refresh token rotation', { timeout: 60000, concurrency: true }, async (t) => {
  if (!ROT_CLIENT_ID || !ROT_CLIENT_SECRET) {
    return t.skip('SKIP: no rotating client (run.sh could not create one with --rotate-refresh-tokens --refresh-retry-window 0s)');
  }
  const rot = oauth2Config(ROT_CLIENT_ID, ROT_CLIENT_SECRET);

  await Promise.all([
    t.test('f1. a Connection that saves res.refresh_token from its refresh event survives 3 rotations', async () => {
      const login = await webServerLogin(ROT_CLIENT_ID, ROT_CLIENT_SECRET, 'f1-login');
      const { conn, trace, refreshes } = resumedConnection(login, rot, 'f1');
      conn.on('refresh', (_at, res) => {
        if (res?.refresh_token) conn.refreshToken = res.refresh_token;
      });
      let lastUse = login.lastUse;
      let prevRt = login.refreshToken;
      let prevAt = login.accessToken;
      for (let i = 1; i <= 3; i++) {
        await waitForExpiry(lastUse);
        const what = `create after expiry #${i}`;
        const created = await within(CALL_TIMEOUT_MS, expectOk(conn.sobject('Note').create({ Title: `rotation ${i}` }), what, trace), what, trace);
        lastUse = Date.now();
        assert.equal(created.success, true);
        assert.equal(refreshes.length, i, withTrace(`refresh #${i} happened`, trace));
        const ev = refreshes[i - 1];
        assert.ok(ev.res?.refresh_token, withTrace(`rotation on: refresh #${i} returns a new refresh_token`, trace));
        assert.notEqual(ev.res.refresh_token, prevRt, `refresh #${i}: the refresh token rotated`);
        assert.notEqual(ev.accessToken, prevAt, `refresh #${i}: a new access token`);
        assert.equal(conn.refreshToken, ev.res.refresh_token);
        prevRt = ev.res.refresh_token;
        prevAt = ev.accessToken;
      }
    }),

    t.test('f2. a default Connection (keeps the old refresh token, jsforce #1656)', async (t2) => {
      const login = await webServerLogin(ROT_CLIENT_ID, ROT_CLIENT_SECRET, 'f2-login');
      const { conn, trace, refreshes } = resumedConnection(login, rot, 'f2');
      let lastUse = login.lastUse;

      await t2.test('first refresh succeeds; jsforce keeps the old refresh token', async () => {
        await waitForExpiry(lastUse);
        const what = 'create after first expiry';
        await within(CALL_TIMEOUT_MS, expectOk(conn.sobject('Note').create({ Title: 'default 1' }), what, trace), what, trace);
        lastUse = Date.now();
        assert.equal(refreshes.length, 1, withTrace('one refresh', trace));
        assert.ok(refreshes[0].res?.refresh_token, withTrace('rotation on: the refresh returned a new refresh_token', trace));
        assert.notEqual(refreshes[0].res.refresh_token, login.refreshToken);
        assert.equal(conn.refreshToken, login.refreshToken, 'jsforce ignores res.refresh_token (issue #1656)');
      });

      await t2.test('second refresh replays the rotated-out token and fails', async () => {
        assert.equal(refreshes.length, 1, 'needs the first refresh');
        await waitForExpiry(lastUse);
        const what = 'create after second expiry';
        const err = await within(CALL_TIMEOUT_MS, expectReject(conn.sobject('Note').create({ Title: 'default 2' }), what, trace), what, trace);
        assert.equal(err.message, REFRESH_FAILED(EXPIRED_RT), withTrace('jsforce error message', trace));
      });

      await t2.test('the replay revoked the family: the successor token is dead too (docs/security.md, "Reuse detection")', async () => {
        const successor = refreshes[0]?.res?.refresh_token;
        assert.ok(successor, 'needs the first refresh');
        const oauth2 = new jsforce.OAuth2(rot);
        const direct = traceOAuth2(oauth2);
        const e = await expectReject(oauth2.refreshToken(successor), 'refresh with the successor after a replay', direct);
        assert.equal(e.name, 'invalid_grant', withTrace('error', direct));
        assert.equal(e.message, EXPIRED_RT, withTrace('error_description', direct));
      });
    }),
  ]);
});
