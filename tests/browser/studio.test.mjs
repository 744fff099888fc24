// The studio page of `backflow serve` (issue 18) in real headless Chromium
// (Debian's /usr/bin/chromium driven by playwright-core): build a segment
// with two conditions, preview it, save it as a model, map three fields,
// preview the plan, save the sync, run it and see the run; a viewer token
// cannot save. The saved YAML passes `backflow validate`.
//
// Run: tests/browser/run.sh   (or: cd tests/browser && npm install && node studio.test.mjs)
// Env: BACKFLOW_BIN (default build/backflow), CHROMIUM (default /usr/bin/chromium).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, existsSync, readFileSync, writeFileSync } from "node:fs";
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
const ADMIN = "studio-admin-token-0123456789";
const EDITOR = "studio-editor-token-0123456789";
const VIEWER = "studio-viewer-token-0123456789";

const t0 = Date.now();
function step(msg) { process.stderr.write(`  [${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`); }

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

function sqlite(db, script) {
  execFileSync("python3", ["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()", db, script]);
}
function sqliteOne(db, q) {
  return Number(execFileSync("python3", ["-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])", db, q]).toString());
}

async function login(browser, base, token) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", e => errors.push(String(e)));
  await page.goto(base + "/studio");
  await page.fill("input#token", token);
  await page.click("button[type=submit]");
  await page.waitForSelector("#segment");
  // The base model's columns are loaded into the condition pickers.
  await page.waitForFunction(() => document.querySelector("#seg-base").options.length > 0);
  return { page, errors };
}

async function condition(page, i, column, op, value) {
  await page.click("#seg-add");
  const row = page.locator("#seg-conds .cond").nth(i);
  await page.waitForFunction(n => { const s = document.querySelectorAll("#seg-conds .cond select.col")[n]; return s && s.options.length > 0; }, i);
  await row.locator("select.col").selectOption(column);
  await row.locator("select.op").selectOption(op);
  await row.locator("input.val").fill(value);
}

