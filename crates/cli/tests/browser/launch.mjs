// Headless Chromium as every browser test here starts it.
import { chromium } from "playwright-core";

export function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

export function launch() {
  return chromium.launch({
    executablePath: env("CHROMIUM"),
    // No sandbox (tests run as root in CI), and none of Chromium's own calls home: this
    // machine's network is closed, and each refused connection slows the start.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

// A browser context of one viewport; a phone honours the page's viewport meta tag, as a real
// one does (a desktop ignores it).
export function viewportContext(browser, { width, height, phone }) {
  return browser.newContext({
    viewport: { width, height },
    isMobile: phone,
    hasTouch: phone,
  });
}
