// The dashboard in Debian's chromium, headless, through playwright-core (run by http_check.py):
//   node http_dashboard.js URL CHROMIUM JOB OPERATORS SCREENSHOT
// The job list must show JOB running, the checkpoint chart must have points and the graph a box
// per operator (OPERATORS); the page is saved to SCREENSHOT. Exits 1 with the reason otherwise.
const { chromium } = require("playwright-core");

async function main() {
  const [url, executablePath, job, operators, screenshot] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(url);
    const row = page.locator(`#jobs tr[id="job-${job}"]`);
    await row.waitFor({ timeout: 30000 });
    const status = await row.getAttribute("data-status");
    if (status !== "RUNNING") throw new Error(`the job list shows ${job} as ${status}`);
    // The chart fills after the detail loads; rates after a second poll (3 s).
    await page.waitForFunction(() => document.querySelectorAll("#checkpoint-chart .checkpoint-point").length >= 2, null, { timeout: 30000 });
    await page.waitForFunction(() => [...document.querySelectorAll("#graph .vertex text")].some((t) => /in [0-9,]+\/s/.test(t.textContent)), null, { timeout: 30000 });
    const points = await page.locator("#checkpoint-chart .checkpoint-point").count();
    const vertices = await page.locator("#graph .vertex").count();
    if (vertices !== Number(operators)) throw new Error(`the graph shows ${vertices} operators, not ${operators}`);
    const checkpointRows = await page.locator("#checkpoints tbody tr").count();
    if (checkpointRows < 2) throw new Error(`the checkpoint table has ${checkpointRows} rows`);
    if (errors.length) throw new Error("script errors on the page: " + errors.join("; "));
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`job ${job} RUNNING in the list, ${points} checkpoint points, ${vertices} operators with rates`);
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
