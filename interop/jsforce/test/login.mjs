// Drives Tessera's browser login (login page -> consent page -> redirect to the
// client's redirect_uri) over plain HTTP, the way a browser would: Node's fetch
// with `redirect: 'manual'`, a small cookie jar fed from `set-cookie`, and a
// tolerant parser for the HTML forms. Nothing is fetched at the redirect_uri:
// nothing listens there; the code and state are read from the Location header.

// ---------------------------------------------------------------------------
// HTML helpers (exported for test/login-parser.test.mjs)
// ---------------------------------------------------------------------------

const NAMED_ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

/** Decodes the character references a server uses when escaping attribute values. */
export function decodeEntities(s) {
  return s.replace(/&(#[xX][0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (whole, ref) => {
    if (ref[0] === '#') {
      const cp = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return Number.isFinite(cp) && cp >= 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : whole;
    }
    const named = NAMED_ENTITIES[ref.toLowerCase()];
    return named === undefined ? whole : named;
  });
}

/**
 * Parses the attributes of one start tag (the text between the tag name and `>`).
 * Names are lower-cased; values may be double-quoted, single-quoted or unquoted,
 * with any whitespace around `=`; a bare attribute gets the value ''.
 * The first occurrence of a name wins (as in HTML).
 */
export function parseAttributes(attrText) {
  const attrs = {};
  const re = /([^\s"'<>\/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  let m;
  while ((m = re.exec(attrText)) !== null) {
    const name = m[1].toLowerCase();
    if (Object.hasOwn(attrs, name)) continue;
    const raw = m[2] ?? m[3] ?? m[4] ?? '';
    attrs[name] = decodeEntities(raw);
  }
  return attrs;
}

// A start tag whose attribute values may contain `>` inside quotes.
const tagRe = (names) => new RegExp(`<(${names})\\b((?:[^>"']|"[^"]*"|'[^']*')*)>`, 'gi');

/**
 * Finds every <form> in a page. For each: method (upper-case, default GET),
 * action (raw, entity-decoded; '' when absent), and its controls:
 *   inputs:  [{ type, name, value }]  (type lower-cased, default 'text')
 *   buttons: [{ type, name, value }]  (<button> and <input type=submit>; type default 'submit')
 *   hidden:  [[name, value]]          (the hidden inputs that have a name, in order)
 */
export function parseForms(html) {
  const text = html.replace(/<!--[\s\S]*?-->/g, '');
  const forms = [];
  const formRe = /<form\b((?:[^>"']|"[^"]*"|'[^']*')*)>([\s\S]*?)<\/form\s*>/gi;
  let fm;
  while ((fm = formRe.exec(text)) !== null) {
    const fattrs = parseAttributes(fm[1]);
    const form = {
      method: (fattrs.method || 'get').trim().toUpperCase(),
      action: (fattrs.action ?? '').trim(),
      attrs: fattrs,
      inputs: [],
      buttons: [],
      hidden: [],
    };
    const ctlRe = tagRe('input|button');
    let cm;
    while ((cm = ctlRe.exec(fm[2])) !== null) {
      const tag = cm[1].toLowerCase();
      const a = parseAttributes(cm[2]);
      if (tag === 'button') {
        form.buttons.push({ type: (a.type || 'submit').toLowerCase(), name: a.name, value: a.value ?? '' });
        continue;
      }
      const type = (a.type || 'text').trim().toLowerCase();
      const ctl = { type, name: a.name, value: a.value ?? '' };
      if (type === 'submit' || type === 'image') {
        form.buttons.push(ctl);
      } else {
        form.inputs.push(ctl);
        if (type === 'hidden' && ctl.name !== undefined) form.hidden.push([ctl.name, ctl.value]);
      }
    }
    forms.push(form);
  }
  return forms;
}

/** The login form: has a `username` and a `password` field. */
export function findLoginForm(forms) {
  return forms.find(
    (f) => f.inputs.some((i) => i.name === 'username') && f.inputs.some((i) => i.name === 'password'),
  );
}

/** The consent form: has a submit control named `decision`. */
export function findConsentForm(forms) {
  return forms.find((f) => f.buttons.some((b) => b.name === 'decision'));
}

/** Visible text of a page, shortened, for error messages. */
export function pageText(html, max = 600) {
  const t = html
    .replace(/<(script|style)\b[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return decodeEntities(t).slice(0, max);
}

// ---------------------------------------------------------------------------
// Cookie jar (one origin in practice; host-only cookies, path match, expiry)
// ---------------------------------------------------------------------------

export class CookieJar {
  constructor() {
    /** key "host|path|name" -> { host, path, name, value, expires } */
    this.cookies = new Map();
  }

  /** Stores the cookies from a fetch Response that answered `url`. */
  store(url, response) {
    const u = new URL(url);
    const lines =
      typeof response.headers.getSetCookie === 'function'
        ? response.headers.getSetCookie()
        : [response.headers.get('set-cookie')].filter(Boolean);
    for (const line of lines) this.storeLine(u, line);
  }

  storeLine(u, line) {
    const [pair, ...attrParts] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq <= 0) return;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
    let path = u.pathname.replace(/\/[^/]*$/, '') || '/';
    let expires = null;
    for (const part of attrParts) {
      const i = part.indexOf('=');
      const k = (i < 0 ? part : part.slice(0, i)).trim().toLowerCase();
      const v = i < 0 ? '' : part.slice(i + 1).trim();
      if (k === 'path' && v.startsWith('/')) path = v;
      else if (k === 'max-age' && /^-?\d+$/.test(v)) expires = Date.now() + Number(v) * 1000;
      else if (k === 'expires' && expires === null) {
        const t = Date.parse(v);
        if (!Number.isNaN(t)) expires = t;
      }
    }
    const key = `${u.hostname}|${path}|${name}`;
    if (expires !== null && expires <= Date.now()) this.cookies.delete(key);
    else this.cookies.set(key, { host: u.hostname, path, name, value, expires });
  }

  /** The Cookie header value for a request to `url` ('' when none). */
  header(url) {
    const u = new URL(url);
    const now = Date.now();
    const out = [];
    for (const [key, c] of this.cookies) {
      if (c.expires !== null && c.expires <= now) {
        this.cookies.delete(key);
        continue;
      }
      if (c.host !== u.hostname) continue;
      const p = u.pathname;
      const pathOk = p === c.path || (p.startsWith(c.path) && (c.path.endsWith('/') || p[c.path.length] === '/'));
      if (pathOk) out.push(`${c.name}=${c.value}`);
    }
    return out.join('; ');
  }
}

// ---------------------------------------------------------------------------
// The login driver
// ---------------------------------------------------------------------------

function isRedirect(status) {
  return status >= 300 && status < 400;
}

function sameEndpoint(a, b) {
  return a.origin === b.origin && a.pathname === b.pathname;
}

function describeSteps(steps) {
  return steps
    .map((s, i) => `  ${i + 1}. ${s.method} ${s.url} -> ${s.status}${s.location ? ` Location: ${s.location}` : ''}`)
    .join('\n');
}

export class LoginError extends Error {
  constructor(message, steps, extra = '') {
    super(`${message}\nsteps:\n${describeSteps(steps)}${extra ? `\n${extra}` : ''}`);
    this.name = 'LoginError';
    this.steps = steps;
  }
}

function encodeForm(pairs) {
  const p = new URLSearchParams();
  for (const [k, v] of pairs) p.append(k, v);
  return p.toString();
}

/**
 * Runs the browser part of the Web Server flow.
 *
 * @param {string} authorizationUrl  the URL jsforce's getAuthorizationUrl() built
 * @param {object} opts
 * @param {string} opts.username
 * @param {string} opts.password
 * @param {string} opts.redirectUri  the client's redirect_uri; a redirect there ends the flow
 * @param {'allow'|'deny'} [opts.decision='allow']
 * @param {number} [opts.maxSteps=12]
 * @returns {Promise<{code: string|null, state: string|null, error: string|null,
 *   errorDescription: string|null, location: string, consentShown: boolean, steps: object[]}>}
 *   Rejects (LoginError) on anything unexpected, and when the redirect carries `error=`
 *   unless `decision` was 'deny'.
 */
export async function browserLogin(authorizationUrl, opts) {
  const { username, password, redirectUri, decision = 'allow', maxSteps = 12 } = opts;
  const target = new URL(redirectUri);
  const jar = new CookieJar();
  const steps = [];
  let loginPosted = false;
  let consentShown = false;
  let consentPosted = false;

  let url = authorizationUrl;
  let method = 'GET';
  let body = null;
  let referer = null;

  for (let i = 0; i < maxSteps; i++) {
    const headers = { accept: 'text/html,application/xhtml+xml' };
    const cookie = jar.header(url);
    if (cookie) headers.cookie = cookie;
    if (method === 'POST') {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers.origin = new URL(url).origin; // what a browser sends with a form POST
    }
    if (referer) headers.referer = referer;

    let res;
    try {
      res = await fetch(url, { method, headers, body, redirect: 'manual' });
    } catch (err) {
      throw new LoginError(`${method} ${url} failed: ${err.cause?.message ?? err.message}`, steps);
    }
    jar.store(url, res);
    const location = res.headers.get('location');
    steps.push({ method, url, status: res.status, location });

    if (isRedirect(res.status)) {
      if (!location) {
        throw new LoginError(`${res.status} without a Location header`, steps, await res.text());
      }
      await res.body?.cancel();
      const next = new URL(location, url);
      if (method === 'POST' && (res.status === 307 || res.status === 308)) {
        throw new LoginError(
          `the server answered a form POST with ${res.status}: a browser would re-POST the credentials; expected 302/303`,
          steps,
        );
      }
      if (sameEndpoint(next, target)) {
        const q = next.searchParams;
        const result = {
          code: q.get('code'),
          state: q.get('state'),
          error: q.get('error'),
          errorDescription: q.get('error_description'),
          location: next.href,
          consentShown,
          steps,
        };
        if (result.error && decision !== 'deny') {
          throw new LoginError(
            `redirected to the client with error=${result.error} error_description=${result.errorDescription}`,
            steps,
          );
        }
        if (!result.error && !result.code) {
          throw new LoginError('redirected to the client without code or error', steps);
        }
        return result;
      }
      referer = url;
      url = next.href;
      method = 'GET';
      body = null;
      continue;
    }

    const html = await res.text();
    if (res.status !== 200) {
      throw new LoginError(
        `unexpected ${res.status} (content-type ${res.headers.get('content-type')})`,
        steps,
        `page text: ${pageText(html)}`,
      );
    }
    const forms = parseForms(html);
    const loginForm = findLoginForm(forms);
    const consentForm = loginForm ? undefined : findConsentForm(forms);

    if (loginForm) {
      if (loginPosted) {
        throw new LoginError('the login page came back after posting the credentials (rejected?)', steps, `page text: ${pageText(html)}`);
      }
      if (loginForm.method !== 'POST') {
        throw new LoginError(`login form method is ${loginForm.method}, expected POST`, steps);
      }
      const pairs = [...loginForm.hidden, ['username', username], ['password', password]];
      const submit = loginForm.buttons.find((b) => b.type === 'submit' && b.name);
      if (submit) pairs.push([submit.name, submit.value]);
      loginPosted = true;
      referer = url;
      url = new URL(loginForm.action || url, url).href;
      method = 'POST';
      body = encodeForm(pairs);
      continue;
    }

    if (consentForm) {
      if (consentPosted) {
        throw new LoginError('the consent page came back after posting the decision', steps, `page text: ${pageText(html)}`);
      }
      if (consentForm.method !== 'POST') {
        throw new LoginError(`consent form method is ${consentForm.method}, expected POST`, steps);
      }
      const choice = consentForm.buttons.find((b) => b.name === 'decision' && b.value === decision);
      if (!choice) {
        const offered = consentForm.buttons.map((b) => `${b.name}=${b.value}`).join(', ');
        throw new LoginError(`consent form has no decision=${decision} button (has: ${offered})`, steps);
      }
      consentShown = true;
      consentPosted = true;
      referer = url;
      url = new URL(consentForm.action || url, url).href;
      method = 'POST';
      body = encodeForm([...consentForm.hidden, ['decision', decision]]);
      continue;
    }

    throw new LoginError(
      `200 page with neither a login form (username+password) nor a consent form (decision buttons); ${forms.length} form(s) found`,
      steps,
      `page text: ${pageText(html)}`,
    );
  }
  throw new LoginError(`no redirect to ${redirectUri} after ${maxSteps} steps`, steps);
}
