// SPDX-License-Identifier: LGPL-2.1-or-later
//
// nap-web in a real browser: Debian's chromium, headless, driven by
// puppeteer-core (never a downloaded browser). Run by
// tests/integration/test-web-browser.sh inside its sandbox, which deploys
// alice_hello and bob_hello and hands over (environment):
//   WEB_URL      nap-web on TCP, e.g. http://127.0.0.1:PORT
//   TOKEN_ALICE, TOKEN_BOB   tokens from napctl web token
//   ARTIFACTS    where the screenshots go
//   CHROMIUM     the browser (default /usr/bin/chromium)
//   HAVE_ETCD    1 when nap has etcd: endpoints and a node "h1" to show,
//                and alice's queued jobs web-job-1 and web-job-2 (vm)
//   COMMIT_FIRST alice_hello's first deploy (the second one is deployed)
//   NODE         this host's node name, which each instance shows
// Prints TAP lines ("ok - …", "not ok - …", "# …"); the shell counts them.
// Every wait is for something on the page, bounded.

import puppeteer from "puppeteer-core";
import { mkdirSync } from "node:fs";

const env = (k) => { if (!process.env[k]) throw new Error(`${k} is not set`); return process.env[k]; };
const URL_BASE = env("WEB_URL"), ARTIFACTS = env("ARTIFACTS"), env_node = env("NODE");
const WAIT = { timeout: 30000 };
let failed = 0;

function ok(what) { console.log(`ok - ${what}`); }
function fail(what, why) { failed++; console.log(`not ok - ${what}`); if (why) console.log(`#   ${String(why).split("\n").join("\n#   ")}`); }
async function check(what, fn) {
  try { const r = await fn(); if (r === false) fail(what); else ok(what); return r; } catch (e) { fail(what, e.stack || e); return undefined; }
}
async function shot(page, name) {
  await page.screenshot({ path: `${ARTIFACTS}/${name}.png` });
  console.log(`# screenshot ${ARTIFACTS}/${name}.png`);
}

async function signIn(page, token) {
  await page.goto(URL_BASE + "/", { waitUntil: "domcontentloaded" });
  await page.waitForSelector("#signin-token", { visible: true, ...WAIT });
  await page.type("#signin-token", token);
  await Promise.all([page.waitForSelector("#nav:not([hidden])", WAIT), page.click("#signin-submit")]);
}

// A call from the page itself, with whatever headers the test chooses:
// what a script injected into the page could send.
function pageFetch(page, path, body, headers) {
  return page.evaluate(async (p, b, h) => {
    const r = await fetch(p, { method: "POST", headers: { "Content-Type": "application/json", ...h }, body: JSON.stringify(b) });
    return { status: r.status, body: await r.json().catch(() => ({})) };
  }, path, body, headers);
}

async function rowsOf(page, state) {
  return page.$$eval("#instances-table tbody tr", (rows, s) => rows.filter((r) => !s || r.dataset.state === s).map((r) => r.dataset.instance), state);
}

