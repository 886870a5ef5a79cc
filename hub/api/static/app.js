// StreamFlow alerts page: the alerts live, devices and a chart of the last hour.
// Plain JavaScript with no build step and nothing from a CDN: gateways and the
// people who look at them may be offline. An ES module (strict by itself);
// every call to the API, the sign-in and its tokens are in ./api.js.

import { api } from "./api.js";

// ---------------------------------------------------------------- helpers

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  if (tag === "td") node.setAttribute("role", "cell");
  return node;
}

// The API gives µs ("…07.500000Z"); Date wants at most ms everywhere.
function parseTime(text) {
  return text ? new Date(text.replace(/(\.\d{3})\d+/, "$1")) : null;
}

function localTime(text) {
  const date = parseTime(text);
  return date ? date.toLocaleString() : "";
}

function showMessage(text) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
}

// ---------------------------------------------------------------- alerts

const alerts = new Map(); // id -> alert as the API last gave it
let loaded = false; // the first page is in; earlier stream events wait
const early = [];
// Counts sign-ins and sign-outs: an answer to an older one is dropped, so
// that nothing shows up again after a sign-out.
let generation = 0;

// Keep the newer of two versions of an alert (the stream and a page may
// cross); `updated` is the wall time of its latest state change.
function keep(alert) {
  const old = alerts.get(alert.id);
  if (!old || (alert.updated || "") >= (old.updated || "")) {
    alerts.set(alert.id, alert);
  }
}

async function loadAlerts() {
  const state = $("state-filter").value;
  const gen = generation;
  try {
    const page = await api("/v1/alerts", { query: { state, limit: 200 } });
    if (gen !== generation) return;
    alerts.clear();
    for (const alert of page.alerts) keep(alert);
    showMessage("");
  } catch (err) {
    if (gen !== generation) return;
    showMessage(`Cannot load alerts: ${err.message}`);
  }
  loaded = true;
  for (const alert of early.splice(0)) keep(alert);
  renderAlerts();
}

function byNewest(a, b) {
  if (a.opened !== b.opened) return a.opened < b.opened ? 1 : -1;
  return a.id < b.id ? 1 : -1;
}

function renderAlerts() {
  const state = $("state-filter").value;
  const shown = [...alerts.values()]
    .filter((a) => !state || a.state === state)
    .sort(byNewest);
  $("alerts").tBodies[0].replaceChildren(...shown.map(alertRow));
  $("no-alerts").hidden = shown.length > 0;
}

function alertRow(alert) {
  const label = `${alert.summary} (${alert.device || alert.gateway || alert.kind})`;
  const actions = el("td", { class: "actions", "data-label": "Actions" });
  if (alert.state === "open") {
    actions.append(
      el("button", {
        type: "button",
        class: "ack",
        "aria-label": `Acknowledge alert: ${label}`,
        text: "Acknowledge",
        onclick: (ev) => change(alert.id, "ack", ev.currentTarget),
      }),
    );
  }
  if (alert.state === "open" || alert.state === "acknowledged") {
    actions.append(
      el("button", {
        type: "button",
        class: "resolve",
        "aria-label": `Resolve alert: ${label}`,
        text: "Resolve",
        onclick: (ev) => change(alert.id, "resolve", ev.currentTarget),
      }),
    );
  }
  const past = alert.past
    ? el("span", {
        class: "badge past",
        title: "raised from late readings: it happened at the time shown",
        text: "past",
      })
    : null;
  return el(
    "tr",
    {
      class: `alert sev-${alert.severity} state-${alert.state}`,
      role: "row",
      "data-id": alert.id,
    },
    el(
      "td",
      { "data-label": "Severity" },
      el("span", { class: `badge ${alert.severity}`, text: alert.severity }),
    ),
    el("td", { class: "state", "data-label": "State", text: alert.state }),
    el("td", {
      class: "device",
      "data-label": "Device",
      text: alert.device || alert.gateway || "",
    }),
    el("td", { class: "summary", "data-label": "Summary", text: alert.summary }, past),
    el(
      "td",
      { class: "opened", "data-label": "Opened" },
      el("time", { datetime: alert.opened || "", text: localTime(alert.opened) }),
    ),
    actions,
  );
}

