// nap-web's page: plain JavaScript, no framework, no build step. Every
// action on an app is a call of an io.nap.Manager method (POST
// /api/call/METHOD), which nap-web authorizes for the signed-in user and
// nap-managerd runs; the same methods napctl calls. The queue page's
// actions go to nap-queued the same way (/api/queue/*, as napctl queue). Text from the server only ever goes into
// textContent, never into HTML.
"use strict";

const state = { user: null, admin: false, csrf: null, stream: null, timer: null };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat())
    if (c !== undefined && c !== null) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// ---- talking to nap-web ------------------------------------------------

class ApiError extends Error {
  constructor(name, message) { super(message); this.name = name; }
}

async function request(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                       credentials: "same-origin" });
  let reply = {};
  try { reply = await response.json(); } catch (e) { /* not JSON: the status says it */ }
  if (!response.ok)
    throw new ApiError(reply.error || "io.nap.Manager.Internal", reply.message || `HTTP ${response.status}`);
  return reply;
}

async function call(method, args) {
  return (await request("POST", "/api/call/" + method, args || {})).parameters;
}

// "io.nap.Manager.PermissionDenied" → "Permission denied"
function words(name) {
  const kind = String(name).split(".").pop();
  const w = kind.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
  return w.charAt(0).toUpperCase() + w.slice(1);
}

function showError(e) {
  const box = $("error");
  if (!e) { box.hidden = true; box.textContent = ""; return; }
  box.textContent = `${words(e.name)}: ${e.message} (${e.name})`;
  box.hidden = false;
  if (e.name === "io.nap.Manager.PermissionDenied" && /signed in|sign in/i.test(e.message)) signedOut();
}

// Runs an action from a button: disabled meanwhile, errors shown, then a refresh.
async function act(button, fn) {
  clearTimeout(state.timer); // no refresh of the page while it works
  showError(null);
  if (button) button.disabled = true;
  try { await fn(); } catch (e) { showError(e); }
  if (button) button.disabled = false;
  await route();
}

function randomId() {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return "web-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// ---- formatting --------------------------------------------------------

const short = (commit) => (commit ? commit.slice(0, 12) : "-");
const seconds = (ns) => (ns === null || ns === undefined ? "-" : (ns / 1e9).toFixed(2) + " s");
const mib = (b) => (b === null || b === undefined ? "-" : (b / 1048576).toFixed(1) + " MiB");

function health(app) {
  if (app.running === 0) return el("span", { class: "badge idle" }, app.instances ? "stopped" : "no instances");
  if (app.answering === app.running) return el("span", { class: "badge ok" }, "healthy");
  return el("span", { class: "badge bad" }, `${app.running - app.answering} not answering`);
}

function stateBadge(i) {
  const cls = i.active_state === "active" ? "ok" : i.active_state === "failed" ? "bad" : "idle";
  return el("span", { class: "badge " + cls }, `${i.active_state} (${i.sub_state})`);
}

function table(headers, rows, attrs) {
  return el("table", attrs, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))), el("tbody", {}, rows));
}

// ---- views -------------------------------------------------------------

function view(...children) {
  const v = $("view");
  v.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return v;
}

async function renderApps(user) {
  user = user || state.user;
  const { apps } = await call("ListApps", { user });
  const rows = apps.map((a) =>
    el("tr", { dataset: { service: a.service } },
      el("td", {}, el("a", { href: "#/app/" + encodeURIComponent(a.service) }, a.app)),
      el("td", {}, short(a.commit)), el("td", { class: "num" }, a.instances), el("td", { class: "num" }, a.running),
      el("td", { class: "num" }, a.answering), el("td", {}, a.ports.join(", ")), el("td", {}, health(a))));
  const pick = state.admin ? el("form", { class: "inline", id: "user-form", onsubmit: (ev) => {
    ev.preventDefault(); location.hash = "#/apps/" + encodeURIComponent($("user-name").value);
  } }, el("label", {}, "User", el("input", { id: "user-name", value: user })), el("button", { type: "submit" }, "Show")) : null;
  view(el("h1", {}, `Apps of ${user}`), pick,
       apps.length ? table(["App", "Version", "Instances", "Running", "Answering", "Ports", "Health"], rows, { id: "apps-table" })
                   : el("p", { class: "empty" }, "No apps deployed. Deploy one with napctl deploy-app or git push."));
}