async function alice(browser) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport({ width: 1180, height: 760 });
  page.on("pageerror", (e) => fail("no script error on the page", e));

  await check("alice signs in with her token", () => signIn(page, env("TOKEN_ALICE")));
  await check("the deploy is visible: alice_hello with its version", async () => {
    await page.waitForSelector('#apps-table tr[data-service="alice_hello"]', WAIT);
    const cells = await page.$$eval('#apps-table tr[data-service="alice_hello"] td', (t) => t.map((x) => x.textContent));
    return /^[0-9a-f]{12}$/.test(cells[1]) || Promise.reject(new Error(`cells: ${cells}`));
  });
  await check("the session cookie is HttpOnly and SameSite=Strict", async () => {
    const [c] = (await page.cookies()).filter((x) => x.name === "nap_session");
    const seen = await page.evaluate(() => document.cookie);
    return (c && c.httpOnly && c.sameSite === "Strict" && !seen.includes("nap_session")) || Promise.reject(new Error(JSON.stringify(c)));
  });
  await shot(page, "apps");

  await page.click('#apps-table tr[data-service="alice_hello"] a');
  await page.waitForSelector("#start-form", WAIT);
  await check("roll back to the first deploy with the button beside it, after a confirmation", async () => {
    const first = env("COMMIT_FIRST");
    await page.waitForSelector(`#history-table tr[data-commit="${first}"] button[data-action="Rollback"]`, WAIT);
    let asked = "";
    page.once("dialog", (d) => { asked = d.message(); d.accept(); });
    await page.click(`#history-table tr[data-commit="${first}"] button[data-action="Rollback"]`);
    await page.waitForFunction((c) => { const n = document.getElementById("notice");
      return n && n.textContent.startsWith(`Rolled back alice_hello to ${c}`); }, { timeout: 60000 }, first.slice(0, 12));
    const deployed = await page.$eval("#history-table tbody tr", (r) => r.dataset.commit);
    return (asked.includes(first.slice(0, 12)) && deployed === first) || Promise.reject(new Error(JSON.stringify({ asked, deployed })));
  });
  await page.reload({ waitUntil: "domcontentloaded" }); // the notice goes
  await page.waitForSelector("#start-form", WAIT);
  let url, started;
  await check("start-common through the parameter form", async () => {
    const fields = await page.$$eval("#start-form input", (l) => l.map((i) => i.name));
    if (fields.join() !== "greeting") throw new Error(`form fields: ${fields}`);
    await page.type("#param-greeting", "hello-from-chromium");
    await page.click("#start-submit");
    await page.waitForSelector("#notice", WAIT);
    [, started, url] = (await page.$eval("#notice", (n) => n.textContent)).match(/^Started (\S+): (http:\/\/\S+)/);
    await page.waitForSelector('#instances-table tr[data-state="active"]', WAIT);
  });
  await check("the new instance answers with the greeting from the form", async () => {
    const text = await (await fetch(url)).text();
    return text.includes("hello-from-chromium") || Promise.reject(new Error(text));
  });
  if (process.env.HAVE_ETCD === "1")
    await check("the instance's endpoint, published in etcd, on the app's page", async () => {
      const port = new URL(url).port;
      await page.waitForFunction((p) => Array.from(document.querySelectorAll("#endpoints-table td"))
        .some((td) => td.textContent.endsWith(":" + p)), WAIT, port);
    });
  await check("each instance shows its node: this host's", async () => {
    const nodes = await page.$$eval("#instances-table td.node", (l) => l.map((td) => td.textContent));
    return (nodes.length > 0 && nodes.every((n) => n === env_node)) || Promise.reject(new Error(JSON.stringify(nodes)));
  });
  await shot(page, "app");

  const instance = started;
  await page.click(`#instances-table tr[data-instance="${instance}"] a.log-link`);
  await page.waitForSelector("#log-lines", WAIT);
  await check("a line the app prints appears in the live log", async () => {
    await page.waitForFunction(() => document.getElementById("log-status").textContent === "following", WAIT);
    await fetch(url + "/line-from-the-browser-test");
    await page.waitForFunction(() => document.getElementById("log-lines").textContent.includes("line-from-the-browser-test"), WAIT);
  });
  await check("the log's filter keeps only matching lines", async () => {
    await page.type("#log-filter", "line-from-the-browser");
    const text = await page.$eval("#log-lines", (p) => p.textContent);
    return (text.includes("line-from-the-browser-test") && !text.includes("listening on")) || Promise.reject(new Error(text));
  });
  await shot(page, "log");

  await page.goto(`${URL_BASE}/#/app/alice_hello`);
  await page.waitForSelector(`#instances-table tr[data-instance="${instance}"]`, WAIT);
  await check("stop the instance", async () => {
    await page.click(`#instances-table tr[data-instance="${instance}"] button[data-action="StopApp"]`);
    await page.waitForSelector(`#instances-table tr[data-instance="${instance}"]:not([data-state="active"])`, WAIT);
    const answered = await fetch(url).then(() => true, () => false);
    return !answered || Promise.reject(new Error("it still answers"));
  });
  await check("scale to 3", async () => {
    await page.$eval("#scale-count", (i) => { i.value = ""; });
    await page.type("#scale-count", "3");
    await page.click("#scale-submit");
    await page.waitForFunction(() => document.querySelectorAll("#instances-table tbody tr").length === 3 &&
                               !document.querySelector("#scale-submit").disabled, { timeout: 60000 });
  });
  await shot(page, "app-scaled");

  if (process.env.HAVE_ETCD === "1") {
    await page.goto(`${URL_BASE}/#/queue`);
    const order = () => page.$$eval("#queue-table tbody tr", (l) => l.map((r) => `${r.dataset.job}:${r.dataset.status}`).join(" "));
    await check("the queue page shows alice's queued jobs, in queue order", async () => {
      await page.waitForSelector('#queue-table tr[data-job="vm/web-job-2"]', WAIT);
      const o = await order();
      return o === "vm/web-job-1:queued vm/web-job-2:queued" || Promise.reject(new Error(o));
    });
    await shot(page, "queue");
    await check("move job 1 down: job 2 comes first", async () => {
      await page.click('#queue-table tr[data-job="vm/web-job-1"] button[data-action="move-down"]');
      await page.waitForFunction(() => document.querySelector("#queue-table tbody tr")?.dataset.job === "vm/web-job-2", WAIT);
    });
    await check("cancel job 1, after a confirmation", async () => {
      page.once("dialog", (d) => d.accept());
      await page.click('#queue-table tr[data-job="vm/web-job-1"] button[data-action="cancel"]');
      await page.waitForSelector('#queue-table tr[data-job="vm/web-job-1"][data-status="cancelled"]', WAIT);
    });
  }

  await page.goto(`${URL_BASE}/#/nodes`);
  if (process.env.HAVE_ETCD === "1")
    await check("the nodes page shows the node root applied, with its capacity bars", async () => {
      await page.waitForSelector("#nodes-table tbody tr", WAIT);
      const cells = await page.$$eval("#nodes-table tbody tr td", (t) => t.map((x) => x.textContent));
      const bars = await page.$$eval("#nodes-table .bar > div", (b) => b.map((x) => x.style.width));
      return (cells[0] === "h1" && bars.length === 3 && bars.every((w) => w.endsWith("%"))) ||
        Promise.reject(new Error(JSON.stringify({ cells, bars })));
    });
  else
    await page.waitForFunction(() => document.querySelector("#nodes-table, .empty") || !document.getElementById("error").hidden, WAIT);
  await shot(page, "nodes");
  await context.close();
  return instance;
}

