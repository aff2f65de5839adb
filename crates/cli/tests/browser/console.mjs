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
// STEP=fit: at each of VIEWPORTS, log in as ADMIN_USERNAME / ADMIN_PASSWORD, open the clients,
//   users, grants of USER_ID, the timeline of GRANT_ID and the events; prints what each
//   measured (see fit below) with its screenshot, admin-<page>-<width>.png.
//
// Environment: CHROMIUM, BASE_URL, SCREENSHOTS_DIR, STATE_FILE, STEP, and the step's variables.
import path from "node:path";
import { env, launch, viewportContext } from "./launch.mjs";

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

// What a page looks like at the current viewport: whether anything runs past the window or
// past the card, how each table's box scrolls, the timeline's smallest label as drawn on the
// screen, and the client and user cells of the events table.
async function fit(page) {
  return page.evaluate(() => {
    const card = document.querySelector("main").getBoundingClientRect();
    const tables = [...document.querySelectorAll("table")].map((table) => {
      const box = table.parentElement;
      return {
        boxOverflowX: getComputedStyle(box).overflowX,
        boxRight: box.getBoundingClientRect().right,
        boxClientWidth: box.clientWidth,
        tableWidth: table.scrollWidth,
      };
    });
    const svg = document.querySelector("svg.timeline");
    // The size a label is drawn at: its font size in the drawing's units times the drawing's
    // scale on the screen (the computed font size alone ignores the viewBox).
    const labelPx = svg
      ? Math.min(
          ...[...svg.querySelectorAll("text")].map(
            (t) => parseFloat(getComputedStyle(t).fontSize) * svg.getScreenCTM().a,
          ),
        )
      : null;
    const cell = (row, name) => {
      const shown = row.querySelector(`td.${name} > *`);
      return shown ? { text: shown.textContent, title: shown.getAttribute("title") } : null;
    };
    const events = [...document.querySelectorAll("table.events tbody tr")].map((row) => ({
      kind: row.dataset.kind,
      client: cell(row, "client"),
      user: cell(row, "user"),
    }));
    return {
      innerWidth: window.innerWidth,
      documentScrollWidth: document.documentElement.scrollWidth,
      cardRight: card.right,
      tables,
      labelPx,
      events,
    };
  });
}

const out = { screenshots: {} };
try {
  if (env("STEP") === "fit") {
    // Every console page with a table or the timeline, at each viewport, logged in once.
    out.pages = [];
    let state = null;
    for (const viewport of JSON.parse(env("VIEWPORTS"))) {
      const context = await viewportContext(browser, viewport);
      if (state) await context.addCookies(state);
      const page = await context.newPage();
      if (!state) {
        await page.goto(`${base}/admin/login`);
        await logIn(page, env("ADMIN_USERNAME"), env("ADMIN_PASSWORD"));
        state = await context.cookies();
      }
      const pages = {
        clients: "/admin/clients",
        users: "/admin/users",
        grants: `/admin/users/${env("USER_ID")}/grants`,
        timeline: `/admin/grants/${env("GRANT_ID")}`,
        events: "/admin/events",
      };
      for (const [name, where] of Object.entries(pages)) {
        await page.goto(`${base}${where}`);
        const screenshot = await shoot(page, `admin-${name}-${viewport.width}`);
        out.pages.push({ page: name, width: viewport.width, screenshot, ...(await fit(page)) });
      }
      await context.close();
    }
  } else if (env("STEP") === "create") {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    await page.goto(`${base}/admin/clients`);
    out.redirected_to = new URL(page.url()).pathname;
    out.screenshots.login = await shoot(page, "admin-login");
    out.login_status = await logIn(page, env("ADMIN_USERNAME"), env("ADMIN_PASSWORD"));
    await page.fill("#name", "Console App");
    await page.fill("#redirect_uris", env("REDIRECT_URI"));
    await page.selectOption("#create-client select[name=rotation]", "on");
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