function instanceRow(svc, i, commits) {
  const button = (label, method, cls) => el("button", { type: "button", class: cls || "secondary", dataset: { action: method },
    onclick: (ev) => act(ev.target, () => call(method, { instance: i.instance })) }, label);
  return el("tr", { dataset: { instance: i.instance, state: i.active_state } },
    el("td", {}, i.instance), el("td", {}, stateBadge(i)), el("td", { class: "node" }, i.node || "-"), el("td", { class: "num" }, i.port),
    el("td", {}, short(commits[i.instance])), el("td", { class: "num" }, seconds(i.cpu_nsec)),
    el("td", { class: "num" }, mib(i.memory_bytes)), el("td", {}, plot(i.instance)),
    el("td", { class: "actions" }, button("Start", "StartApp"), button("Stop", "StopApp"), button("Restart", "RestartApp"),
      button("Remove", "RemoveInstance", "danger"),
      el("a", { href: "#/log/" + encodeURIComponent(i.instance), class: "log-link" }, "Log")));
}

function startForm(svc, parameters) {
  // {port} is nap's to fill; every other {placeholder} is a field.
  const fields = parameters.filter((p) => p !== "port").map((p) =>
    el("label", {}, p, el("input", { name: p, id: "param-" + p })));
  return el("form", { class: "inline", id: "start-form", onsubmit: (ev) => {
    ev.preventDefault();
    const params = {};
    for (const input of ev.target.querySelectorAll("input")) if (input.value !== "") params[input.name] = input.value;
    act(ev.submitter, async () => {
      const r = await call("StartCommon", { service: svc, params, requestId: randomId() });
      notice(`Started ${r.instance.instance}: ${r.instance.url}`);
    });
  } }, fields, el("button", { type: "submit", id: "start-submit" }, "Start an instance"));
}

function scaleForm(svc, n) {
  return el("form", { class: "inline", id: "scale-form", onsubmit: (ev) => {
    ev.preventDefault();
    act(ev.submitter, () => call("Scale", { service: svc, instances: Number($("scale-count").value) }));
  } }, el("label", {}, "Instances", el("input", { id: "scale-count", type: "number", min: 0, max: 1000, value: n })),
     el("button", { type: "submit", id: "scale-submit" }, "Scale"));
}

function configSection(svc, config) {
  const rows = Object.entries(config).map(([k, v]) => el("tr", { dataset: { key: k } }, el("td", {}, k), el("td", {}, v),
    el("td", {}, el("button", { type: "button", class: "danger",
      onclick: (ev) => act(ev.target, () => call("SetConfig", { service: svc, unset: [k] })) }, "Unset"))));
  return [rows.length ? table(["Variable", "Value", ""], rows, { id: "config-table" }) : el("p", { class: "empty" }, "No variables set."),
    el("form", { class: "inline", id: "config-form", onsubmit: (ev) => {
      ev.preventDefault();
      act(ev.submitter, () => call("SetConfig", { service: svc, set: { [$("config-key").value]: $("config-value").value } }));
    } }, el("label", {}, "Variable", el("input", { id: "config-key", required: true })),
       el("label", {}, "Value", el("input", { id: "config-value" })),
       el("button", { type: "submit" }, "Set (restarts the instances)"))];
}

function endpointsSection(endpoints) {
  if (endpoints instanceof Error) return el("p", { class: "empty" }, `${words(endpoints.name)}: ${endpoints.message}`);
  if (!endpoints.length) return el("p", { class: "empty" }, "No endpoints published.");
  return table(["Endpoint", "Instance"], endpoints.map((e) => el("tr", {}, el("td", {}, `${e.host}:${e.port}`), el("td", {}, e.instance))),
               { id: "endpoints-table" });
}

