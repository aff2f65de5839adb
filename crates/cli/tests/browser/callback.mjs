// Opens the page `tessera login`'s loopback listener answers the browser with (CALLBACK_URL,
// the redirect the authorization server sent) in headless Chromium at each viewport, saves a
// full-page screenshot of each, and prints what it measured as JSON. The listener answers that
// URL once, so the first viewport loads it and the others are given the same HTML: the page has
// nothing else to load. It judges nothing: crates/cli/tests/integration/client.rs asserts.
//
// Environment: CHROMIUM, VIEWPORTS (JSON: [{width, height, phone}]), CALLBACK_URL, NAME (the
// screenshots' prefix), SCREENSHOTS_DIR.
import path from "node:path";
import { env, launch, viewportContext } from "./launch.mjs";

const browser = await launch();

const measured = [];
let html = null;
let status = null;
try {
  for (const viewport of JSON.parse(env("VIEWPORTS"))) {
    const { width } = viewport;
    const context = await viewportContext(browser, viewport);
    const page = await context.newPage();
    if (html === null) {
      const response = await page.goto(env("CALLBACK_URL"));
      status = response.status();
      html = await page.content();
    } else {
      await page.setContent(html);
    }
    const screenshot = path.join(env("SCREENSHOTS_DIR"), `${env("NAME")}-${width}.png`);
    await page.screenshot({ path: screenshot, fullPage: true });
    const seen = await page.evaluate(() => {
      const main = document.querySelector("main");
      const card = main ? getComputedStyle(main) : null;
      return {
        heading: document.querySelector("h1")?.textContent ?? "",
        text: main?.innerText ?? document.body.innerText,
        cardBackground: card?.backgroundColor ?? "",
        cardBorderRadius: card?.borderRadius ?? "",
        pageBackground: getComputedStyle(document.body).backgroundColor,
        fontFamily: getComputedStyle(document.body).fontFamily,
        innerWidth: window.innerWidth,
        documentScrollWidth: document.documentElement.scrollWidth,
      };
    });
    measured.push({ width, status, screenshot, ...seen });
    await context.close();
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(measured));
