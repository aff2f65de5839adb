// Runs the single-page app of spa/index.html in headless Chromium, once for each start URL it
// is given: the app redirects to Tessera's authorization pages, where this script logs in and
// allows access as a person would; back on the app's own origin, the app exchanges the code,
// calls the API and refreshes with fetch, and writes what happened into the page. This script
// prints each run's outcome as the page shows it, as JSON. It judges nothing:
// crates/cli/tests/integration/cors.rs starts the servers, runs this, and asserts on the output.
//
// Environment: CHROMIUM (the browser's executable), RUNS (JSON: [{name, url}]), USERNAME,
// PASSWORD.
import { env, launch } from "./launch.mjs";

const browser = await launch();
const outcomes = [];
try {
  for (const { name, url } of JSON.parse(env("RUNS"))) {
    // A context of its own: no session cookie carried from one run to the next.
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(url);
    await page.waitForSelector("#username");
    await page.fill("#username", env("USERNAME"));
    await page.fill("#password", env("PASSWORD"));
    await page.click("button[type=submit]");
    // The consent page, unless this user already allowed this client.
    const allow = page.locator("button[name=decision][value=allow]");
    const result = page.locator("#result[data-done]");
    await allow.or(result).first().waitFor();
    if (await allow.count()) await allow.click();
    await result.waitFor();
    outcomes.push({ name, page: JSON.parse(await result.textContent()) });
    await context.close();
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(outcomes));
