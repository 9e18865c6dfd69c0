// The datastream dashboard: log in, pick a sensor type and a device, see
// its history (from /readings/aggregate) and its live readings (from
// /readings/stream, read with fetch so the bearer token goes in a header,
// never in a URL). No build step; uPlot is the only library, served by the
// binary like this file.
"use strict";

(() => {
  const API = "/api/v1";
  const LIVE_POINTS = 600;
  const TABLE_ROWS = 50;
  const RECONNECT_MS = 2000;

  const $ = (id) => document.getElementById(id);
  const session = {
    get token() { return sessionStorage.getItem("datastream.token"); },
    get user() { return sessionStorage.getItem("datastream.user"); },
    save(token, user) {
      sessionStorage.setItem("datastream.token", token);
      sessionStorage.setItem("datastream.user", user);
    },
    clear() {
      sessionStorage.removeItem("datastream.token");
      sessionStorage.removeItem("datastream.user");
    },
  };

  let devices = [];
  let historyPlot = null;
  let livePlot = null;
  let live = { x: [], y: [] };
  let stream = null; // { abort: AbortController, lastId }
  let redrawQueued = false;

  function status(text) {
    $("status").textContent = text;
  }

  /** GET `path` under the API as JSON; a 401 ends the session. */
  async function get(path) {
    const response = await fetch(API + path, { headers: { Authorization: `Bearer ${session.token}` } });
    if (response.status === 401) {
      logOut("Your session has ended; log in again.");
      throw new Error("session ended");
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body.error?.message || `${path}: HTTP ${response.status}`);
    }
    return response.json();
  }

  // --- Log in and out -----------------------------------------------------

  $("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const username = form.elements.username.value.trim();
    const password = form.elements.password.value;
    $("login-error").textContent = "";
    try {
      const response = await fetch(`${API}/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username, password }),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        $("login-error").textContent = body.error?.message || `Login failed (HTTP ${response.status})`;
        return;
      }
      session.save(body.access_token, username);
      form.reset();
      show();
    } catch (error) {
      $("login-error").textContent = `Cannot reach the API: ${error.message}`;
    }
  });

  $("logout").addEventListener("click", () => logOut(""));

  function logOut(message) {
    stopStream();
    session.clear();
    $("dashboard").hidden = true;
    $("logout").hidden = true;
    $("who").textContent = "";
    $("login").hidden = false;
    $("login-error").textContent = message;
  }

  async function show() {
    $("login").hidden = true;
    $("dashboard").hidden = false;
    $("logout").hidden = false;
    $("who").textContent = session.user || "";
    try {
      await loadDevices();
      await refresh();
    } catch (error) {
      status(error.message);
    }
  }

  // --- Devices and filters -----------------------------------------------

  async function loadDevices() {
    devices = (await get("/devices")).data;
    const types = [...new Set(devices.map((d) => d.sensor_type))].sort();
    const select = $("sensor-type");
    const previous = select.value;
    select.replaceChildren(...types.map((t) => new Option(t, t)));
    if (types.includes(previous)) select.value = previous;
    fillDevices();
  }

  function fillDevices() {
    const type = $("sensor-type").value;
    const select = $("device");
    const previous = select.value;
    const options = devices
      .filter((d) => d.sensor_type === type)
      .sort((a, b) => a.id1.localeCompare(b.id1) || a.id2 - b.id2)
      .map((d) => new Option(`${d.id1}/${d.id2}`, `${d.id1}/${d.id2}`));
    select.replaceChildren(new Option("all devices", ""), ...options);
    if ([...select.options].some((o) => o.value === previous)) select.value = previous;
  }

  /** The chosen filters as a query string (without `?`). */
  function filters() {
    const params = new URLSearchParams();
    const type = $("sensor-type").value;
    if (type) params.set("sensor_type", type);
    const device = $("device").value;
    if (device) {
      const [id1, id2] = device.split("/");
      params.set("id1", id1);
      params.set("id2", id2);
    }
    return params;
  }

  $("sensor-type").addEventListener("change", () => {
    fillDevices();
    refresh();
  });
  $("device").addEventListener("change", refresh);
  $("range").addEventListener("change", () => loadHistory().catch((e) => status(e.message)));

  /** Reloads everything for the chosen filters: the latest readings seed
   * the live chart, then the stream continues from there. */
  async function refresh() {
    stopStream();
    $("live-info").textContent = "connecting…";
    live = { x: [], y: [] };
    // The stream resumes after the newest reading shown (its event id is
    // the timestamp in µs), so nothing stored meanwhile is missed.
    let resumeAfter = String(Date.now() * 1000);
    try {
      resumeAfter = (await loadLatest()) || resumeAfter;
    } catch (error) {
      status(error.message);
    }
    drawLive();
    startStream(resumeAfter);
    loadHistory().catch((error) => status(error.message));
  }

  /** A timestamp's event id: microseconds since the epoch, as text. */
  function eventId(timestamp) {
    const [whole, fraction = ""] = timestamp.replace("Z", "").split(".");
    const micros = Date.parse(`${whole}Z`) * 1000 + Number(fraction.padEnd(6, "0").slice(0, 6));
    return String(micros);
  }

  // --- History ------------------------------------------------------------

  async function loadHistory() {
    const params = filters();
    params.set("duration", $("range").value);
    params.set("group_by", $("device").value ? "device" : "sensor_type");
    const answer = await get(`/readings/aggregate?${params}`);
    const x = [], min = [], avg = [], max = [];
    for (const b of answer.data) {
      x.push(Date.parse(b.bucket) / 1000);
      min.push(b.min);
      avg.push(b.avg);
      max.push(b.max);
    }
    $("history-info").textContent = `${answer.data.length} buckets of ${answer.interval}`;
    const data = [x, min, avg, max];
    if (!historyPlot) {
      historyPlot = new uPlot(
        {
          width: chartWidth("history-chart"),
          height: 260,
          series: [
            {},
            { label: "min", stroke: "#93c5fd", width: 1 },
            { label: "avg", stroke: "#2563eb", width: 2 },
            { label: "max", stroke: "#93c5fd", width: 1 },
          ],
          bands: [{ series: [3, 1], fill: "rgba(37, 99, 235, 0.12)" }],
          axes: [{}, { size: 60 }],
        },
        data,
        $("history-chart"),
      );
    } else {
      historyPlot.setData(data);
    }
  }

  // --- Latest readings and the live stream ---------------------------------

  /** Loads the latest 20 readings into the table and the live chart;
   * returns the newest one's event id (null when there is none). */
  async function loadLatest() {
    const params = filters();
    params.set("limit", "20");
    const page = await get(`/readings?${params}`);
    const rows = $("latest").tBodies[0];
    rows.replaceChildren();
    for (const r of page.data.slice().reverse()) {
      addRow(r);
      live.x.push(Date.parse(r.timestamp) / 1000);
      live.y.push(r.sensor_value);
    }
    return page.data.length ? eventId(page.data[0].timestamp) : null;
  }

  function addRow(r) {
    const rows = $("latest").tBodies[0];
    const tr = document.createElement("tr");
    for (const text of [r.timestamp.replace("T", " ").replace("Z", ""), `${r.id1}/${r.id2}`, r.sensor_type, String(r.sensor_value)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    rows.prepend(tr);
    while (rows.rows.length > TABLE_ROWS) rows.deleteRow(-1);
  }

  function stopStream() {
    if (stream) stream.abort.abort();
    stream = null;
  }

  /** Opens the stream for the chosen filters, replacing any open one. */
  function startStream(lastId) {
    stopStream();
    const mine = { abort: new AbortController(), lastId };
    stream = mine;
    readStream(mine).catch((error) => {
      if (mine.abort.signal.aborted) return;
      status(`live: ${error.message}; reconnecting`);
      setTimeout(() => { if (stream === mine) startStream(mine.lastId); }, RECONNECT_MS);
    });
  }

  async function readStream(mine) {
    const headers = { Authorization: `Bearer ${session.token}` };
    if (mine.lastId) headers["Last-Event-ID"] = mine.lastId;
    const response = await fetch(`${API}/readings/stream?${filters()}`, { headers, signal: mine.abort.signal });
    if (response.status === 401) return logOut("Your session has ended; log in again.");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    $("live-info").textContent = "connected";
    status("");
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error("stream ended");
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (onEvent(mine, block) === "stop") return;
      }
    }
  }

  /** Handles one event block; "stop" ends the stream for good. */
  function onEvent(mine, block) {
    let name = "message", id = null, data = null;
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) name = line.slice(7);
      else if (line.startsWith("id: ")) id = line.slice(4);
      else if (line.startsWith("data: ")) data = JSON.parse(line.slice(6));
    }
    if (!data) return;
    if (name === "expired" || name === "revoked") {
      logOut(data.reason);
      return "stop";
    }
    if (name !== "message") throw new Error(data.reason); // overflow, closing: reconnect
    if (id) mine.lastId = id;
    live.x.push(Date.parse(data.timestamp) / 1000);
    live.y.push(data.sensor_value);
    if (live.x.length > LIVE_POINTS) {
      live.x.shift();
      live.y.shift();
    }
    addRow(data);
    $("live-info").textContent = `${live.x.length} readings`;
    queueRedraw();
  }

  function queueRedraw() {
    if (redrawQueued) return;
    redrawQueued = true;
    requestAnimationFrame(() => {
      redrawQueued = false;
      drawLive();
    });
  }

  function drawLive() {
    // One device is a line; every device of a type, interleaved, is points.
    const oneDevice = Boolean($("device").value);
    const data = [live.x, live.y];
    if (!livePlot || livePlot.oneDevice !== oneDevice) {
      if (livePlot) livePlot.destroy();
      livePlot = new uPlot(
        {
          width: chartWidth("live-chart"),
          height: 260,
          series: [
            {},
            oneDevice
              ? { label: "value", stroke: "#16a34a", width: 2 }
              : { label: "value", stroke: "#16a34a", paths: () => null, points: { show: true, size: 4, fill: "#16a34a" } },
          ],
          axes: [{}, { size: 60 }],
        },
        data,
        $("live-chart"),
      );
      livePlot.oneDevice = oneDevice;
    } else {
      livePlot.setData(data);
    }
  }

  function chartWidth(id) {
    return Math.max(280, $(id).clientWidth || 600);
  }

  window.addEventListener("resize", () => {
    for (const [plot, id] of [[historyPlot, "history-chart"], [livePlot, "live-chart"]]) {
      if (plot) plot.setSize({ width: chartWidth(id), height: 260 });
    }
  });

  if (session.token) show();
})();
