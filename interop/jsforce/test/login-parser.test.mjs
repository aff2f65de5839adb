// Self-test of login.mjs: the HTML form parser, the cookie jar, and the login driver
// against a small in-process stand-in server. Needs no Tessera server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import {
  decodeEntities,
  parseAttributes,
  parseForms,
  findLoginForm,
  findConsentForm,
  pageText,
  CookieJar,
  browserLogin,
} from './login.mjs';

test('decodeEntities handles the escapes a server uses in attribute values', () => {
  assert.equal(decodeEntities('a&amp;b&lt;c&gt;d&quot;e&#39;f&#x27;g'), `a&b<c>d"e'f'g`);
  assert.equal(decodeEntities('&#X27;&#34;&apos;&AMP;'), `'"'&`);
  assert.equal(decodeEntities('&amp;amp;'), '&amp;', 'decodes exactly once');
  assert.equal(decodeEntities('&unknown; & &#xZZ;'), '&unknown; & &#xZZ;', 'leaves unknown text alone');
  assert.equal(decodeEntities('&#128512;'), '\u{1F600}');
});

test('parseAttributes: quote styles, spacing, case, bare and unquoted attributes', () => {
  assert.deepEqual(parseAttributes(` type="hidden"  name='csrf'   value = "a&amp;b" `), {
    type: 'hidden',
    name: 'csrf',
    value: 'a&b',
  });
  assert.deepEqual(parseAttributes(`NAME=state VALUE=x&#x27;y required`), { name: 'state', value: "x'y", required: '' });
  assert.deepEqual(parseAttributes(`value='say "hi"' name="q"`), { value: 'say "hi"', name: 'q' });
  assert.deepEqual(parseAttributes(`value="a>b" name="gt" /`), { value: 'a>b', name: 'gt' });
  assert.deepEqual(parseAttributes(`name="first" name="second"`), { name: 'first' }, 'first occurrence wins');
  assert.deepEqual(parseAttributes(`value="" name="empty"`), { value: '', name: 'empty' });
});

const LOGIN_DOUBLE = `<!doctype html>
<html><head><title>Log in</title></head><body>
<!-- <form method="get" action="/commented-out"><input name="username"><input name="password"></form> -->
<h1>Log in to Tessera</h1>
<form method="post" action="/services/oauth2/login?x=1&amp;y=2">
  <input type="hidden" name="csrf_token" value="tok&amp;en&lt;&gt;&quot;&#39;&#x27;">
  <input type="hidden" name="request" value="eyJjbGllbnQiOiJhIn0=">
  <label>Username <input type="text" name="username" autocomplete="username" required></label>
  <label>Password <input type="password" name="password" autocomplete="current-password" required></label>
  <button type="submit">Log in</button>
</form></body></html>`;

const LOGIN_SINGLE_REORDERED = `<html><body>
<FORM  ACTION = '/login'
       METHOD = 'POST' class='x'>
  <input value='v1'   name='a'  type='hidden' />
  <input
      name = 'b'
      type = 'HIDDEN'
      value = 'it&#39;s &amp; "quoted" > here' />
  <input name=username type=email>
  <input type=password name=password>
  <input type="checkbox" name="remember" value="1">
  <input type="submit" name="login" value="Log in">
</FORM>
<form method="post" action="/logout"><button type="submit">Log out</button></form>
</body></html>`;

const CONSENT = `<html><body>
<p>App <b>jsforce</b> wants: api, id, refresh_token, web</p>
<form action="/services/oauth2/consent" method="post">
  <input name="csrf_token" value="c&#x27;s" type="hidden">
  <input type="hidden" value="ticket-123" name="ticket">
  <button name="decision" type="submit" value="allow" class="primary">Allow</button>
  <button value='deny' name='decision' type='submit'>Deny</button>
</form></body></html>`;

test('parses a login page with double quotes and escaped values', () => {
  const forms = parseForms(LOGIN_DOUBLE);
  assert.equal(forms.length, 1, 'the commented-out form is ignored');
  const f = findLoginForm(forms);
  assert.ok(f);
  assert.equal(f.method, 'POST');
  assert.equal(f.action, '/services/oauth2/login?x=1&y=2');
  assert.deepEqual(f.hidden, [
    ['csrf_token', `tok&en<>"''`],
    ['request', 'eyJjbGllbnQiOiJhIn0='],
  ]);
  assert.deepEqual(
    f.inputs.map((i) => [i.type, i.name]),
    [
      ['hidden', 'csrf_token'],
      ['hidden', 'request'],
      ['text', 'username'],
      ['password', 'password'],
    ],
  );
  assert.deepEqual(f.buttons, [{ type: 'submit', name: undefined, value: '' }]);
  assert.equal(findConsentForm(forms), undefined);
  assert.equal(new URL(f.action, 'http://127.0.0.1:9/services/oauth2/authorize?a=b').href, 'http://127.0.0.1:9/services/oauth2/login?x=1&y=2');
});