// Rollback of io.nap.Manager: the earlier deploy's commit, after a
// confirmation; the button says it works meanwhile, the result comes as a
// notice, an error as the same named error as everywhere.
function rollbackButton(svc, d) {
  return el("button", { type: "button", class: "secondary", dataset: { action: "Rollback" }, onclick: (ev) => {
    if (!confirm(`Roll ${svc} back to ${short(d.commit)}? Its instances are replaced one batch at a time.`)) return;
    ev.target.textContent = "Rolling back…";
    act(ev.target, async () => {
      const r = await call("Rollback", { service: svc, commit: d.commit });
      notice(r.changed ? `Rolled back ${svc} to ${short(r.commit)} (was ${short(r.previous)})`
                       : `${svc} is already at ${short(r.commit)} (unchanged)`);
    });
  } }, "Roll back");
}

function historySection(svc, deploys) {
  if (deploys instanceof Error) return el("p", { class: "empty" }, `${words(deploys.name)}: ${deploys.message}`);
  if (!deploys.length) return el("p", { class: "empty" }, "No deploys recorded.");
  return table(["Commit", "Deployed", "From", ""], deploys.map((d, k) => el("tr", { dataset: { commit: d.commit } },
    el("td", {}, short(d.commit), k === 0 ? " (deployed)" : ""), el("td", {}, new Date(d.time / 1000).toLocaleString()),
    el("td", {}, d.url), el("td", { class: "actions" }, k === 0 || d.commit === deploys[0].commit ? "" : rollbackButton(svc, d)))),
    { id: "history-table" });
}

function notice(text) {
  sessionStorage.setItem("notice", text);
}

// CPU and memory over the last minutes, sampled while the page is open.
const samples = new Map();
function sample(instances) {
  for (const i of instances) {
    const s = samples.get(i.instance) || [];
    s.push({ t: Date.now(), cpu: i.cpu_nsec, mem: i.memory_bytes });
    samples.set(i.instance, s.slice(-60));
  }
}

function plot(instance) {
  const s = (samples.get(instance) || []).filter((x) => x.mem !== null);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", "120"); svg.setAttribute("height", "24"); svg.setAttribute("class", "plot");
  if (s.length < 2) return svg;
  const max = Math.max(...s.map((x) => x.mem)) || 1;
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", s.map((x, k) => `${(k * 119) / (s.length - 1)},${23 - (x.mem / max) * 22}`).join(" "));
  line.setAttribute("fill", "none"); line.setAttribute("stroke", "#2456c7");
  svg.append(line);
  const title = document.createElementNS(ns, "title");
  title.textContent = `memory, last ${s.length} samples, max ${mib(max)}`;
  svg.append(title);
  return svg;
}

async function renderApp(svc) {
  const settle = (p) => p.catch((e) => e);
  const [stats, params, config, endpoints, deploys] = await Promise.all([
    request("POST", "/api/stats", { service: svc }).then((r) => r.parameters), call("GetParameters", { service: svc }),
    call("GetConfig", { service: svc }), settle(call("ListEndpoints", { service: svc }).then((r) => r.endpoints)),
    settle(call("History", { service: svc }).then((r) => r.deploys))]);
  sample(stats.instances);
  const rows = stats.instances.map((i) => instanceRow(svc, i, stats.commits));
  const text = sessionStorage.getItem("notice");
  sessionStorage.removeItem("notice");
  view(el("h1", {}, svc), text ? el("p", { id: "notice" }, text) : null,
    el("h2", {}, "Instances"),
    rows.length ? table(["Instance", "State", "Node", "Port", "Version", "CPU", "Memory", "Memory (recent)", ""], rows, { id: "instances-table" })
                : el("p", { class: "empty" }, "No instances."),
    el("h2", {}, "Start an instance"), startForm(svc, params.parameters),
    el("h2", {}, "Scale"), scaleForm(svc, stats.instances.length),
    el("h2", {}, "Configuration"), configSection(svc, config.config),
    el("h2", {}, "Endpoints (etcd)"), endpointsSection(endpoints),
    el("h2", {}, "Deploys"), historySection(svc, deploys),
    el("h2", {}, "The app as a whole"),
    el("p", {}, el("button", { type: "button", class: "secondary", id: "restart-all",
      onclick: (ev) => act(ev.target, () => call("RestartService", { service: svc })) }, "Restart every instance"), " ",
      el("button", { type: "button", class: "danger", id: "destroy",
        onclick: (ev) => { if (confirm(`Remove ${svc} and everything of it?`))
          act(ev.target, async () => { await call("DestroyApp", { service: svc }); location.hash = "#/apps"; }); } },
        "Destroy the app")));
  state.timer = setTimeout(() => { if (location.hash === "#/app/" + encodeURIComponent(svc)) route(); }, 5000);
}

