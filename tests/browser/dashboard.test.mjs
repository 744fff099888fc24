// The dashboard of `backflow serve` in real headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core; no browser download):
// the page asks for the token, refuses a wrong one, then shows the syncs with
// their last run and the run-history chart, and a run's row-level errors.
// With 65 syncs at 1280x800, 1400x900 and 1920x1080 the page never scrolls
// sideways and every Run now button is visible (issue 16); the filter box
// narrows the table; the run chart's axis follows recent runs with a break
// mark on the first full load; axis labels keep their size on the sync page;
// Pause/Resume work from the page. Screenshots go to tests/artifacts/.
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
const N_SYNCS = 65;
const VIEWPORTS = [[1280, 800], [1400, 900], [1920, 1080]];
const HOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/* tests/integration/webhook_receiver.py, slowed down. */
async function startReceiver(dir) {
  const portFile = join(dir, "receiver.port");
  const proc = spawn("python3", [join(root, "tests", "integration", "webhook_receiver.py"), "--port", "0",
    "--secret", HOOK_SECRET, "--port-file", portFile, "--quiet", "--faults", JSON.stringify({ delay_ms: 150 })],
    { stdio: "ignore" });
  const port = await waitFor(() => existsSync(portFile) && readFileSync(portFile, "utf8").trim(), "the receiver's port");
  return { proc, url: `http://127.0.0.1:${port}/in` };
}

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

/* 64 more syncs beside the example's: long names, several destinations and types, a few that
 * fail (a webhook on a closed port), one live sync (not pausable). */
function manySyncs(slowUrl) {
  let dests = "  hook_down: {type: webhook, url: \"http://127.0.0.1:9/backflow\", max_retries: 0, timeout: 2s}\n" +
    `  hook_slow: {type: webhook, url: "${slowUrl}", signing_secret: "${HOOK_SECRET}"}\n`;
  for (let d = 0; d < 6; d++) dests += `  files_${d}: {type: file, path: out/f${d}.jsonl}\n`;
  let syncs = "";
  // Run by hand only, into a receiver that takes 150 ms a batch: a run long enough to watch.
  syncs += "  slow_hook:\n    model: customers\n    destination: hook_slow\n    match: {customer_id: id}\n" +
    "    fields: {email: email}\n    batch_size: 100\n";
  for (let i = 2; i < N_SYNCS; i++) {
    const failing = i % 16 === 0;
    const name = i % 7 === 0 ? `customers_segment_with_a_rather_long_descriptive_name_${i}` : `sync_${String(i).padStart(2, "0")}`;
    syncs += `  ${name}:\n    model: customers\n    destination: ${failing ? "hook_down" : "files_" + (i % 6)}\n` +
      `    match: {customer_id: id}\n    fields: {email: email, plan: plan}\n` +
      `    schedule: {every: ${failing ? "2s" : i % 3 ? "1h" : "30m"}}\n`;
  }
  return {dests, syncs};
}

async function noSideScroll(page, what) {
  const m = await page.evaluate(() => ({sw: document.documentElement.scrollWidth, cw: document.documentElement.clientWidth,
    bw: document.body.scrollWidth}));
  assert.ok(m.sw <= m.cw && m.bw <= m.cw, `${what}: scrolls sideways (scrollWidth ${m.sw}/${m.bw} > clientWidth ${m.cw})`);
}