test('parses a login page with single/no quotes, odd spacing, upper case and reordered attributes', () => {
  const forms = parseForms(LOGIN_SINGLE_REORDERED);
  assert.equal(forms.length, 2);
  const f = findLoginForm(forms);
  assert.ok(f);
  assert.equal(f.method, 'POST');
  assert.equal(f.action, '/login');
  assert.deepEqual(f.hidden, [
    ['a', 'v1'],
    ['b', `it's & "quoted" > here`],
  ]);
  assert.deepEqual(f.buttons, [{ type: 'submit', name: 'login', value: 'Log in' }]);
  assert.ok(f.inputs.some((i) => i.name === 'remember' && i.type === 'checkbox'));
  assert.equal(forms[1].action, '/logout');
});

test('parses a consent page and finds both decisions', () => {
  const forms = parseForms(CONSENT);
  const f = findConsentForm(forms);
  assert.ok(f);
  assert.equal(findLoginForm(forms), undefined);
  assert.equal(f.method, 'POST');
  assert.equal(f.action, '/services/oauth2/consent');
  assert.deepEqual(f.hidden, [
    ['csrf_token', "c's"],
    ['ticket', 'ticket-123'],
  ]);
  assert.deepEqual(
    f.buttons.map((b) => [b.name, b.value]),
    [
      ['decision', 'allow'],
      ['decision', 'deny'],
    ],
  );
});

test('a form without method or action defaults to GET and the page URL', () => {
  const [f] = parseForms('<form><input type=hidden name=x value=1></form>');
  assert.equal(f.method, 'GET');
  assert.equal(f.action, '');
  assert.deepEqual(f.hidden, [['x', '1']]);
});

test('pageText strips tags, scripts and entities', () => {
  assert.equal(pageText('<p>Bad <b>password</b> &amp; more</p><script>var x = "<b>";</script>'), 'Bad password & more');
});

test('CookieJar stores, matches by host and path, and expires cookies', () => {
  const jar = new CookieJar();
  const headers = (lines) => ({ headers: { getSetCookie: () => lines } });
  jar.store(
    'http://127.0.0.1:8080/services/oauth2/authorize?x=1',
    headers([
      'sid=abc; Path=/; HttpOnly; SameSite=Lax',
      'csrf="q1"; Path=/services/oauth2; Secure',
      'scoped=1', // default path: /services/oauth2
      'gone=1; Max-Age=0',
    ]),
  );
  assert.equal(jar.header('http://127.0.0.1:8080/services/oauth2/login'), 'sid=abc; csrf=q1; scoped=1');
  assert.equal(jar.header('http://127.0.0.1:8080/other'), 'sid=abc');
  assert.equal(jar.header('http://127.0.0.1:8080/services/oauth2x'), 'sid=abc', 'path match is by segment');
  assert.equal(jar.header('http://localhost:8080/services/oauth2/login'), '', 'host-only');
  jar.store('http://127.0.0.1:8080/', headers(['sid=new; Path=/', 'csrf=; Path=/services/oauth2; Expires=Thu, 01 Jan 1970 00:00:00 GMT']));
  assert.equal(jar.header('http://127.0.0.1:8080/services/oauth2/login'), 'sid=new; scoped=1');
});

// ---------------------------------------------------------------------------
// browserLogin against a tiny in-process stand-in (not Tessera): checks the driver's
// redirects, cookies and form posts, including the case where consent is skipped.
// ---------------------------------------------------------------------------

const REDIRECT = 'http://127.0.0.1:8976/callback';

