// The end user's connected-apps page (/services/oauth2/apps) in headless Chromium. It judges
// nothing: crates/cli/tests/integration/apps.rs starts the server, makes the grants, runs this,
// and asserts on what it prints as JSON.
//
// Opens the page signed out (it must send the browser to its login), logs in as USERNAME /
// PASSWORD (it must come back to the page), reads the apps and grants listed, revokes
// GRANT_TO_REVOKE with its Revoke button, and reads the list again. A screenshot of each step
// goes to SCREENSHOTS_DIR (apps-login.png, apps-before.png, apps-after.png).
//
// Environment: CHROMIUM, BASE_URL, USERNAME, PASSWORD, GRANT_TO_REVOKE, SCREENSHOTS_DIR.
import path from "node:path";
import { env, launch } from "./launch.mjs";

const base = env("BASE_URL");
const browser = await launch();

async function shoot(page, name) {
  const file = path.join(env("SCREENSHOTS_DIR"), `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

// The apps the page lists, each with its grants as the page shows them.
async function listed(page) {
  return page.$$eval("section.app", (sections) =>
    sections.map((section) => ({
      name: section.querySelector("h2").textContent,
      client_id: section.dataset.clientId,
      grants: [...section.querySelectorAll("li.grant")].map((li) => ({
        id: li.dataset.grantId,
        state: li.dataset.state,
        scope: li.querySelector(".scope").textContent,
        detail: li.querySelector(".detail").textContent,
        revoke_button: li.querySelector("form button") !== null,
      })),
    })),
  );
}

const seen = {};
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
  const page = await context.newPage();

  await page.goto(`${base}/services/oauth2/apps`);
  seen.redirected_to = new URL(page.url()).pathname;
  seen.login_heading = await page.textContent("h1");
  seen.login_screenshot = await shoot(page, "apps-login");
  await page.fill("#username", env("USERNAME"));
  await page.fill("#password", env("PASSWORD"));
  await Promise.all([page.waitForURL(`${base}/services/oauth2/apps`), page.click("button[type=submit]")]);
  seen.after_login = new URL(page.url()).pathname;
  seen.heading = await page.textContent("h1");
  seen.before = await listed(page);
  seen.before_screenshot = await shoot(page, "apps-before");

  // The Revoke button POSTs, and the answer sends the browser back to the page (already the
  // page's URL, so wait for that reload, not for a URL).
  const grant = env("GRANT_TO_REVOKE");
  const [revoked] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(`/grants/${grant}/revoke`) && r.request().method() === "POST"),
    page.waitForResponse((r) => r.url() === `${base}/services/oauth2/apps` && r.request().method() === "GET"),
    page.click(`li.grant[data-grant-id="${grant}"] form button`),
  ]);
  seen.revoke_status = revoked.status();
  await page.waitForLoadState();
  seen.after_revoke = new URL(page.url()).pathname;
  seen.after = await listed(page);
  seen.after_screenshot = await shoot(page, "apps-after");
  await context.close();
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(seen));