function renderLog(instance) {
  const lines = [];
  const pre = el("pre", { id: "log-lines" });
  const filter = el("input", { id: "log-filter", placeholder: "only lines containing…", oninput: () => redraw() });
  function shown(line) { return !filter.value || line.includes(filter.value); }
  function redraw() { pre.textContent = lines.filter(shown).join("\n"); pre.scrollTop = pre.scrollHeight; }
  const status = el("span", { id: "log-status", class: "hint" }, "connecting…");
  view(el("h1", {}, `Log of ${instance}`), el("form", { class: "inline", onsubmit: (ev) => ev.preventDefault() },
    el("label", {}, "Filter", filter), status), pre);
  const stream = new EventSource("/api/follow?lines=50&instance=" + encodeURIComponent(instance));
  state.stream = stream;
  stream.onopen = () => { status.textContent = "following"; };
  stream.onmessage = (ev) => {
    for (const e of JSON.parse(ev.data).entries || []) {
      const t = new Date(e.time / 1000).toLocaleTimeString();
      lines.push(`${t} ${e.message}`);
      if (lines.length > 5000) lines.shift();
    }
    redraw();
  };
  stream.addEventListener("error", (ev) => {
    if (ev.data) { const e = JSON.parse(ev.data); showError(new ApiError(e.error, e.message)); stream.close(); }
    status.textContent = stream.readyState === EventSource.CLOSED ? "ended" : "reconnecting…";
  });
}

async function renderNodes() {
  const { nodes } = await call("ListNodes", {});
  const bytes = (b) => (b >= 1073741824 ? (b / 1073741824).toFixed(1) + " GiB" : (b / 1048576).toFixed(0) + " MiB");
  const cores = (m) => `${Number((m / 1000).toFixed(2))} CPU`;
  const bar = (used, cap, unit) => el("div", { class: "usage" },
    el("div", { class: "bar" }, el("div", { dataset: { share: cap ? Math.round((100 * used) / cap) : 0 } })),
    el("span", { class: "hint" }, `${unit(used)} of ${unit(cap)} reserved`));
  const rows = nodes.map((n) => el("tr", {}, el("td", {}, n.name), el("td", {}, n.address),
    el("td", {}, el("span", { class: "badge " + (n.ready ? "ok" : "bad") }, n.ready ? "Ready" : "NotReady")),
    el("td", {}, bar(n.used_cpu_milli_core, n.cpu_milli_core, cores)),
    el("td", {}, bar(n.used_memory_bytes, n.memory_bytes, bytes)),
    el("td", {}, bar(n.used_storage_bytes, n.storage_bytes, bytes))));
  view(el("h1", {}, "Nodes"), nodes.length ? table(["Node", "Address", "Status", "CPU", "Memory", "Storage"], rows, { id: "nodes-table" })
                                            : el("p", { class: "empty" }, "No nodes registered."));
  // Widths through the DOM, not style attributes: the page's CSP has no 'unsafe-inline'.
  for (const d of document.querySelectorAll(".bar > div")) d.style.width = d.dataset.share + "%";
}

