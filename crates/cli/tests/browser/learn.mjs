// The /learn playground in headless Chromium, for crates/cli/tests/integration/learn.rs. It
// judges nothing: it takes every step once (logging in as USERNAME / PASSWORD through the real
// login and consent pages), reads the server's view after each, saves screenshots, and prints
// what it saw as JSON; the Rust test asserts on that.
//
// Environment: CHROMIUM, BASE_URL, SCREENSHOTS_DIR, USERNAME, PASSWORD, WAIT_MS (a little more
// than the playground client's retry window).
import path from "node:path";
import { env, launch, viewportContext } from "./launch.mjs";

const base = env("BASE_URL");
const waitMs = Number(env("WAIT_MS"));
const browser = await launch();
const context = await viewportContext(browser, { width: 1280, height: 1000, phone: false });
const page = await context.newPage();
// A script the page's policy refuses, or any error of the page's own script, shows here.
const problems = [];
page.on("console", (message) => {
  if (message.type() === "error") problems.push(message.text());
});
page.on("pageerror", (error) => problems.push(String(error)));

// The window as the learner sees it (the page grows with every step: a full-page shot would be
// mostly old steps).
async function shoot(target, name) {
  const file = path.join(env("SCREENSHOTS_DIR"), `${name}.png`);
  await target.screenshot({ path: file });
  return file;
}

// What the page shows now: the server's view and the newest step.
async function view() {
  return page.evaluate(() => {
    const latest = document.querySelector("article.step");
    return {
      family: document.querySelector("[data-family]")?.dataset.family ?? null,
      window: document.querySelector("[data-window]")?.dataset.window ?? null,
      generations: [...document.querySelectorAll("tr[data-generation]")].map((row) => ({
        n: Number(row.dataset.generation),
        state: row.dataset.state,
      })),
      timeline: [...document.querySelectorAll("svg.timeline g.event")].map((g) => g.dataset.kind),
      step: latest?.dataset.step ?? null,
      statuses: latest
        ? [...latest.querySelectorAll(".exchange[data-status]")].map((e) => Number(e.dataset.status))
        : [],
      outcome: latest?.querySelector(".outcome")?.textContent ?? null,
      lesson: latest?.querySelector(".lesson")?.textContent ?? null,
      response: latest?.querySelector("pre.response")?.textContent ?? null,
      claims: latest?.querySelector("pre.claims")?.textContent ?? null,
      plain: latest?.querySelector("pre.plain")?.textContent ?? null,
      sealed: latest?.querySelector("pre.sealed")?.textContent ?? null,
    };
  });
}

// Clicks a step's button and waits for the page it ends on.
async function click(step) {
  await Promise.all([page.waitForNavigation(), page.click(`button[data-button="${step}"]`)]);
  await page.waitForLoadState();
}

// After a click that sends the browser to the authorization server: log in if asked, allow
// if asked, and wait until it is back on /learn.
async function logInAndAllow() {
  if (await page.$("#password")) {
    await page.fill("#username", env("USERNAME"));
    await page.fill("#password", env("PASSWORD"));
    await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  }
  if (await page.$("button[value=allow]")) {
    await Promise.all([page.waitForNavigation(), page.click("button[value=allow]")]);
  }
  await page.waitForURL(`${base}/learn`);
}

const seen = {};
await page.goto(`${base}/learn`);
seen.start = await view();

// The flow, one step at a time, with openid for an ID token.
await page.check("input[name=openid]");
await click("authorize");
await logInAndAllow();
seen.authorize = await view();
await click("exchange");
seen.exchange = await view();
// The countdown script runs (the page's policy lets it load): a second later, the access
// token's countdown reads less.
const countdownText = () => page.$eval(".client-state .countdown", (span) => span.textContent);
const before = await countdownText();
await page.waitForTimeout(1100);
seen.countdown = [before, await countdownText()];
await click("api");
seen.api = await view();
await click("expire");
seen.expire = await view();
await click("refresh");
seen.refresh = await view();
await click("replay");
seen.replayInside = await view();
const desktop = await shoot(page, "learn");
await page.waitForTimeout(waitMs);
await click("replay");
seen.replayAfter = await view();
await click("revoke");
seen.revoke = await view();

// The mistakes, one click each (the two that log in come back through the login pages).
await click("mistake-scope");
await logInAndAllow();
seen.mistakeScope = await view();
await click("mistake-expired");
await logInAndAllow();
seen.mistakeExpired = await view();
await click("mistake-storage");
seen.mistakeStorage = await view();
await page.check("input[name=refresh_scope]");
await click("authorize");
await logInAndAllow();
await click("exchange");
await click("mistake-keep");
seen.mistakeKeep = await view();

// The same learner on a phone: nothing wider than the window.
const phoneContext = await browser.newContext({
  viewport: { width: 375, height: 800 },
  isMobile: true,
  hasTouch: true,
  storageState: await context.storageState(),
});
const phone = await phoneContext.newPage();
await phone.goto(`${base}/learn`);
const phoneFit = await phone.evaluate(() => ({
  innerWidth: window.innerWidth,
  scrollWidth: document.documentElement.scrollWidth,
  widest: Math.max(
    ...[...document.querySelectorAll("main *")]
      .filter((e) => !e.closest(".scroll"))
      .map((e) => e.getBoundingClientRect().right),
  ),
}));
// The phone's shot from the server's view down: the buttons above it are the desktop's.
await phone.$eval("#server-view", (view) => view.scrollIntoView());
const phoneShot = await shoot(phone, "learn-375");

// With DPoP: the client holds a key, and the token response and the server's view say so.
await page.check("input[name=dpop]");
await click("authorize");
await logInAndAllow();
await click("exchange");
seen.dpop = {
  ...(await view()),
  clientKey: await page.$eval("[data-client-key]", (td) => td.dataset.clientKey ?? null),
  binding: await page.$eval(".dpop-binding", (div) => div.textContent),
};

console.log(
  JSON.stringify({ seen, phoneFit, problems, screenshots: { desktop, phone: phoneShot } }),
);
await browser.close();
