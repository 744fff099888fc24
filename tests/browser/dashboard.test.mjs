// The dashboard of `backflow serve` in real headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core; no browser download):
// the page asks for the token, refuses a wrong one, then shows the syncs with
// their last run and the run-history chart, and a run's row-level errors.
// Screenshots go to tests/artifacts/.
//
// Run: tests/browser/run.sh   (or: cd tests/browser && npm install && node dashboard.test.mjs)
// Env: BACKFLOW_BIN (default build/backflow), CHROMIUM (default /usr/bin/chromium).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, appendFileSync, rmSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const bin = resolve(process.env.BACKFLOW_BIN || join(root, "build", "backflow"));
const chrome = process.env.CHROMIUM || "/usr/bin/chromium";
const artifacts = join(root, "tests", "artifacts");
const TOKEN = "browser-test-token-42";
const SYNC = "customers_to_file";

const t0 = Date.now();
function step(msg) { process.stderr.write(`  [${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`); }

async function waitFor(fn, what, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20; ; delay = Math.min(delay * 2, 200)) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, delay));
  }
}

function startServer(dir) {
  const proc = spawn(bin, ["-p", dir, "serve", "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr.on("data", d => { stderr += d; });
  const url = new Promise((resolveUrl, reject) => {
    let out = "";
    proc.stdout.on("data", d => {
      out += d;
      const m = out.match(/^listening on (http:\/\/\S+)\n/);
      if (m) resolveUrl(m[1]);
    });
    proc.on("exit", code => reject(new Error(`serve exited with ${code}: ${stderr}`)));
    setTimeout(() => reject(new Error("serve did not start")), 15000);
  });
  return { proc, url, log: () => stderr };
}

async function main() {
  if (!existsSync(chrome)) {
    console.log(`SKIP: ${chrome} not found (apt-get install chromium)`);
    return;
  }
  mkdirSync(artifacts, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), "bf-browser-"));
  let server, browser;
  try {
    step("project: backflow init, plus a row without a primary key and a duplicate");
    execFileSync(bin, ["init", dir], { stdio: "ignore" });
    appendFileSync(join(dir, "backflow.yml"),
      `    schedule: {every: 1h}\nserver: {listen: "127.0.0.1:8420", token: "${TOKEN}"}\n`);
    // users.id is an INTEGER PRIMARY KEY, so the keyless row comes from a view.
    execFileSync("python3", ["-c",
      "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); " +
      "c.execute(\"CREATE VIEW people AS SELECT id, email, first_name, last_name, country, plan, ltv FROM users " +
      "UNION ALL SELECT NULL, 'ghost@example.com', 'Ghost', 'Host', 'XX', 'free', 0 " +
      "UNION ALL SELECT 7, 'twin@example.com', 'Twin', 'Host', 'XX', 'free', 0\"); c.commit()",
      join(dir, "warehouse.db")]);
    const yml = join(dir, "backflow.yml");
    writeFileSync(yml, readFileSync(yml, "utf8").replace("FROM users", "FROM people"));

    server = startServer(dir);
    const base = await server.url;
    step(`serve at ${base}`);
    const auth = { Authorization: `Bearer ${TOKEN}` };
    // `every: 1h` runs once at start; wait for it.
    const run = await waitFor(async () => {
      const r = await (await fetch(`${base}/api/syncs/${SYNC}/runs`, { headers: auth })).json();
      return r.runs.find(x => x.status !== "running");
    }, "the first run");
    assert.equal(run.status, "partial");
    assert.equal(run.counts.rejected, 2);

    // Two more runs with changes and removals, for a history worth a chart.
    const sql = q => execFileSync("python3", ["-c",
      "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()",
      join(dir, "warehouse.db"), q]);
    for (const [q, n] of [["UPDATE users SET ltv = ltv + 1 WHERE id % 10 = 0", 2],
                          ["DELETE FROM users WHERE id % 25 = 1", 3]]) {
      sql(q);
      await fetch(`${base}/api/syncs/${SYNC}/trigger`, { method: "POST", headers: auth });
      await waitFor(async () => {
        const r = await (await fetch(`${base}/api/syncs/${SYNC}/runs`, { headers: auth })).json();
        return r.runs.filter(x => x.status !== "running").length >= n;
      }, `run ${n}`);
    }

    browser = await chromium.launch({
      executablePath: chrome,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"],
    });
    const page = await browser.newPage({ viewport: { width: 1366, height: 820 } });
    const consoleErrors = [];
    page.on("console", m => { if (m.type() === "error") consoleErrors.push(m.text()); });
    page.on("pageerror", e => consoleErrors.push(String(e)));

    step("the page asks for the token");
    await page.goto(base + "/");
    await page.waitForSelector("input#token");
    assert.equal(await page.locator("table#syncs").count(), 0);

    step("a wrong token is refused");
    await page.fill("input#token", "not-the-token");
    await page.click("button[type=submit]");
    await page.waitForSelector("#login-error");
    assert.match(await page.textContent("#login-error"), /not accepted/);

    step("the right token shows the syncs with their last run");
    await page.fill("input#token", TOKEN);
    await page.click("button[type=submit]");
    const row = page.locator(`table#syncs tr[data-sync="${SYNC}"]`);
    await row.waitFor();
    const text = await row.innerText();
    assert.match(text, /partial/);
    assert.match(text, /every 1h/);
    assert.match(text, /\b200\b/);           // removed by the last run
    assert.match(text, /in (59|60)m|in 1h/); // next run
    assert.equal(await page.locator(".chart svg g").count(), 3); // one bar per run
    await page.screenshot({ path: join(artifacts, "dashboard.png"), fullPage: true });

    step("a run's page lists its row errors by keyed hash");
    await page.goto(base + "/#/run/1");
    const err = page.locator("table#errors tbody tr");
    await err.first().waitFor();
    assert.equal(await err.count(), 2);
    const errText = await page.locator("table#errors tbody").innerText();
    assert.match(errText, /\(no key\)\s+id\s+primary key is NULL/);
    assert.match(errText, /[0-9a-f]{32}\s+id\s+duplicate primary key/);
    assert.doesNotMatch(await page.content(), /ghost@example\.com|Ghost/);
    await page.screenshot({ path: join(artifacts, "dashboard-run.png"), fullPage: true });

    step("the token is kept for the tab; Run now triggers a run; the page refreshes itself");
    await page.goto(base + "/");
    await page.reload();
    await row.waitFor();
    assert.equal(await page.locator("input#token").count(), 0);
    await row.locator("button").click();
    await waitFor(async () => {
      const r = await (await fetch(`${base}/api/syncs/${SYNC}/runs`, { headers: auth })).json();
      return r.runs.filter(x => x.status !== "running").length >= 4;
    }, "the run started from the dashboard");
    await page.waitForFunction(sync => {
      const a = document.querySelector(`table#syncs tr[data-sync="${sync}"] td:nth-child(5) a`);
      return a && a.getAttribute("href") === "#/run/4";
    }, SYNC, { timeout: 10000 });

    assert.deepEqual(consoleErrors.filter(e => !/401/.test(e)), []);
    console.log("ok - dashboard (screenshots in tests/artifacts/)");
  } finally {
    step("closing");
    if (browser) await browser.close();
    step("stopping the server");
    if (server) {
      server.proc.kill("SIGTERM");
      const code = server.proc.exitCode !== null ? server.proc.exitCode
        : await new Promise(r => server.proc.on("exit", r));
      if (code !== 0) { console.error(server.log()); process.exitCode = 1; }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch(e => { console.error("FAIL - dashboard:", e); process.exit(1); });
