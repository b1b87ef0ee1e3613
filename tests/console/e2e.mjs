// The web console in a real browser: Debian's chromium, driven by playwright-core (npm,
// unmodified), both installed by scripts/setup.sh. Run by tests/console.rs as
// `node e2e.mjs` with CB_SERVER (the node's URL), CB_NODE_ID and CB_NODE_MODULES; with
// CB_SCREENSHOTS set, it also saves a screenshot of each page there. It asserts, and prints
// what it checked.
import assert from "node:assert/strict";

const { chromium } = await import(`${process.env.CB_NODE_MODULES}/playwright-core/index.mjs`);
const server = process.env.CB_SERVER;
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];

async function open(path) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("console", (m) => m.type() === "error" && errors.push(`${path}: ${m.text()}`));
  page.on("pageerror", (e) => errors.push(`${path}: ${e.message}`));
  await page.goto(server + path);
  await page.waitForSelector("body[data-ready=true]");
  return page;
}

/** The playground with a program in it, as a shared link gives it. */
function link(language, code, stdin = "") {
  const json = JSON.stringify({ language, code, stdin });
  return "/#p=" + Buffer.from(json).toString("base64url");
}

/**
 * What axe-core (npm, the accessibility engine browsers' dev tools use) finds wrong with the
 * page as it stands: labels, names, contrast, landmarks, keyboard traps.
 */
