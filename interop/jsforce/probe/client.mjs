// A jsforce app under `tessera probe` (docs/probe.md): it resumes the session probe minted,
// from the environment, and makes TESSERA_PROBE_CALLS API calls TESSERA_PROBE_PAUSE_MS apart,
// with jsforce's own token handling (a refresh on the 401 of an expired access token). The
// first failure ends it with a non-zero status, as a script that needs a new login would.
import jsforce from 'jsforce';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this under tessera probe`);
  return value;
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * keepRotated: whether the app saves the refresh token a rotating server answers a refresh
 * with. jsforce itself does not: its Connection keeps the refresh token it was given.
 */
export async function run({ keepRotated }) {
  const url = env('TESSERA_PROBE_URL');
  const oauth2 = new jsforce.OAuth2({
    clientId: env('TESSERA_PROBE_CLIENT_ID'),
    clientSecret: env('TESSERA_PROBE_CLIENT_SECRET'),
    redirectUri: 'http://127.0.0.1/callback',
    loginUrl: url,
  });
  const conn = new jsforce.Connection({
    oauth2,
    instanceUrl: url,
    accessToken: env('TESSERA_PROBE_ACCESS_TOKEN'),
    refreshToken: env('TESSERA_PROBE_REFRESH_TOKEN'),
  });
  if (keepRotated) {
    conn.on('refresh', (_accessToken, response) => {
      if (response?.refresh_token) conn.refreshToken = response.refresh_token;
    });
  }
  const calls = Number(env('TESSERA_PROBE_CALLS'));
  const pause = Number(env('TESSERA_PROBE_PAUSE_MS'));
  for (let call = 0; call < calls; call += 1) {
    if (call > 0) await sleep(pause);
    try {
      await conn.request(env('TESSERA_PROBE_API_PATH'));
    } catch (error) {
      console.error(`call ${call + 1} of ${calls} failed: ${error.message}`);
      process.exit(1);
    }
  }
}