async function main() {
  if (!existsSync(chrome)) throw new Error(`${chrome} not found (apt-get install chromium)`);
  mkdirSync(artifacts, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), "bf-studio-"));
  const db = join(dir, "warehouse.db");
  let server, browser;
  try {
    step("project: 40 users, an editor and a viewer token");
    const rows = Array.from({ length: 40 }, (_, k) => k + 1)
      .map(i => `(${i}, 'person${i}@example.com', 'Name${i}', '${i % 2 ? "pro" : "free"}', ${i * 3})`).join(",");
    sqlite(db, `CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, first_name TEXT, plan TEXT, ltv REAL); INSERT INTO users VALUES ${rows};`);
    writeFileSync(join(dir, "backflow.yml"), `version: 1
server:
  token: "${ADMIN}"
  tokens:
    - {name: maria, token: "${EDITOR}", role: editor}
    - {name: victor, token: "${VIEWER}", role: viewer}
warehouses:
  local: {type: sqlite, path: warehouse.db}
models:
  users:
    warehouse: local
    sql: SELECT id, email, first_name, plan, ltv FROM users
    primary_key: id
    pii: {email: email, first_name: name}
destinations:
  out: {type: file, path: out/pro.jsonl}
syncs:
  all_users:
    model: users
    destination: out
    match: {user_id: id}
    fields: {email: email}
`);
    server = startServer(dir);
    const base = await server.url;
    step(`serve at ${base}`);
    browser = await chromium.launch({
      executablePath: chrome,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"],
    });

    step("a wrong token is refused");
    {
      const page = await browser.newPage();
      await page.goto(base + "/studio");
      await page.fill("input#token", "wrong-token-wrong-token");
      await page.click("button[type=submit]");
      await page.waitForSelector("#login-error");
      await page.close();
    }

    step("editor: a segment with two conditions, previewed");
    const { page, errors } = await login(browser, base, EDITOR);
    await condition(page, 0, "plan", "=", "pro");
    await condition(page, 1, "ltv", ">", "30");
    await page.click("#seg-preview");
    await page.waitForSelector("#seg-count");
    const want = sqliteOne(db, "SELECT COUNT(*) FROM users WHERE plan = 'pro' AND ltv > 30");
    assert.equal(Number(await page.textContent("#seg-count")), want);
    const sqlText = await page.textContent("#seg-sql");
    assert.match(sqlText, /"plan" = \$1 AND "ltv" > \$2/);
    assert.match(sqlText, /params: \["pro","30"\]/);
    assert.doesNotMatch(await page.textContent("#seg-out"), /@example\.com/); // pii masked
    assert.match(await page.textContent("#seg-out"), /\*\*\*/);

    step("save it as model pro_big");
    await page.fill("#seg-name", "pro_big");
    await page.click("#seg-save");
    await page.waitForSelector("#seg-saved");
    assert.ok(existsSync(join(dir, "models", "pro_big.yml")));

    step("map three fields onto the new model, preview the plan");
    await page.fill("#sync-name", "pro_to_file");
    await page.waitForFunction(() => [...document.querySelectorAll("#sync-model option")].some(o => o.value === "pro_big"));
    await page.selectOption("#sync-model", "pro_big");
    await page.selectOption("#sync-dest", "out");
    await page.waitForFunction(() => [...document.querySelectorAll("#match-col option")].some(o => o.value === "id"));
    await page.fill("#match-field", "user_id");
    await page.selectOption("#match-col", "id");
    for (const [i, [field, col]] of [["email", "email"], ["name", "first_name"], ["value", "ltv"]].entries()) {
      await page.click("#field-add");
      const row = page.locator("#sync-fields .map").nth(i);
      await row.locator("input.dfield").fill(field);
      await row.locator("select.colsel").selectOption(col);
    }
    await page.fill("#sync-every", "1h");
    await page.click("#sync-preview");
    await page.waitForSelector("#plan-counts");
    assert.equal(await page.textContent("#plan-counts"), `${want} to add, 0 to change, 0 to remove, 0 unchanged`);
    assert.ok(!existsSync(join(dir, "syncs", "pro_to_file.yml")), "a preview writes nothing");
    await page.screenshot({ path: join(artifacts, "studio-preview.png"), fullPage: true });

    step("save the sync, run it, see the run");
    await page.click("#sync-save");
    await page.waitForSelector("#sync-saved");
    const yaml = readFileSync(join(dir, "syncs", "pro_to_file.yml"), "utf8");
    assert.match(yaml, /fields: \{"email": "email", "name": "first_name", "value": "ltv"\}/);
    assert.match(yaml, /schedule: \{"every": "1h"\}/);
    await page.click("#sync-run");
    await page.waitForSelector("#run-status");
    assert.match(await page.textContent("#run-status"), new RegExp(`: succeeded \\(${want} added`));
    await page.waitForSelector("#runs table");
    assert.match(await page.textContent("#runs"), /succeeded/);
    const sent = readFileSync(join(dir, "out", "pro.jsonl"), "utf8").trim().split("\n");
    assert.equal(sent.length, want);
    await page.screenshot({ path: join(artifacts, "studio-run.png"), fullPage: true });

    step("the saved YAML passes validate");
    execFileSync(bin, ["-p", dir, "validate"], { stdio: "pipe" });

    step("a viewer can preview but cannot save");
    const before = readFileSync(join(dir, "models", "pro_big.yml"), "utf8");
    const v = await login(browser, base, VIEWER);
    await condition(v.page, 0, "plan", "=", "free");
    await v.page.click("#seg-preview");
    await v.page.waitForSelector("#seg-count");
    await v.page.fill("#seg-name", "pro_big");
    await v.page.click("#seg-save");
    const alert = v.page.locator("#seg-save-out [role=alert]");
    await alert.waitFor();
    assert.match(await alert.textContent(), /^403: token 'victor' has role viewer/);
    assert.equal(readFileSync(join(dir, "models", "pro_big.yml"), "utf8"), before);
    assert.ok(!existsSync(join(dir, "models", "free.yml")));

    assert.deepEqual(errors.concat(v.errors), []);
    console.log("ok - studio (screenshots in tests/artifacts/)");
  } finally {
    step("closing");
    if (browser) await browser.close();
    if (server) {
      server.proc.kill("SIGTERM");
      const code = server.proc.exitCode !== null ? server.proc.exitCode
        : await new Promise(r => server.proc.on("exit", r));
      if (code !== 0) { console.error(server.log()); process.exitCode = 1; }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch(e => { console.error("FAIL - studio:", e); process.exit(1); });