async function bob(browser, aliceInstance) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport({ width: 1180, height: 760 });
  await check("bob signs in with his token", () => signIn(page, env("TOKEN_BOB")));
  await check("bob sees his app and not alice's", async () => {
    await page.waitForSelector('#apps-table tr[data-service="bob_hello"]', WAIT);
    return (await page.$('#apps-table tr[data-service="alice_hello"]')) === null;
  });
  await check("alice's app page tells bob: Permission denied", async () => {
    await page.goto(`${URL_BASE}/#/app/alice_hello`);
    await page.waitForSelector("#error:not([hidden])", WAIT);
    const text = await page.$eval("#error", (e) => e.textContent);
    return /^Permission denied: .*io\.nap\.Manager\.PermissionDenied/.test(text) || Promise.reject(new Error(text));
  });
  await shot(page, "denied");
  if (process.env.HAVE_ETCD === "1")
    await check("bob's queue page shows none of alice's jobs", async () => {
      await page.goto(`${URL_BASE}/#/queue`);
      await page.waitForSelector("#queue-table, #view p.empty", WAIT);
      return (await page.$('#queue-table tr[data-job^="vm/web-job"]')) === null;
    });
  await check("bob's forged cancel of alice's job: NoSuchJob, as nap-queued tells another owner", async () => {
    if (process.env.HAVE_ETCD !== "1") return true;
    const c = await page.evaluate(async () => (await (await fetch("/api/session")).json()).csrf);
    const r = await pageFetch(page, "/api/queue/cancel", { type: "vm", request_id: "web-job-2" }, { "X-CSRF-Token": c });
    return (r.status === 404 && r.body.error === "io.nap.Manager.NoSuchJob") || Promise.reject(new Error(JSON.stringify(r)));
  });
  const csrf = await page.evaluate(async () => (await (await fetch("/api/session")).json()).csrf);
  await check("bob's forged StopApp of alice's instance, with his CSRF token: 403", async () => {
    const r = await pageFetch(page, "/api/call/StopApp", { instance: aliceInstance.replace(/@\d+$/, "@2") }, { "X-CSRF-Token": csrf });
    return (r.status === 403 && r.body.error === "io.nap.Manager.PermissionDenied") || Promise.reject(new Error(JSON.stringify(r)));
  });
  await check("the same without the CSRF token: 401", async () => {
    const r = await pageFetch(page, "/api/call/ScaleX", {}, {});
    const s = await pageFetch(page, "/api/call/Scale", { service: "bob_hello", instances: 1 }, {});
    return (r.status === 401 && s.status === 401) || Promise.reject(new Error(JSON.stringify([r, s])));
  });
  await context.close();
}

mkdirSync(ARTIFACTS, { recursive: true });
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // root in the test's sandbox: chromium's own sandbox needs user namespaces it may not have there
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions"],
});
try {
  const instance = await alice(browser);
  await bob(browser, instance || "alice_hello_common@1");
} catch (e) {
  fail("the browser session ran to its end", e.stack || e);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