async function main() {
  if (!existsSync(chrome)) throw new Error(`${chrome} not found (apt-get install chromium): the browser test cannot run`);
  mkdirSync(artifacts, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), "bf-browser-"));
  let server, browser, receiver;
  try {
    step("project: backflow init, plus a row without a primary key and a duplicate, and 64 more syncs");
    execFileSync(bin, ["init", dir], { stdio: "ignore" });
    receiver = await startReceiver(dir);
    const more = manySyncs(receiver.url);
    const yml = join(dir, "backflow.yml");
    let conf = readFileSync(yml, "utf8").replace("FROM users", "FROM people");
    conf = conf.replace("syncs:\n", `${more.dests}syncs:\n`);
    conf += `    schedule: {every: 1h}\n${more.syncs}server: {listen: "127.0.0.1:8420", token: "${TOKEN}"}\n`;
    writeFileSync(yml, conf);
    // users.id is an INTEGER PRIMARY KEY, so the keyless row comes from a view.
    execFileSync("python3", ["-c",
      "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); " +
      "c.execute(\"CREATE VIEW people AS SELECT id, email, first_name, last_name, country, plan, ltv FROM users " +
      "UNION ALL SELECT NULL, 'ghost@example.com', 'Ghost', 'Host', 'XX', 'free', 0 " +
      "UNION ALL SELECT 7, 'twin@example.com', 'Twin', 'Host', 'XX', 'free', 0\"); c.commit()",
      join(dir, "warehouse.db")]);

    server = startServer(dir);
    const base = await server.url;
    step(`serve at ${base}`);
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const getJson = async p => (await fetch(base + p, { headers: auth })).json();
    // `every: 1h` runs once at start; wait for it.
    const run = await waitFor(async () => (await getJson(`/api/syncs/${SYNC}/runs`)).runs.find(x => x.status !== "running"),
      "the first run", 60000);
    assert.equal(run.status, "partial");
    assert.equal(run.counts.rejected, 2);

    // Small incremental runs after the full load: the chart's axis must follow them.
    const sql = q => execFileSync("python3", ["-c",
      "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()",
      join(dir, "warehouse.db"), q]);
    const changes = [["UPDATE users SET ltv = ltv + 1 WHERE id % 500 = 0", 10],
      ["UPDATE users SET ltv = ltv + 1 WHERE id % 250 = 0", 20], ["UPDATE users SET ltv = ltv + 1 WHERE id % 400 = 0", 12],
      ["DELETE FROM users WHERE id % 300 = 1", 17]];
    for (let i = 0; i < changes.length; i++) {
      sql(changes[i][0]);
      await fetch(`${base}/api/syncs/${SYNC}/trigger`, { method: "POST", headers: auth });
      await waitFor(async () => (await getJson(`/api/syncs/${SYNC}/runs`)).runs.filter(x => x.status !== "running").length >= i + 2,
        `run ${i + 2}`, 30000);
    }
    step("every sync ran once, the failing ones at least twice");
    await waitFor(async () => {
      const d = await getJson("/api/syncs");
      return d.syncs.length === N_SYNCS && d.syncs.every(s => s.name === "slow_hook" || (s.last_run && s.last_run.status !== "running")) &&
        d.syncs.filter(s => s.health.consecutive_failures >= 2).length >= 4;
    }, "a run of every sync", 90000);

    browser = await chromium.launch({
      executablePath: chrome,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"],
    });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
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

    step("the right token shows the syncs with their last run, destination type, health");
    await page.fill("input#token", TOKEN);
    await page.click("button[type=submit]");
    const row = page.locator(`table#syncs tr[data-sync="${SYNC}"]`);
    await row.waitFor();
    const text = await row.innerText();
    assert.match(text, /partial/);
    assert.match(text, /every 1h/);
    assert.match(text, /\bfile\b/);              // destination type
    assert.match(text, /−17/);                  // removed by the last run
    assert.match(text, /in (59|60)m|in 1h/);    // next run
    assert.equal(await page.locator("table#syncs tbody tr").count(), N_SYNCS);
    const failRow = page.locator(`table#syncs tr[data-sync="sync_16"]`);
    assert.match(await failRow.locator("td.failing-since").innerText(), /ago[\s\S]*\d+ failed in a row/);
    assert.match(await failRow.innerText(), /webhook/);
    assert.match(await failRow.locator("td.last-success").innerText(), /never/);

    for (const [w, hgt] of VIEWPORTS) {
      step(`${N_SYNCS} syncs at ${w}x${hgt}: no sideways scroll, every Run now visible`);
      await page.setViewportSize({ width: w, height: hgt });
      await page.waitForTimeout(100);
      await noSideScroll(page, `overview at ${w}px`);
      const buttons = page.locator("table#syncs tbody tr button.run-now");
      assert.equal(await buttons.count(), N_SYNCS);
      const offscreen = await page.evaluate(() => [...document.querySelectorAll("table#syncs button.run-now")]
        .map(b => b.getBoundingClientRect()).filter(r => r.width === 0 || r.left < 0 || r.right > document.documentElement.clientWidth).length);
      assert.equal(offscreen, 0, `${offscreen} Run now buttons cut off at ${w}px`);
      for (const i of [0, Math.floor(N_SYNCS / 2), N_SYNCS - 1]) {
        await buttons.nth(i).scrollIntoViewIfNeeded();
        assert.ok(await buttons.nth(i).isVisible(), `Run now of row ${i} visible at ${w}px`);
      }
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: join(artifacts, `dashboard-${w}x${hgt}.png`), fullPage: false, animations: "disabled", timeout: 60000 });
    }
    await page.setViewportSize({ width: 1400, height: 900 });

    step("the filter box narrows the table and survives refreshes");
    await page.fill("input#filter", "rather_long");
    const visible = () => page.locator("table#syncs tbody tr:not([hidden])").count();
    assert.equal(await visible(), 9); // i = 7, 14, ..., 63
    await page.waitForTimeout(5600);  // one refresh
    assert.equal(await page.inputValue("input#filter"), "rather_long");
    assert.equal(await visible(), 9);
    await page.fill("input#filter", "webhook");
    assert.equal(await visible(), 5); // 16, 32, 48, 64 and slow_hook
    await page.fill("input#filter", "");
    await page.selectOption("select#status-filter", "failing");
    assert.equal(await visible(), 4);
    await page.selectOption("select#status-filter", "all");
    assert.equal(await visible(), N_SYNCS);

    step("a running run's progress is live on the page");
    await fetch(`${base}/api/syncs/slow_hook/trigger`, { method: "POST", headers: auth });
    const prog = page.locator(`table#syncs tr[data-sync="slow_hook"] .progress-text`);
    await prog.waitFor({ timeout: 15000 });
    const sentOf = t => Number((t.match(/([\d,]+) sent/) || ["", "-1"])[1].replace(/,/g, ""));
    const first = sentOf(await prog.innerText());
    await page.waitForFunction(([sel, n]) => {
      const e = document.querySelector(sel);
      const m = e && e.textContent.match(/([\d,]+) sent/);
      return m && Number(m[1].replace(/,/g, "")) > n;
    }, [`table#syncs tr[data-sync="slow_hook"] .progress-text`, first], { timeout: 15000 });
    assert.match(await prog.innerText(), /read · [\d,]+ sent · .* rows\/s/);
    await page.screenshot({ path: join(artifacts, "dashboard-progress.png"), fullPage: false, animations: "disabled", timeout: 60000 });
    await page.goto(base + "/#/sync/slow_hook");
    await page.waitForSelector("#progress .progress-text");
    await waitFor(async () => (await getJson("/api/syncs/slow_hook")).current_run === null, "the slow run to finish", 60000);
    await page.waitForSelector("#progress", { state: "detached", timeout: 10000 });
    const slow = (await getJson("/api/syncs/slow_hook/runs")).runs[0].counts;
    assert.equal(slow.added + slow.rejected, slow.rows_read);
    assert.ok(slow.added > 4000, JSON.stringify(slow));

    step("the sync page: the chart's axis follows the incremental runs, labels stay small");
    await page.goto(base + `/#/sync/${SYNC}`);
    await page.waitForFunction(sync => { // the new view, not the one before the hash changed
      const h2 = document.querySelector("main h2");
      return h2 && h2.textContent.includes(sync) && document.querySelector("svg.runchart g.bar");
    }, SYNC);
    const ch = await page.evaluate(() => {
      const s = document.querySelector("svg.runchart");
      const labels = [...s.querySelectorAll("text.ylabel")].map(t => t.textContent);
      const sizes = [...s.querySelectorAll("text")].map(t => t.getBoundingClientRect().height);
      const bars = [...s.querySelectorAll("g.bar")].map(g => ({clipped: g.dataset.clipped === "1",
        h: [...g.querySelectorAll("rect")].reduce((a, r) => a + r.getBBox().height, 0)}));
      return {labels, maxText: Math.max(...sizes), bars, note: !!document.querySelector(".clip-note")};
    });
    assert.equal(ch.bars.length, 5);
    assert.ok(ch.bars[0].clipped, "the first full load is clipped with a break mark");
    assert.ok(ch.note, "a note says the axis is clipped");
    assert.ok(ch.bars.slice(1).every(b => !b.clipped && b.h >= 20), `incremental bars are readable: ${JSON.stringify(ch.bars)}`);
    assert.ok(Number(ch.labels[2].replace(/\D/g, "")) < 1000, `axis top ${ch.labels[2]} follows recent runs, not 5000`);
    assert.ok(ch.maxText <= 16, `axis labels are ${ch.maxText}px tall`);
    await noSideScroll(page, "sync page");
    await page.screenshot({ path: join(artifacts, "dashboard-sync.png"), fullPage: true, animations: "disabled", timeout: 60000 });

    step("Pause from the sync page: scheduled runs stop, Run now is disabled; Resume");
    await page.click("button.pause");
    await page.waitForFunction(() => document.querySelector("button.pause").textContent === "Resume");
    assert.ok(existsSync(join(dir, ".backflow", "paused", SYNC)));
    assert.ok(await page.locator("button.run-now").isDisabled());
    assert.equal((await getJson(`/api/syncs/${SYNC}`)).paused, true);
    await page.click("button.pause");
    await page.waitForFunction(() => document.querySelector("button.pause").textContent === "Pause");
    assert.ok(!existsSync(join(dir, ".backflow", "paused", SYNC)));

    step("a run's page lists rejected rows apart from failed deliveries");
    await page.goto(base + "/#/run/" + run.id); // ids are shared by all 65 syncs
    const err = page.locator("table#errors tbody tr");
    await err.first().waitFor();
    assert.equal(await err.count(), 2);
    const errText = await page.locator("table#errors tbody").innerText();
    assert.match(errText, /\(no key\)\s+id\s+primary key is NULL/);
    assert.match(errText, /[0-9a-f]{32}\s+id\s+duplicate primary key/);
    assert.equal(await page.locator("#no-failed").count(), 1);
    assert.doesNotMatch(await page.content(), /ghost@example\.com|Ghost/);
    await page.screenshot({ path: join(artifacts, "dashboard-run.png"), fullPage: true, animations: "disabled", timeout: 60000 });
    const failing = (await getJson("/api/syncs/sync_16/runs")).runs.find(r => r.status === "failed");
    await page.goto(base + "/#/run/" + failing.id);
    await page.locator("table#failed tbody tr").first().waitFor();
    assert.equal(await page.locator("table#errors").count(), 0);
    assert.match(await page.locator("table#failed tbody").innerText(), /not sent: the destination was unavailable/);
    const nFailed = (await getJson(`/api/runs/${failing.id}/errors`)).failed;
    assert.ok(nFailed > 100, `a whole batch failed: ${nFailed}`);
    const failedRows = page.locator("table#failed tbody tr");
    assert.equal(await failedRows.count(), 100); // a page at a time
    await page.click("button.more");
    assert.equal(await failedRows.count(), 200);
    await page.waitForTimeout(5600); // a finished run's page is not refreshed away
    assert.equal(await failedRows.count(), 200);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(artifacts, "dashboard-run-failed.png"), fullPage: false, animations: "disabled", timeout: 60000 });

    step("the token is kept for the tab; Run now triggers a run; the page refreshes itself");
    await page.goto(base + "/");
    await page.reload();
    await row.waitFor();
    assert.equal(await page.locator("input#token").count(), 0);
    const before = (await getJson(`/api/syncs/${SYNC}/runs`)).runs.length;
    await row.locator("button.run-now").click();
    await waitFor(async () => (await getJson(`/api/syncs/${SYNC}/runs`)).runs.filter(x => x.status !== "running").length > before,
      "the run started from the dashboard");
    const newest = (await getJson(`/api/syncs/${SYNC}/runs`)).runs[0].id;
    await page.waitForFunction(([sync, id]) => {
      const a = document.querySelector(`table#syncs tr[data-sync="${sync}"] td:nth-child(5) a`);
      return a && a.getAttribute("href") === "#/run/" + id;
    }, [SYNC, newest], { timeout: 10000 });

    step("the PII page shows each sync's footprint; the admin token erases a person from it");
    await page.goto(base + "/#/pii");
    await page.waitForSelector("table.pii tbody tr");
    assert.equal(await page.locator("table.pii tbody tr").count(), N_SYNCS);
    assert.match(await page.locator(`table.pii tbody tr:has(a[href="#/sync/${SYNC}"])`).innerText(), /email \(email\): field email clear/);
    await noSideScroll(page, "pii page");
    const email = execFileSync("python3", ["-c",
      "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT email FROM users WHERE id = 5').fetchone()[0])",
      join(dir, "warehouse.db")]).toString().trim();
    await page.fill("#erase-value", "  " + email.toUpperCase() + " ");
    await page.click("#erase button[type=submit]");
    // The failing syncs' destinations are down: the request stays pending for them.
    const erased = page.locator(`#erase-status table.erasure tr:has(td:text-is("${SYNC}"))`);
    await erased.locator("td:nth-child(3):text-is(\"deleted\")").waitFor({ timeout: 60000 });
    assert.match(await page.locator("#erase-status").innerText(), /Request #1: (complete|pending)/);
    const pii = await getJson("/api/pii");
    assert.equal(pii.suppression.requests, 1);
    await page.locator("#erase").scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(artifacts, "dashboard-pii.png"), fullPage: false, animations: "disabled", timeout: 60000 });

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
    if (receiver) receiver.proc.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch(e => { console.error("FAIL - dashboard:", e); process.exit(1); });