const ACTIONS = { ack: "acknowledge alerts", resolve: "resolve alerts" };

async function change(id, action, button) {
  button.disabled = true;
  try {
    keep(await api(`/v1/alerts/${encodeURIComponent(id)}/${action}`, {
      method: "POST",
      body: {},
      action: ACTIONS[action],
    }));
    showMessage("");
  } catch (err) {
    showMessage(err.message);
    if (err.status === 409) {
      // Someone (the monitor, another person) changed it first: show theirs.
      try {
        keep(await api(`/v1/alerts/${encodeURIComponent(id)}`));
      } catch (_) {
        // the message above says enough
      }
    }
  }
  renderAlerts();
}

let stream = null;

function setLive(text, on) {
  const live = $("live");
  live.textContent = text;
  live.classList.toggle("on", on);
}

function connectStream() {
  stream = api.stream("/v1/alerts/stream", {
    on: (type, text) => {
      if (type !== "alert") return;
      const data = JSON.parse(text);
      delete data.change;
      delete data.actor;
      delete data.at;
      if (!loaded) {
        early.push(data);
        return;
      }
      keep(data);
      renderAlerts();
    },
    onState: (state, err) => {
      // After an error api.stream reconnects with Last-Event-ID, and the
      // server sends what was missed.
      if (state === "open") setLive("live", true);
      else if (state === "reconnecting") setLive("reconnecting…", false);
      else {
        setLive("not live", false);
        if (err) showMessage(`Live updates stopped: ${err.message}`);
      }
    },
  });
}

// ---------------------------------------------------------------- devices

let selected = null;

async function loadDevices() {
  let devices;
  const gen = generation;
  try {
    devices = await api("/v1/devices");
  } catch (err) {
    if (gen === generation) showMessage(`Cannot load devices: ${err.message}`);
    return;
  }
  if (gen !== generation) return;
  $("devices").replaceChildren(
    ...devices.map((d) =>
      el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            class: "device",
            "data-id": d.id,
            "aria-pressed": String(d.id === selected),
            "aria-label": `Show ${d.id}, ${d.online ? "online" : "offline"}`,
            onclick: () => selectDevice(d.id),
          },
          el("span", { text: d.name || d.id }),
          el("span", {
            class: d.online ? "online" : "offline",
            text: d.online ? "online" : "offline",
          }),
        ),
      ),
    ),
  );
}

async function selectDevice(id) {
  selected = id;
  for (const button of document.querySelectorAll("#devices button")) {
    button.setAttribute("aria-pressed", String(button.dataset.id === id));
  }
  $("device-detail").hidden = false;
  $("chart-title").textContent = `${id}: last hour`;
  let latest = [];
  try {
    latest = await api(`/v1/devices/${encodeURIComponent(id)}/latest`);
  } catch (err) {
    showMessage(`Cannot load ${id}: ${err.message}`);
  }
  const metric = $("metric");
  metric.replaceChildren(
    ...latest.map((r) => el("option", { value: r.metric, text: r.metric })),
  );
  await drawChart();
}