async function accessibility(page, label) {
  await page.addScriptTag({ path: `${process.env.CB_NODE_MODULES}/axe-core/axe.min.js` });
  const result = await page.evaluate(() => window.axe.run(document));
  const found = result.violations.map((v) => `${label}: ${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  assert.deepEqual(found, [], "accessibility");
  console.log(`${label}: axe-core passed ${result.passes.length} rules with no violation`);
}

async function ran(page, words) {
  await page.waitForFunction((w) => document.getElementById("status").textContent.startsWith(w), words,
    { timeout: 60000 });
}

async function everything() {
  // Loading `/`: python preselected with its example, and no console errors.
  let page = await open("/");
  assert.equal(await page.locator("#language").inputValue(), "python");
  assert.match(await page.locator(".cm-content").innerText(), /hello, world/);
  assert.ok(await page.locator(".cm-lineNumbers").isVisible(), "line numbers");
  assert.ok(await page.locator("label[for=stdin]").isVisible(), "labelled inputs");

  // Python's hello, run with Ctrl+Enter from the editor: output, status in words, facts.
  await page.locator(".cm-content").click();
  await page.keyboard.press("Control+Enter");
  await ran(page, "Completed");
  assert.equal((await page.locator("#stdout").textContent()).trim(), "hello, world");
  assert.equal(await page.locator("#exit-code").innerText(), "0");
  assert.match(await page.locator("#duration").innerText(), /ms|s$/);
  console.log("python hello: ok");

  // Every language: choosing it loads its example, highlighted where CodeMirror has a mode.
  const plain = new Set(["nasm", "ada", "prolog", "elixir", "nim", "zig"]);
  const names = await page.locator("#language option").evaluateAll((os) => os.map((o) => o.value));
  assert.equal(names.length, 39);
  for (const name of names) {
    await page.locator("#language").selectOption(name);
    await page.waitForFunction(() => /hello, world/.test(document.querySelector(".cm-content").innerText));
    if (!plain.has(name)) {
      assert.ok(await page.locator(".cm-content span").count() > 0, `${name} is highlighted`);
    }
  }
  await page.locator("#language").selectOption("python");
  console.log("every language's example and highlighting: ok");

  // A compile error is shown as one, with the compiler's output apart.
  page = await open(link("c", "int main(void) { return 0 }"));
  assert.equal(await page.locator("#language").inputValue(), "c");
  await page.locator("#run").click();
  await ran(page, "Compile error");
  assert.ok(await page.locator("#compile-box").isVisible());
  assert.match(await page.locator("#compile-output").innerText(), /error/);
  console.log("compile error: ok");

  // An interactive program: what is typed reaches it while it runs.
  page = await open(link("python", "name = input('name? ')\nprint('hello,', name)"));
  await page.locator("#interactive").check();
  await page.locator("#run").click();
  await page.locator("#send-line").waitFor();
  await page.locator("#send-line").fill("Ada");
  await page.keyboard.press("Enter");
  await ran(page, "Completed");
  assert.equal((await page.locator("#stdout").textContent()).trim(), "name? hello, Ada");
  console.log("interactive: ok");

  // Test cases, one with a wrong answer: a verdict per case.
  page = await open(link("python", "n = int(input())\nprint(10 if n == 3 else n * n)"));
  for (const [stdin, expected] of [["2", "4"], ["3", "9"]]) {
    await page.locator("#add-case").click();
    await page.locator(".case-stdin").last().fill(stdin);
    await page.locator(".case-expected").last().fill(expected);
  }
  await page.locator("#run-tests").click();
  await page.waitForFunction(() => document.getElementById("verdict").textContent.startsWith("Verdict"), null, { timeout: 60000 });
  assert.match(await page.locator("#verdict").innerText(), /wrong answer \(1 of 2 accepted\)/);
  const verdicts = await page.locator("#verdicts tbody tr td:nth-child(2)").allInnerTexts();
  assert.deepEqual(verdicts, ["accepted", "wrong answer"]);
  await page.locator("#stdin").fill("3");
  await page.locator("#run").click();
  await ran(page, "Completed");
  if (process.env.CB_SCREENSHOTS) await page.screenshot({ path: `${process.env.CB_SCREENSHOTS}/console-playground.png`, fullPage: true });
  await accessibility(page, "playground");
  console.log("test cases: ok");

  // A shared link reproduces the program and its stdin.
  await page.locator("#stdin").fill("7");
  await page.locator("#share").click();
  const shared = await page.locator("#share-link").inputValue();
  const again = await open(shared.replace(server, ""));
  assert.match(await again.locator(".cm-content").innerText(), /10 if n == 3/);
  assert.equal(await again.locator("#stdin").inputValue(), "7");
  console.log("share link: ok");

  // The live view lists this node and the job just run.
  page = await open("/console");
  await page.waitForSelector(`#nodes tr[data-node="${process.env.CB_NODE_ID}"]`);
  await page.waitForSelector("#recent tbody tr");
  const languages = await page.locator("#recent tbody tr td:nth-child(3)").allInnerTexts();
  assert.ok(languages.includes("python") && languages.includes("c"), languages.join(","));
  // The charts count the jobs just run (their words are what a screen reader hears).
  await page.waitForFunction(() => parseInt(document.getElementById("rate-chart").getAttribute("aria-label")) >= 4);
  assert.match(await page.locator("#latency-chart").getAttribute("aria-label"), /^Median time per job: \d+ ms$/);
  // Opening one shows its record.
  await page.locator("#recent tbody tr button.link").first().click();
  await page.waitForSelector("#record-dialog[open]");
  assert.match(await page.locator("#record").textContent(), /"execution_id"/);
  await page.locator("#record-dialog button[type=submit]").click();
  await accessibility(page, "live view");
  console.log("live view: ok");

  // Cancelling a sleeping job from the live view.
  const submitted = await fetch(`${server}/execute/async`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ language: "python", code: "import time\ntime.sleep(30)", timeout: 40 }),
  }).then((r) => r.json());
  const row = `#recent tr[data-execution="${submitted.execution_id}"]`;
  await page.waitForSelector(`${row}[data-status=running]`, { timeout: 30000 });
  // Its CPU and memory, live from its usage events.
  await page.waitForFunction((r) => /\d+ ms \/ [\d.]+ (KiB|MiB)/.test(document.querySelector(`${r} td:nth-child(7)`)?.textContent || ""),
    row, { timeout: 15000 });
  if (process.env.CB_SCREENSHOTS) await page.screenshot({ path: `${process.env.CB_SCREENSHOTS}/console-live.png`, fullPage: true });
  await page.locator(`${row} button`, { hasText: "Cancel" }).click();
  await page.waitForSelector(`${row}[data-status=cancelled]`, { timeout: 30000 });
  console.log("cancel: ok");
}

// With API keys: the page asks for one, keeps it in the browser, and sends it.
async function withKey() {
  const page = await browser.newPage();
  // The first call's 401 is how the page learns it needs a key; the browser logs it.
  page.on("console", (m) => m.type() === "error" && !/401/.test(m.text()) && errors.push(m.text()));
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(server + "/");
  await page.waitForSelector("#key-dialog[open]");
  await page.locator("#key-input").fill(process.env.CB_KEY);
  await page.locator("#key-dialog button[type=submit]").click();
  await page.waitForSelector("body[data-ready=true]");
  await page.locator("#run").click();
  await ran(page, "Completed");
  assert.equal((await page.locator("#stdout").textContent()).trim(), "hello, world");
  await page.locator("#interactive").check();
  await page.locator("#run").click();
  await ran(page, "Not run: interactive runs use a WebSocket");
  await page.reload();
  await page.waitForSelector("body[data-ready=true]");
  assert.equal(await page.locator("#key-dialog[open]").count(), 0, "the key is kept");
  console.log("with a key: ok");
}

await (process.env.CB_KEY ? withKey() : everything());
await browser.close();
assert.deepEqual(errors, [], "no console errors");
console.log("--- passed");
