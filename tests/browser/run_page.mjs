// Test driver: node run_page.mjs CHROMIUM URL
// Opens URL (tests/browser/index.html as served by the test) in headless Chromium, waits for the page's
// window.sparsecResult and prints it as JSON; exits 1 with the message on stderr if the page failed.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [executablePath, url] = process.argv.slice(2);
const PAGE_TIMEOUT_MS = 300_000;

// A fresh profile per run, so no state (caches, service workers) carries over between runs.
const userDataDir = await mkdtemp(join(tmpdir(), "sparsec-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(error.message));
  page.on("console", (message) => message.type() === "error" && pageErrors.push(message.text()));
  await page.goto(url);
  try {
    await page.waitForFunction(() => window.sparsecResult !== undefined, null, { timeout: PAGE_TIMEOUT_MS });
  } catch (error) {
    throw new Error(`${error.message}\npage errors: ${pageErrors.join("\n") || "none"}`);
  }
  const result = await page.evaluate(() => window.sparsecResult);
  if (result.error) throw new Error(result.error);
  console.log(JSON.stringify(result));
} catch (error) {
  console.error(error.message);
  process.exitCode = 1;
} finally {
  await context?.close();
  await rm(userDataDir, { recursive: true, force: true });
}