async function drawChart() {
  const chart = $("chart");
  const metric = $("metric").value;
  if (!selected || !metric) {
    chart.replaceChildren(el("p", { class: "empty", text: "No readings." }));
    return;
  }
  const to = new Date();
  const from = new Date(to.getTime() - 3600 * 1000);
  let agg;
  try {
    agg = await api(`/v1/devices/${encodeURIComponent(selected)}/aggregate`, {
      query: {
        metric,
        bucket: "1m",
        from: from.toISOString(),
        to: to.toISOString(),
      },
    });
  } catch (err) {
    chart.replaceChildren(el("p", { class: "empty", text: err.message }));
    return;
  }
  chart.replaceChildren(svgChart(agg, from, to));
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// One point per bucket (its average) on a line, over the hour [from, to).
function svgChart(agg, from, to) {
  const W = 320;
  const H = 140;
  const pad = { left: 34, right: 6, top: 8, bottom: 18 };
  const buckets = agg.buckets;
  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": `${agg.metric} of ${agg.device}, average per minute, last hour`,
  });
  root.append(svg("title", {}, `${agg.metric} of ${agg.device}`));
  root.append(
    svg("line", {
      class: "axis",
      x1: pad.left,
      y1: H - pad.bottom,
      x2: W - pad.right,
      y2: H - pad.bottom,
    }),
  );
  if (buckets.length === 0) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" },
      "no readings in the last hour"));
    return root;
  }
  const lo = Math.min(...buckets.map((b) => b.avg));
  const hi = Math.max(...buckets.map((b) => b.avg));
  const span = hi - lo || 1;
  const t0 = from.getTime();
  const dt = to.getTime() - t0;
  const x = (b) => pad.left + ((parseTime(b.start) - t0) / dt) * (W - pad.left - pad.right);
  const y = (b) => H - pad.bottom - ((b.avg - lo) / span) * (H - pad.top - pad.bottom);
  const points = buckets.map((b) => `${x(b).toFixed(1)},${y(b).toFixed(1)}`);
  root.append(svg("polyline", { class: "line", points: points.join(" ") }));
  for (const b of buckets) {
    const dot = svg("circle", { class: "pt", cx: x(b).toFixed(1), cy: y(b).toFixed(1), r: 2 });
    dot.append(svg("title", {}, `${localTime(b.start)}: ${b.avg} (${b.count} readings)`));
    root.append(dot);
  }
  const fmt = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
  root.append(svg("text", { x: pad.left - 4, y: pad.top + 8, "text-anchor": "end" }, fmt(hi)));
  root.append(svg("text", { x: pad.left - 4, y: H - pad.bottom, "text-anchor": "end" }, fmt(lo)));
  root.append(svg("text", { x: pad.left, y: H - 4 }, "-60 min"));
  root.append(svg("text", { x: W - pad.right, y: H - 4, "text-anchor": "end" }, "now"));
  return root;
}

// ---------------------------------------------------------------- sign-in

let devicesTimer = null;

// Signed in (or auth off): show the alerts and start reading.
function start(me) {
  generation += 1;
  $("sign-in").hidden = true;
  $("app").hidden = false;
  $("who").textContent = api.authOff() ? "" : `${me.name} (${me.role})`;
  $("sign-out").hidden = api.authOff();
  showMessage("");
  loaded = false;
  connectStream();
  loadAlerts();
  loadDevices();
  // Devices go online and offline without alerts for everything: re-read.
  devicesTimer = setInterval(loadDevices, 30000);
}

// Signed out: stop reading, forget what was shown, show the form.
function stop(message) {
  generation += 1;
  if (stream) stream.close();
  stream = null;
  clearInterval(devicesTimer);
  alerts.clear();
  early.length = 0;
  selected = null;
  renderAlerts();
  $("devices").replaceChildren();
  $("device-detail").hidden = true;
  setLive("signed out", false);
  $("who").textContent = "";
  $("sign-out").hidden = true;
  $("app").hidden = true;
  showSignIn(message);
}

function showSignIn(message, isError = false) {
  setLive("", false);
  $("sign-in").hidden = false;
  const note = $("sign-in-message");
  note.textContent = message || "";
  note.hidden = !message;
  note.classList.toggle("error", isError);
  $("password").value = "";
  $("username").focus();
}

async function onSignIn(ev) {
  ev.preventDefault();
  const button = $("sign-in-button");
  button.disabled = true;
  try {
    start(await api.signIn($("username").value.trim(), $("password").value));
  } catch (err) {
    showSignIn(`Cannot sign in: ${err.message}`, true);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- start

document.addEventListener("DOMContentLoaded", async () => {
  $("state-filter").addEventListener("change", loadAlerts);
  $("metric").addEventListener("change", drawChart);
  $("sign-in").addEventListener("submit", onSignIn);
  $("sign-out").addEventListener("click", () => api.signOut());
  api.onSessionEnd((message) => stop(message));
  let restored;
  try {
    restored = await api.restore();
  } catch (err) {
    restored = { me: null, message: `Cannot reach the API: ${err.message}` };
  }
  if (restored.me) start(restored.me);
  else showSignIn(restored.message, Boolean(restored.message));
});
