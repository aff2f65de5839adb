// Opens Tessera's login, consent and error pages in headless Chromium at each viewport it is
// given, saves a full-page screenshot of each, and prints what it measured as JSON. It judges
// nothing: crates/cli/tests/integration/pages.rs starts the server, runs this, and asserts on the output.
//
// Environment: CHROMIUM (the browser's executable), VIEWPORTS (JSON: [{width, height, phone}]),
// AUTHORIZE_URL (the dev walkthrough's), REFUSED_URL (the same with an unregistered
// redirect_uri), USERNAME, PASSWORD, SCREENSHOTS_DIR.
import path from "node:path";
import { env, launch, viewportContext } from "./launch.mjs";

const browser = await launch();

const measured = [];
try {
  for (const viewport of JSON.parse(env("VIEWPORTS"))) {
    const { width } = viewport;
    const context = await viewportContext(browser, viewport);
    const page = await context.newPage();
    const look = async (name) => {
      const screenshot = path.join(env("SCREENSHOTS_DIR"), `${name}-${width}.png`);
      await page.screenshot({ path: screenshot, fullPage: true });
      const sizes = await page.evaluate(() => ({
        heading: document.querySelector("h1")?.textContent ?? "",
        innerWidth: window.innerWidth,
        documentScrollWidth: document.documentElement.scrollWidth,
        bodyScrollWidth: document.body.scrollWidth,
      }));
      measured.push({ page: name, width, screenshot, ...sizes });
    };

    await page.goto(env("AUTHORIZE_URL"));
    await look("login");
    await page.fill("#username", env("USERNAME"));
    await page.fill("#password", env("PASSWORD"));
    await page.click("button[type=submit]");
    await page.waitForURL(/\/services\/oauth2\/authorize\/consent\?/);
    await look("consent");
    await page.goto(env("REFUSED_URL"));
    await look("error");
    await context.close();
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(measured));
