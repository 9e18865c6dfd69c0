// Alerts on the dashboard: the firing alerts panel of the Data tab (live,
// from /alerts/stream, read with fetch like the readings stream), the set
// of alerting devices the device picker marks, and the rule editor of the
// Manage tab (admins change rules; viewers read them). Loaded after
// api-client.js, before dashboard.js.
"use strict";

const alerts = (() => {
  const $ = (id) => document.getElementById(id);
  const RECONNECT_MS = 2000;
  const firing = new Map(); // alert id -> alert (AlertDto shape)
  let stream = null; // AbortController
  let changed = () => {};
  let ticker = null;

  function age(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    if (s < 172800) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} days`;
  }

  // --- The firing panel ----------------------------------------------------

  function render() {
    const list = [...firing.values()].sort((a, b) => Date.parse(a.fired_at) - Date.parse(b.fired_at));
    $("alerts-count").textContent = list.length ? `${list.length} firing` : "none firing";
    const now = Date.now();
    const rows = list.map((a) => {
      const li = document.createElement("li");
      li.dataset.alert = String(a.id);
      li.dataset.device = `${a.id1}/${a.id2}`;
      const name = document.createElement("strong");
      name.textContent = a.rule_name;
      const device = document.createElement("span");
      device.textContent = `${a.sensor_type} ${a.id1}/${a.id2}`;
      const detail = document.createElement("span");
      detail.className = "value";
      detail.textContent = a.kind === "silence" ? "silent" : String(a.start_value ?? "");
      const since = document.createElement("span");
      since.className = "age";
      since.dataset.firedAt = a.fired_at;
      since.textContent = `firing for ${age(now - Date.parse(a.fired_at))}`;
      since.title = a.fired_at;
      li.append(name, device, detail, since);
      return li;
    });
    $("alerts-list").replaceChildren(...rows);
  }

  /** Ages move every second without re-rendering the list. */
  function tick() {
    const now = Date.now();
    for (const span of document.querySelectorAll("#alerts-list .age")) {
      span.textContent = `firing for ${age(now - Date.parse(span.dataset.firedAt))}`;
    }
  }

  function onEvent(block) {
    let name = "message", data = null;
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) name = line.slice(7);
      else if (line.startsWith("data: ")) data = JSON.parse(line.slice(6));
    }
    if (!data) return;
    if (name === "firing") {
      firing.set(data.id, data);
    } else if (name === "alert") {
      if (data.state === "firing") {
        firing.set(data.alert_id, {
          id: data.alert_id, rule_id: data.rule_id, rule_name: data.rule_name, kind: data.kind,
          sensor_type: data.sensor_type, id1: data.id1, id2: data.id2,
          start_value: data.value, fired_at: data.fired_at,
        });
      } else {
        firing.delete(data.alert_id);
      }
    } else if (name === "expired" || name === "revoked") {
      return "stop";
    } else {
      throw new Error(data.reason); // overflow, closing: reconnect
    }
    render();
    changed();
  }

  async function read(abort) {
    const response = await fetch(`${apiClient.API}/alerts/stream`, {
      headers: { Authorization: `Bearer ${apiClient.session.token}` },
      signal: abort.signal,
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    // A fresh snapshot follows: forget what the last connection said.
    firing.clear();
    await apiClient.readEvents(response, onEvent);
  }

  /** Follows the stream until `stop`, reconnecting after failures. */
  function start(onChange) {
    stop();
    changed = onChange;
    const abort = new AbortController();
    stream = abort;
    ticker = setInterval(tick, 1000);
    const loop = () => read(abort).catch(() => {
      if (abort.signal.aborted) return;
      $("alerts-count").textContent = "reconnecting…";
      setTimeout(() => { if (stream === abort) loop(); }, RECONNECT_MS);
    });
    loop();
  }

  function stop() {
    if (stream) stream.abort();
    stream = null;
    clearInterval(ticker);
    firing.clear();
  }

  /** Devices of `sensorType` with a firing alert, as "ID1/2". */
  function alertingDevices(sensorType) {
    const keys = new Set();
    for (const a of firing.values()) if (a.sensor_type === sensorType) keys.add(`${a.id1}/${a.id2}`);
    return keys;
  }

  // --- The rule editor (Manage tab) -----------------------------------------

  let rules = [];

  function describe(r) {
    const who = [r.sensor_type, r.id1 ?? "any id1", r.id2 ?? "any id2"].join(" ");
    let what;
    if (r.kind === "silence") {
      what = `quiet for ${r.for}`;
    } else {
      const side = r.above !== null && r.above !== undefined ? `above ${r.above}` : `below ${r.below}`;
      what = `${side} for ${r.for}${r.clear_at !== null && r.clear_at !== undefined ? `, clears at ${r.clear_at}` : ""}`;
    }
    return { who, what };
  }

  const { cell, button, deleteButton } = pageParts;

  /** Runs `change`, then reloads the rules; an error names its field. */
  const attempt = (change) => pageParts.attempt("rules-error", change, loadRules);

  async function loadRules() {
    const admin = apiClient.role() === "admin";
    rules = await apiClient.getJson("/alert-rules");
    const rows = rules.map((r) => {
      const tr = document.createElement("tr");
      tr.dataset.rule = String(r.id);
      const { who, what } = describe(r);
      tr.append(cell(r.name), cell(r.kind), cell(who), cell(what), cell(r.repeat_every ?? ""), cell(r.webhook_url ?? ""));
      const actions = document.createElement("span");
      actions.className = "actions";
      if (admin) {
        actions.append(button("Edit", () => edit(r)));
        actions.append(deleteButton(() => attempt(() => apiClient.json("DELETE", `/alert-rules/${r.id}`))));
      }
      tr.append(cell(actions));
      return tr;
    });
    $("rules-table").tBodies[0].replaceChildren(...rows);
  }

  /** Fills the form with `rule`; saving then changes it. */
  function edit(rule) {
    const form = $("rule-form");
    form.dataset.editing = String(rule.id);
    const side = rule.below !== null && rule.below !== undefined ? "below" : "above";
    const values = {
      name: rule.name, kind: rule.kind, sensor_type: rule.sensor_type, id1: rule.id1 ?? "",
      id2: rule.id2 ?? "", side, limit: rule[side] ?? "", clear_at: rule.clear_at ?? "",
      for: rule.for, repeat_every: rule.repeat_every ?? "", webhook_url: rule.webhook_url ?? "", webhook_secret: "",
    };
    for (const [name, value] of Object.entries(values)) form.elements[name].value = String(value);
    form.querySelector("button[type=submit]").textContent = "Save rule";
    $("rule-cancel").hidden = false;
    kindChanged();
  }

  function resetForm() {
    const form = $("rule-form");
    form.reset();
    delete form.dataset.editing;
    form.querySelector("button[type=submit]").textContent = "Add rule";
    $("rule-cancel").hidden = true;
    kindChanged();
  }

  /** Threshold fields only for threshold rules. */
  function kindChanged() {
    const threshold = $("rule-form").elements.kind.value === "threshold";
    for (const element of document.querySelectorAll("#rule-form .threshold-only")) element.hidden = !threshold;
  }

  /** The request body the form describes (empty optional fields left out,
   * or, when editing, cleared). */
  function ruleBody(form, editing) {
    const f = Object.fromEntries(new FormData(form));
    const text = (v) => (v ?? "").trim();
    const optional = (v, convert = (x) => x) => (text(v) === "" ? (editing ? null : undefined) : convert(text(v)));
    const body = {
      name: text(f.name), kind: f.kind, sensor_type: text(f.sensor_type), for: text(f.for),
      id1: optional(f.id1), id2: optional(f.id2, Number), repeat_every: optional(f.repeat_every),
    };
    if (f.kind === "threshold") {
      body[f.side] = text(f.limit) === "" ? undefined : Number(text(f.limit));
      body[f.side === "above" ? "below" : "above"] = editing ? null : undefined;
      body.clear_at = optional(f.clear_at, Number);
    } else if (editing) {
      body.above = null; body.below = null; body.clear_at = null;
    }
    const url = text(f.webhook_url);
    if (url) {
      body.webhook_url = url;
      if (text(f.webhook_secret)) body.webhook_secret = text(f.webhook_secret);
    } else if (editing) {
      body.webhook_url = null;
      body.webhook_secret = null;
    }
    for (const key of Object.keys(body)) if (body[key] === undefined) delete body[key];
    return body;
  }

  $("rule-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    const editing = form.dataset.editing;
    const body = ruleBody(form, Boolean(editing));
    attempt(async () => {
      if (editing) await apiClient.json("PATCH", `/alert-rules/${editing}`, body);
      else await apiClient.json("POST", "/alert-rules", body);
      resetForm();
    });
  });
  $("rule-form").elements.kind.addEventListener("change", kindChanged);
  $("rule-cancel").addEventListener("click", resetForm);

  /** Shows the rules: the editor for admins only. */
  async function showRules() {
    $("rule-form").hidden = apiClient.role() !== "admin";
    kindChanged();
    await attempt(async () => {});
  }

  return { start, stop, alertingDevices, showRules };
})();