// The signed-in user's jobs in the resource queue (root: everyone's), by
// nap-web's /api/queue/* (nap-queued's API, authorized for the user by
// nap-web), in queue order per type.
function jobSize(j) {
  let data = {};
  try { data = JSON.parse(j.Data); } catch (e) { /* shown as "-" */ }
  const l = Array.isArray(data.instances) ? data.instances : [];
  return l.map((i) => `${i.VCPU} CPU, ${i.Memory} MiB, ${i.Disk} GiB`).join("; ") || "-";
}

function jobRow(j) {
  const job = { type: j.Type, request_id: j.RequestID };
  const button = (label, action, fn, cls) => el("button", { type: "button", class: cls || "secondary", dataset: { action },
    onclick: (ev) => act(ev.target, fn) }, label);
  const queued = j.Status === "queued", live = queued || j.Status === "running";
  const cls = j.Status === "running" ? "ok" : queued ? "idle" : "bad";
  return el("tr", { dataset: { job: `${j.Type}/${j.RequestID}`, status: j.Status } },
    el("td", {}, j.Type), el("td", {}, j.RequestID), state.admin ? el("td", {}, j.OwnerID) : null,
    el("td", {}, el("span", { class: "badge " + cls }, j.Status)), el("td", { class: "num" }, j.Priority), el("td", {}, jobSize(j)),
    el("td", {}, j.Placements.map((p) => p.Node).join(", ") || "-"),
    el("td", { class: "actions" },
      queued ? button("Up", "move-up", () => request("POST", "/api/queue/move", { ...job, direction: "up" })) : null,
      queued ? button("Down", "move-down", () => request("POST", "/api/queue/move", { ...job, direction: "down" })) : null,
      live ? button("Cancel", "cancel", () => confirm(`Cancel ${j.Type} job ${j.RequestID}?`) &&
        request("POST", "/api/queue/cancel", job), "danger") : null));
}

async function renderQueue() {
  const { jobs } = (await request("POST", "/api/queue/list", {})).parameters;
  const headers = ["Type", "Request", ...(state.admin ? ["Owner"] : []), "Status", "Priority", "Instances", "Placed on", ""];
  view(el("h1", {}, state.admin ? "The resource queue" : `Jobs of ${state.user} in the resource queue`),
       jobs.length ? table(headers, jobs.map(jobRow), { id: "queue-table" })
                   : el("p", { class: "empty" }, "No jobs. Submit one with napctl queue submit."));
  state.timer = setTimeout(() => { if (location.hash === "#/queue") route(); }, 5000);
}

// ---- routing and the session -------------------------------------------

async function route() {
  if (state.stream) { state.stream.close(); state.stream = null; }
  clearTimeout(state.timer);
  if (!state.user) return;
  const [, page, arg] = (location.hash || "#/apps").split("/").map(decodeURIComponent);
  try {
    if (page === "app") await renderApp(arg);
    else if (page === "log") renderLog(arg);
    else if (page === "nodes") await renderNodes();
    else if (page === "queue") await renderQueue();
    else await renderApps(arg);
  } catch (e) {
    view(el("p", { class: "empty" }, "Nothing to show: see above."));
    showError(e);
  }
}

function signedIn(session) {
  Object.assign(state, { user: session.user, admin: session.admin, csrf: session.csrf });
  $("signin").hidden = true;
  $("nav").hidden = false;
  $("whoami").textContent = session.user + (session.admin ? " (root)" : "");
  route();
}

function signedOut() {
  Object.assign(state, { user: null, admin: false, csrf: null });
  $("nav").hidden = true;
  $("signin").hidden = false;
  view();
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  showError(null);
  try {
    signedIn(await request("POST", "/api/signin", { token: $("signin-token").value.trim() }));
    $("signin-token").value = "";
  } catch (e) {
    showError(e);
  }
});

$("signout").addEventListener("click", async () => {
  try { await request("POST", "/api/signout", {}); } catch (e) { /* signed out anyway */ }
  signedOut();
});

window.addEventListener("hashchange", () => { showError(null); route(); });

request("GET", "/api/session").then(signedIn, signedOut);
