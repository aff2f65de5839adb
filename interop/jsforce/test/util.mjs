// Shared helpers for the jsforce interop tests: environment, timing, and an
// HTTP trace of what jsforce sent and got, printed when an assertion fails.

export function env(name, { required = true } = {}) {
  const v = process.env[name] ?? '';
  if (required && !v) throw new Error(`environment variable ${name} is not set (run the tests through run.sh)`);
  return v;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Access-token lifetime the fixtures were created with (run.sh: --access-token-ttl 3s). */
export const ACCESS_TTL_MS = Number(process.env.TESSERA_ACCESS_TTL_MS || 3000);
/**
 * How long to leave an access token unused before it must be rejected: the TTL plus a
 * margin for second-granularity expiry times. Measured from the token's last use, so an
 * idle-based timeout (the spec's default) has run out as well.
 */
export const EXPIRY_WAIT_MS = ACCESS_TTL_MS + Number(process.env.TESSERA_EXPIRY_MARGIN_MS || 1000);

/** Sleeps until `EXPIRY_WAIT_MS` have passed since `lastUse` (a Date.now() value). */
export async function waitForExpiry(lastUse) {
  const left = lastUse + EXPIRY_WAIT_MS - Date.now();
  if (left > 0) await sleep(left);
}

const clip = (s, n = 400) => {
  const str = typeof s === 'string' ? s : s === undefined ? '' : String(s);
  return str.length > n ? `${str.slice(0, n)}…(${str.length} chars)` : str;
};

/**
 * Records every HTTP exchange a jsforce Connection (and its OAuth2 object) makes, by
 * wrapping their transports' httpRequest. Diagnostics only: the returned promise is
 * the original one, so jsforce behaves exactly as without the wrapper.
 * Returns the array of entries; `formatTrace(entries)` renders it.
 */
export function traceConnection(conn, label = 'conn') {
  const entries = [];
  const wrap = (holder, who) => {
    const transport = holder?._transport;
    if (!transport || typeof transport.httpRequest !== 'function' || transport.__traced) return;
    const orig = transport.httpRequest.bind(transport);
    transport.httpRequest = (req, options) => {
      // Set by within() on timeout: ends a runaway refresh loop instead of letting it
      // hammer the server for the rest of the run.
      if (entries.stopped) throw new Error('HTTP stopped by the test after a timeout');
      const entry = { who, at: Date.now(), method: req.method, url: req.url, reqBody: req.body };
      entries.push(entry);
      const p = orig(req, options);
      p.then(
        (res) => {
          entry.status = res.statusCode;
          entry.contentType = res.headers?.['content-type'];
          entry.wwwAuthenticate = res.headers?.['www-authenticate'];
          entry.resBody = res.body;
        },
        (err) => {
          entry.error = err?.message ?? String(err);
        },
      );
      return p;
    };
    transport.__traced = true;
  };
  wrap(conn, label);
  wrap(conn.oauth2, `${label}.oauth2`);
  return entries;
}

/** Same as traceConnection, for a bare jsforce.OAuth2 object. */
export function traceOAuth2(oauth2, label = 'oauth2') {
  return traceConnection({ _transport: oauth2._transport }, label);
}

export function formatTrace(entries, { head = 12, tail = 6 } = {}) {
  if (!entries?.length) return '  (no HTTP traffic recorded)';
  const t0 = entries[0].at;
  const shown =
    entries.length <= head + tail + 1
      ? entries
      : [...entries.slice(0, head), { skipped: entries.length - head - tail }, ...entries.slice(-tail)];
  return shown
    .map((e) => {
      if (e.skipped) return `  … ${e.skipped} more exchanges …`;
      const body = typeof e.reqBody === 'string' ? ` body=${clip(redactForm(e.reqBody), 300)}` : '';
      const res =
        e.error !== undefined
          ? `transport error: ${e.error}`
          : e.status === undefined
            ? '(no response yet)'
            : `${e.status} ${e.contentType ?? ''}${e.wwwAuthenticate ? ` www-authenticate=${e.wwwAuthenticate}` : ''} ${clip(e.resBody)}`;
      return `  +${e.at - t0}ms [${e.who}] ${e.method} ${e.url}${body}\n      -> ${res}`;
    })
    .join('\n');
}

/** Shortens token-like values in a form body so traces stay readable. */
function redactForm(body) {
  return body.replace(/((?:refresh_token|code|code_verifier|client_secret)=)([^&]{12})[^&]+/g, '$1$2…');
}

/** A readable account of an error jsforce threw. */
export function describeError(err) {
  if (!err) return String(err);
  const parts = [`${err.name}: ${err.message}`];
  if (err.errorCode && err.errorCode !== err.name) parts.push(`errorCode=${err.errorCode}`);
  if (err.data !== undefined) parts.push(`data=${clip(JSON.stringify(err.data))}`);
  return parts.join(' ');
}

/** Awaits `promise`; on rejection fails with the error and the HTTP trace. */
export async function expectOk(promise, what, entries) {
  try {
    return await promise;
  } catch (err) {
    const e = new Error(`${what} failed: ${describeError(err)}\nHTTP trace:\n${formatTrace(entries)}`);
    e.cause = err;
    throw e;
  }
}

/** Awaits `promise`, which must reject; returns the error, or fails with the trace. */
export async function expectReject(promise, what, entries) {
  let value;
  try {
    value = await promise;
  } catch (err) {
    return err;
  }
  throw new Error(`${what} was expected to fail but succeeded with ${clip(JSON.stringify(value))}\nHTTP trace:\n${formatTrace(entries)}`);
}

/**
 * Rejects with a diagnostic if `promise` has not settled within `ms` (jsforce retries a
 * request after every refresh with no cap, so a server that 401s fresh tokens loops).
 */
export function within(ms, promise, what, entries) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      if (entries) entries.stopped = true;
      const n = entries?.length ?? 0;
      reject(new Error(`${what}: no answer within ${ms} ms (refresh loop? ${n} HTTP exchanges)\nHTTP trace:\n${formatTrace(entries)}`));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
