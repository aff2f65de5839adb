// The admin console in headless Chromium, in two steps that crates/cli/tests/integration/console.rs runs
// around its own token requests. It judges nothing: it clicks, saves a screenshot of each page
// and prints what it saw as JSON; the Rust test asserts on that.
//
// STEP=create: log in to /admin as ADMIN_USERNAME / ADMIN_PASSWORD, create a rotating client
//   in the console; prints {client_id, client_secret}. The console session is kept in STATE_FILE.
// STEP=inspect: with that session, open the users, the grants of USER_ID, the timeline of
//   GRANT_TO_INSPECT (its markers, in document order), revoke GRANT_TO_REVOKE from its timeline,
//   the events page; then log in as NON_ADMIN_USERNAME / NON_ADMIN_PASSWORD in a fresh context.
//
// Environment: CHROMIUM, BASE_URL, SCREENSHOTS_DIR, STATE_FILE, STEP, and the step's variables.
import path from "node:path";
import { env, launch } from "./launch.mjs";

const base = env("BASE_URL");
const browser = await launch();
const viewport = { width: 1200, height: 900 };

async function shoot(page, name) {
  const file = path.join(env("SCREENSHOTS_DIR"), `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

// Submits the console's login form; returns the status of the POST's response.
async function logIn(page, username, password) {
  await page.fill("#username", username);
  await page.fill("#password", password);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/admin/login") && r.request().method() === "POST"),
    page.click("button[type=submit]"),
  ]);
  await page.waitForLoadState();
  return response.status();
}

// The timeline's markers, in document order.
async function markers(page) {
  return page.$$eval("svg.timeline g.event", (groups) =>
    groups.map((g) => ({
      kind: g.dataset.kind,
      at: Number(g.dataset.at),
      x: Number(g.querySelector("circle").getAttribute("cx")),
      title: g.querySelector("title").textContent,
    })),
  );
}

const out = { screenshots: {} };
try {
  if (env("STEP") === "create") {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    await page.goto(`${base}/admin/clients`);
    out.redirected_to = new URL(page.url()).pathname;
    out.screenshots.login = await shoot(page, "admin-login");
    out.login_status = await logIn(page, env("ADMIN_USERNAME"), env("ADMIN_PASSWORD"));
    await page.fill("#name", "Console App");
    await page.fill("#redirect_uris", env("REDIRECT_URI"));
    await page.check("#create-client input[name=rotate_refresh_tokens]");
    await page.click("#create-client button[type=submit]");
    await page.waitForSelector("#client-secret");
    out.client_id = (await page.textContent("#client-id")).trim();
    out.client_secret = (await page.textContent("#client-secret")).trim();
    await page.goto(`${base}/admin/clients`);
    out.screenshots.clients = await shoot(page, "admin-clients");
    await page.click(`a[href="/admin/clients/${out.client_id}"]`);
    out.screenshots.client = await shoot(page, "admin-client");
    await context.storageState({ path: env("STATE_FILE") });
    await context.close();
  } else {
    const context = await browser.newContext({ viewport, storageState: env("STATE_FILE") });
    const page = await context.newPage();
    await page.goto(`${base}/admin/users`);
    out.screenshots.users = await shoot(page, "admin-users");
    await page.goto(`${base}/admin/users/${env("USER_ID")}/grants`);
    out.screenshots.grants = await shoot(page, "admin-grants");
    await page.goto(`${base}/admin/grants/${env("GRANT_TO_INSPECT")}`);
    out.inspected = await markers(page);
    out.screenshots.timeline = await shoot(page, "admin-timeline");
    await page.goto(`${base}/admin/grants/${env("GRANT_TO_REVOKE")}`);
    await page.click(`form[action$="/revoke"] button`);
    await page.waitForLoadState();
    out.revoked = await markers(page);
    out.revoked_page_says = await page.textContent("main");
    out.screenshots.revoked = await shoot(page, "admin-timeline-revoked");
    await page.goto(`${base}/admin/events`);
    out.event_kinds = await page.$$eval("table.events tbody tr", (rows) =>
      rows.map((r) => r.dataset.kind),
    );
    out.screenshots.events = await shoot(page, "admin-events");
    await context.close();

    const stranger = await browser.newContext({ viewport });
    const other = await stranger.newPage();
    await other.goto(`${base}/admin/login`);
    out.non_admin_status = await logIn(other, env("NON_ADMIN_USERNAME"), env("NON_ADMIN_PASSWORD"));
    out.screenshots.forbidden = await shoot(other, "admin-forbidden");
    await stranger.close();
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out));