async function withStandIn(options, fn) {
  const { rememberConsent = false, loginStatus = 303 } = options;
  const posts = [];
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const cookie = req.headers.cookie ?? '';
    let body = '';
    for await (const chunk of req) body += chunk;
    const form = new URLSearchParams(body);
    if (req.method === 'POST') posts.push({ path: url.pathname, cookie, origin: req.headers.origin, form: Object.fromEntries(form) });
    if (url.pathname === '/services/oauth2/authorize') {
      res.writeHead(200, { 'content-type': 'text/html', 'set-cookie': ['csrf=c1; Path=/; HttpOnly', 'other=o; Path=/elsewhere'] });
      return res.end(`<form method='post' action='login?state=${encodeURIComponent(url.searchParams.get('state'))}'>
        <input type='hidden' name='csrf_token' value='c1&amp;'><input name='username'><input type='password' name='password'></form>`);
    }
    if (url.pathname === '/services/oauth2/login') {
      if (!/(^|; )csrf=c1(;|$)/.test(cookie) || form.get('csrf_token') !== 'c1&') return res.writeHead(403).end('csrf');
      if (form.get('password') !== 'pw') return res.writeHead(200, { 'content-type': 'text/html' }).end('<p>Wrong password</p><form method=post><input name=username><input name=password type=password></form>');
      const state = url.searchParams.get('state');
      const next = rememberConsent ? `${REDIRECT}?code=abc%3D%3D&state=${encodeURIComponent(state)}` : `/consent?state=${encodeURIComponent(state)}`;
      return res.writeHead(loginStatus, { location: next, 'set-cookie': 'sid=s1; Path=/; HttpOnly' }).end();
    }
    if (url.pathname === '/consent' && req.method === 'GET') {
      if (!cookie.includes('sid=s1')) return res.writeHead(403).end('no session');
      return res.writeHead(200, { 'content-type': 'text/html' }).end(`<form method="post" action="/consent">
        <input type="hidden" name="state" value="${url.searchParams.get('state').replace(/&/g, '&amp;').replace(/"/g, '&quot;')}">
        <button type="submit" name="decision" value="allow">Allow</button><button type="submit" name="decision" value="deny">Deny</button></form>`);
    }
    if (url.pathname === '/consent') {
      if (!cookie.includes('sid=s1')) return res.writeHead(403).end('no session');
      const to = new URL(REDIRECT);
      if (form.get('decision') === 'allow') to.searchParams.set('code', 'abc==');
      else to.searchParams.set('error', 'access_denied');
      to.searchParams.set('state', form.get('state'));
      return res.writeHead(302, { location: to.href }).end();
    }
    res.writeHead(404).end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    return await fn(`http://127.0.0.1:${server.address().port}`, posts);
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

const STATE = 'st&"x y';
const authUrl = (base) => `${base}/services/oauth2/authorize?response_type=code&state=${encodeURIComponent(STATE)}`;

test('browserLogin: login page -> 303 -> consent page -> 302 to the redirect_uri', async () => {
  await withStandIn({}, async (base, posts) => {
    const r = await browserLogin(authUrl(base), { username: 'u', password: 'pw', redirectUri: REDIRECT });
    assert.equal(r.code, 'abc==');
    assert.equal(r.state, STATE);
    assert.equal(r.consentShown, true);
    assert.deepEqual(r.steps.map((s) => `${s.method} ${s.status}`), ['GET 200', 'POST 303', 'GET 200', 'POST 302']);
    assert.deepEqual(posts[0].form, { csrf_token: 'c1&', username: 'u', password: 'pw' });
    assert.equal(posts[0].cookie, 'csrf=c1', 'cookie of another path is not sent');
    assert.equal(posts[0].origin, base);
    assert.deepEqual(posts[1].form, { state: STATE, decision: 'allow' });
    assert.equal(posts[1].cookie, 'csrf=c1; sid=s1');
  });
});

test('browserLogin: consent skipped (redirect straight to the redirect_uri after login)', async () => {
  await withStandIn({ rememberConsent: true, loginStatus: 302 }, async (base) => {
    const r = await browserLogin(authUrl(base), { username: 'u', password: 'pw', redirectUri: REDIRECT });
    assert.equal(r.code, 'abc==');
    assert.equal(r.state, STATE);
    assert.equal(r.consentShown, false);
  });
});

test('browserLogin: deny gives the error; a wrong password and a 307 after POST are reported', async () => {
  await withStandIn({}, async (base) => {
    const denied = await browserLogin(authUrl(base), { username: 'u', password: 'pw', redirectUri: REDIRECT, decision: 'deny' });
    assert.equal(denied.error, 'access_denied');
    assert.equal(denied.code, null);
    await assert.rejects(
      browserLogin(authUrl(base), { username: 'u', password: 'bad', redirectUri: REDIRECT }),
      /login page came back[\s\S]*Wrong password/,
    );
  });
  await withStandIn({ loginStatus: 307 }, async (base) => {
    await assert.rejects(browserLogin(authUrl(base), { username: 'u', password: 'pw', redirectUri: REDIRECT }), /answered a form POST with 307/);
  });
});
