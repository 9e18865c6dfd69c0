// The datastream dashboard: log in, pick a sensor type and up to ten of its
// devices, see their history over a chosen range (from
// /readings/aggregate), their live readings (from /readings/stream, read
// with fetch so the bearer token goes in a header, never in a URL) and
// which devices went silent. Units and names come from the sensor-type
// catalog. No build step; uPlot is the only library, served by the binary
// like this file.
//
// What is shown lives in the URL's fragment (type, devices, range), so a
// view can be bookmarked and shared; the time zone and the silence
// threshold are remembered in local storage.
"use strict";

(() => {
  const API = apiClient.API;
  const MAX_DEVICES = 10;
  const LIVE_POINTS = 300; // per device
  const TABLE_ROWS = 50;
  const DEVICE_ROWS_SHOWN = 200;
  const RECONNECT_MS = 2000;
  const PRESETS = { "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800, "30d": 2592000 };
  // Distinct on white and for common colour blindness (Tableau 10).
  const COLOURS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#6b7280"];

  const $ = (id) => document.getElementById(id);
  const { session, getJson } = apiClient;
  const prefs = {
    get timeZone() { return localStorage.getItem("datastream.tz") === "local" ? "local" : "utc"; },
    set timeZone(v) { localStorage.setItem("datastream.tz", v); },
    get silentAfter() { return Number(localStorage.getItem("datastream.silent")) || 300; },
    set silentAfter(v) { localStorage.setItem("datastream.silent", String(v)); },
  };

  // What is shown: kept in the URL fragment.
  const view = { type: "", devices: [], range: "1h", from: null, to: null };
  let catalog = new Map(); // name -> catalog entry
  let devices = []; // of the chosen type, from /devices
  let historyPlot = null;
  let livePlot = null;
  let live = new Map(); // "ID1/2" -> { x: [], y: [] }
  let stream = null; // { abort: AbortController, lastId }
  let redrawQueued = false;
  let historyRequest = 0;
  let historyWindow = { from: 0, to: 1 }; // what the history's x axis spans
  let tableRows = []; // newest first
  let refreshes = 0; // a refresh that is no longer the latest adds nothing

  function status(text) {
    $("status").textContent = text;
  }

  function plural(n, one, many = `${one}s`) {
    return `${n} ${n === 1 ? one : many}`;
  }

  /** GET `path` under the API; the response, for its text. */
  const get = (path) => apiClient.request("GET", path);

  // --- Time: one zone for axes, tooltips, the table and the range inputs ---

  /** The parts of `ms` (epoch milliseconds) in the chosen time zone. */
  function timeParts(ms) {
    const format = timeParts.cache?.zone === prefs.timeZone ? timeParts.cache.format : null;
    const f = format || new Intl.DateTimeFormat("en-CA", {
      timeZone: prefs.timeZone === "utc" ? "UTC" : undefined,
      year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
    });
    timeParts.cache = { zone: prefs.timeZone, format: f };
    const parts = {};
    for (const p of f.formatToParts(new Date(ms))) parts[p.type] = p.value;
    return parts;
  }

  /** `2026-12-05 14:30:05` in the chosen zone. */
  function fullTime(ms) {
    const p = timeParts(ms);
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
  }

  /** The x-axis labels: the time, and the date where the day changes. */
  function timeAxisValues(u, splits, axisIdx, space, incr) {
    let previousDay = null;
    return splits.map((s) => {
      const p = timeParts(s * 1000);
      const day = `${p.month}-${p.day}`;
      const time = incr < 60 ? `${p.hour}:${p.minute}:${p.second}` : `${p.hour}:${p.minute}`;
      const label = incr >= 86400 ? day : previousDay === null || day !== previousDay ? `${time}\n${day}` : time;
      previousDay = day;
      return label;
    });
  }

  /** uPlot's idea of a date: in UTC, or the browser's zone. */
  function tzDate(ts) {
    const date = new Date(ts * 1000);
    return prefs.timeZone === "utc" ? uPlot.tzDate(date, "Etc/UTC") : date;
  }

  /** `datetime-local` input text for epoch seconds, in the chosen zone. */
  function inputTime(seconds) {
    const p = timeParts(seconds * 1000);
    return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}:${p.second}`;
  }

  /** Epoch seconds for `datetime-local` input text, read in the chosen zone. */
  function parseInputTime(text) {
    if (!text) return null;
    if (prefs.timeZone === "utc") return Date.parse(`${text.length === 16 ? `${text}:00` : text}Z`) / 1000;
    return new Date(text).getTime() / 1000;
  }

  /** Seconds of an interval label such as `15m`. */
  function intervalSeconds(label) {
    const unit = { s: 1, m: 60, h: 3600, d: 86400 }[label.slice(-1)];
    return Number(label.slice(0, -1)) * unit;
  }

  const iso = (seconds) => new Date(seconds * 1000).toISOString();

  /** The range shown, in epoch seconds: a preset ends now. */
  function currentWindow() {
    if (view.range === "custom" && view.from !== null && view.to !== null) return { from: view.from, to: view.to };
    const to = Math.floor(Date.now() / 1000);
    return { from: to - (PRESETS[view.range] || 3600), to };
  }

  // --- The view in the URL -------------------------------------------------

  function readUrl() {
    const params = new URLSearchParams(location.hash.slice(1));
    view.type = params.get("type") || "";
    view.devices = (params.get("devices") || "").split(",").filter((d) => /^[A-Z]{1,32}\/\d{1,10}$/.test(d)).slice(0, MAX_DEVICES);
    const from = Date.parse(params.get("from") || "");
    const to = Date.parse(params.get("to") || "");
    if (params.get("range") === "custom" && from < to) {
      Object.assign(view, { range: "custom", from: from / 1000, to: to / 1000 });
    } else {
      view.range = PRESETS[params.get("range")] ? params.get("range") : "1h";
    }
  }

  function writeUrl() {
    const params = new URLSearchParams();
    if (view.type) params.set("type", view.type);
    if (view.devices.length) params.set("devices", view.devices.join(","));
    params.set("range", view.range);
    if (view.range === "custom") {
      params.set("from", iso(view.from));
      params.set("to", iso(view.to));
    }
    history.replaceState(null, "", `#${params}`);
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
  apiClient.onSessionEnd(logOut);

  function logOut(message) {
    stopStream();
    alerts.stop();
    session.clear();
    $("dashboard").hidden = true;
    $("manage").hidden = true;
    $("tabs").hidden = true;
    $("logout").hidden = true;
    $("who").textContent = "";
    $("login").hidden = false;
    $("login-error").textContent = message;
  }

  async function show() {
    $("login").hidden = true;
    $("dashboard").hidden = false;
    $("manage").hidden = true;
    $("tabs").hidden = false;
    $("logout").hidden = false;
    $("who").textContent = session.user || "";
    $("time-zone").value = prefs.timeZone;
    $("silent-after").value = String(prefs.silentAfter);
    readUrl();
    alerts.start(() => renderDevices());
    try {
      await loadCatalog();
      if (!view.type) view.type = await mostRecentlyActiveType();
      fillTypes();
      showRangeControls();
      await refresh();
    } catch (error) {
      status(error.message);
    }
  }

  // --- Tabs: the data, and managing the catalog and users ----------------

  $("tabs").addEventListener("click", (event) => {
    const tab = event.target.dataset?.tab;
    if (!tab) return;
    for (const b of document.querySelectorAll("#tabs .tab")) b.setAttribute("aria-pressed", String(b.dataset.tab === tab));
    $("dashboard").hidden = tab !== "dashboard";
    $("manage").hidden = tab !== "manage";
    if (tab === "manage") {
      manage.show();
      alerts.showRules();
    } else {
      // Units or names may have changed meanwhile.
      loadCatalog().then(() => { fillTypes(); renderDevices(); renderTable(); }).catch((error) => status(error.message));
    }
  });

  // --- Sensor types and devices ------------------------------------------

  async function loadCatalog() {
    const entries = await getJson("/sensor-types");
    catalog = new Map(entries.map((e) => [e.name, e]));
  }

  /** The type of the newest stored reading: where something is happening. */
  async function mostRecentlyActiveType() {
    const newest = await getJson("/readings?limit=1");
    if (newest.data.length) return newest.data[0].sensor_type;
    const withReadings = [...catalog.values()].find((e) => e.has_readings);
    return (withReadings || [...catalog.values()][0] || { name: "" }).name;
  }

  function typeLabel(name) {
    const entry = catalog.get(name);
    const label = entry?.display_name || name;
    return entry?.unit ? `${label} (${entry.unit})` : label;
  }

  const unitOf = (type) => catalog.get(type)?.unit || "";

  function withUnit(value, type) {
    if (value === null || value === undefined) return "–";
    const unit = unitOf(type);
    const text = Number.isInteger(value) ? String(value) : value.toFixed(Math.abs(value) >= 100 ? 1 : 2);
    return unit ? `${text} ${unit}` : text;
  }

  function fillTypes() {
    const select = $("sensor-type");
    const entries = [...catalog.values()];
    const group = (label, list) => {
      const g = document.createElement("optgroup");
      g.label = label;
      g.append(...list.map((e) => new Option(typeLabel(e.name), e.name)));
      return g;
    };
    const seen = entries.filter((e) => e.has_readings);
    const unseen = entries.filter((e) => !e.has_readings);
    select.replaceChildren(group("With readings", seen), ...(unseen.length ? [group("No readings yet", unseen)] : []));
    if (view.type && !catalog.has(view.type)) select.append(new Option(view.type, view.type));
    select.value = view.type;
  }

  let devicesMore = false; // the list was cut at DEVICE_ROWS_SHOWN
  let searchTimer = null;

  /** The type's devices the search finds, one page of them (the server
   * searches, so a catalog of 10,000 devices costs one small answer). */
  async function loadDevices() {
    if (!view.type) {
      devices = [];
      devicesMore = false;
    } else {
      const params = new URLSearchParams({ sensor_type: view.type, limit: String(DEVICE_ROWS_SHOWN) });
      const search = $("device-search").value.trim();
      if (search) {
        if (!/^[A-Za-z]{1,32}(\/[0-9]{0,10})?$/.test(search)) {
          $("device-count").textContent = "search by id1 (letters) or id1/id2";
          return;
        }
        params.set("search", search);
      }
      const answer = await getJson(`/devices?${params}`);
      const known = new Map(devices.map((d) => [deviceKey(d), d]));
      devices = answer.data;
      devicesMore = Boolean(answer.page.next_cursor);
      // Chosen devices stay listed even when the search does not find them.
      for (const key of view.devices) {
        if (!devices.some((d) => deviceKey(d) === key) && known.has(key)) devices.push(known.get(key));
      }
    }
    renderDevices();
  }

  const deviceKey = (d) => `${d.id1}/${d.id2}`;

  function colourOf(key) {
    const index = view.devices.indexOf(key);
    if (index >= 0) return COLOURS[index % COLOURS.length];
    const liveIndex = [...live.keys()].indexOf(key);
    return COLOURS[(liveIndex >= 0 ? liveIndex : 0) % COLOURS.length];
  }

  function age(seconds) {
    if (seconds < 60) return `${Math.max(0, Math.round(seconds))} s ago`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
    return `${Math.round(seconds / 86400)} days ago`;
  }

  /** The device list: chosen devices first, then what the search found. */
  function renderDevices() {
    const chosen = devices.filter((d) => view.devices.includes(deviceKey(d)));
    const rest = devices.filter((d) => !view.devices.includes(deviceKey(d)));
    const now = Date.now() / 1000;
    const silentAfter = prefs.silentAfter;
    const quiet = (d) => now - Date.parse(d.last_seen) / 1000;
    const silent = devices.filter((d) => quiet(d) > silentAfter).length;
    const alerting = alerts.alertingDevices(view.type);
    $("device-count").textContent = `${devicesMore ? `first ${devices.length}` : plural(devices.length, "device")}, ${silent} silent`;
    const items = [...chosen, ...rest].map((d) => {
      const key = deviceKey(d);
      const quietFor = quiet(d);
      const li = document.createElement("li");
      li.dataset.device = key;
      if (quietFor > silentAfter) li.classList.add("silent");
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = key;
      box.checked = view.devices.includes(key);
      box.disabled = !box.checked && view.devices.length >= MAX_DEVICES;
      const name = document.createElement("span");
      if (box.checked) {
        const swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = colourOf(key);
        name.append(swatch);
      }
      name.append(key);
      if (alerting.has(key)) {
        li.classList.add("alerting");
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = "alert";
        badge.title = "an alert is firing for this device";
        name.append(badge);
      }
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = withUnit(d.last_value, view.type);
      const seen = document.createElement("span");
      seen.className = "age";
      seen.textContent = `${quietFor > silentAfter ? "silent, " : ""}last seen ${age(quietFor)}`;
      seen.title = fullTime(Date.parse(d.last_seen));
      label.append(box, name, value, seen);
      li.append(label);
      return li;
    });
    if (devicesMore) {
      const more = document.createElement("li");
      more.className = "more";
      more.textContent = "More devices: narrow the search to find them.";
      items.push(more);
    }
    $("device-list").replaceChildren(...items);
    $("device-hint").textContent = view.devices.length
      ? `${plural(view.devices.length, "device")} of at most ${MAX_DEVICES} overlaid.`
      : `Pick up to ${MAX_DEVICES} devices to overlay; none shows the whole type.`;
  }

  $("device-list").addEventListener("change", (event) => {
    const box = event.target;
    if (box.type !== "checkbox") return;
    if (box.checked && view.devices.length < MAX_DEVICES) view.devices.push(box.value);
    if (!box.checked) view.devices = view.devices.filter((d) => d !== box.value);
    renderDevices();
    refresh();
  });
  $("device-search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => loadDevices().catch((error) => status(error.message)), 250);
  });
  $("silent-after").addEventListener("change", () => {
    prefs.silentAfter = Number($("silent-after").value);
    renderDevices();
  });

  $("sensor-type").addEventListener("change", () => {
    view.type = $("sensor-type").value;
    view.devices = [];
    $("device-search").value = "";
    refresh();
  });

  // --- The range -----------------------------------------------------------

  function showRangeControls() {
    $("range").value = view.range;
    $("custom-range").hidden = view.range !== "custom";
    const { from, to } = currentWindow();
    $("range-from").value = inputTime(from);
    $("range-to").value = inputTime(to);
  }

  $("range").addEventListener("change", () => {
    const choice = $("range").value;
    if (choice === "custom") {
      const { from, to } = currentWindow();
      Object.assign(view, { range: "custom", from, to });
    } else {
      view.range = choice;
    }
    showRangeControls();
    writeUrl();
    loadHistory();
  });

  $("range-apply").addEventListener("click", () => {
    const from = parseInputTime($("range-from").value);
    const to = parseInputTime($("range-to").value);
    if (!(from < to)) {
      status("The range's start must be before its end.");
      return;
    }
    status("");
    Object.assign(view, { range: "custom", from, to });
    writeUrl();
    loadHistory();
  });

  $("time-zone").addEventListener("change", () => {
    prefs.timeZone = $("time-zone").value;
    $("time-heading").textContent = prefs.timeZone === "utc" ? "Time (UTC)" : "Time (local)";
    showRangeControls();
    for (const plot of [historyPlot, livePlot]) if (plot) plot.destroy();
    historyPlot = null;
    livePlot = null;
    renderTable();
    renderDevices();
    loadHistory();
    drawLive();
  });

  // --- Everything for the chosen type and devices -------------------------

  /** Reloads everything: devices, history, the latest readings, and the
   * stream, which resumes after the newest reading shown. */
  async function refresh() {
    const mine = ++refreshes;
    writeUrl();
    stopStream();
    $("live-info").textContent = "connecting…";
    live = new Map(view.devices.map((k) => [k, { x: [], y: [] }]));
    tableRows = [];
    $("time-heading").textContent = prefs.timeZone === "utc" ? "Time (UTC)" : "Time (local)";
    const devicesLoaded = loadDevices().catch((error) => status(error.message));
    const historyLoaded = loadHistory();
    let resumeAfter = String(Date.now() * 1000);
    try {
      const latest = await latestReadings();
      // Another choice was made meanwhile: its own refresh shows it.
      if (mine !== refreshes) return;
      for (const r of latest) addReading(r);
      renderTable();
      if (latest.length) resumeAfter = eventId(latest[latest.length - 1].timestamp);
    } catch (error) {
      status(error.message);
    }
    if (livePlot) {
      livePlot.destroy();
      livePlot = null;
    }
    drawLive();
    startStream(resumeAfter);
    await Promise.all([devicesLoaded, historyLoaded]);
  }

  /** Query parameters for the chosen type and one device (or none). */
  function selection(device) {
    const params = new URLSearchParams();
    if (view.type) params.set("sensor_type", view.type);
    if (device) {
      const [id1, id2] = device.split("/");
      params.set("id1", id1);
      params.set("id2", id2);
    }
    return params;
  }

  // --- History ------------------------------------------------------------

  /** One series' buckets, keyed by bucket start (epoch seconds). */
  async function buckets(device, from, to, maxPoints) {
    const params = selection(device);
    params.set("from", iso(from));
    params.set("to", iso(to));
    params.set("max_points", String(maxPoints));
    params.set("group_by", device ? "device" : "sensor_type");
    const answer = await getJson(`/readings/aggregate?${params}`);
    return { interval: answer.interval, data: answer.data.map((b) => ({ ...b, at: Date.parse(b.bucket) / 1000 })) };
  }

  /** Aligns series of buckets on one x array, with a null wherever a series
   * has no bucket, so a gap in the data is a gap in the line. */
  function align(seriesBuckets, step, fields) {
    const xs = new Set();
    for (const s of seriesBuckets) for (const b of s) xs.add(b.at);
    const sorted = [...xs].sort((a, b) => a - b);
    const x = [];
    for (const t of sorted) {
      // An empty bucket between two others: a null point breaks the line.
      if (x.length && t - x[x.length - 1] > step) x.push(x[x.length - 1] + step);
      x.push(t);
    }
    const columns = [];
    for (const s of seriesBuckets) {
      const byTime = new Map(s.map((b) => [b.at, b]));
      for (const field of fields) columns.push(x.map((t) => (byTime.has(t) ? byTime.get(t)[field] : null)));
    }
    return [x, ...columns];
  }

  async function loadHistory() {
    const mine = ++historyRequest;
    const { from, to } = currentWindow();
    const maxPoints = Math.max(30, Math.min(1000, Math.floor(chartWidth("history-chart") / 3)));
    try {
      const answers = view.devices.length
        ? await Promise.all(view.devices.map((d) => buckets(d, from, to, maxPoints)))
        : [await buckets(null, from, to, maxPoints)];
      if (mine !== historyRequest) return; // a newer choice is loading
      const interval = answers[0].interval;
      const step = intervalSeconds(interval);
      const count = answers.reduce((n, a) => n + a.data.length, 0);
      $("history-info").textContent = count
        ? `${plural(count, "bucket")} of ${interval}`
        : `no readings in this range (buckets of ${interval})`;
      const data = view.devices.length
        ? align(answers.map((a) => a.data), step, ["avg"])
        : align([answers[0].data], step, ["min", "avg", "max"]);
      drawHistory(data, { from, to });
    } catch (error) {
      if (mine === historyRequest) status(error.message);
    }
  }

  function valueSeries(label, stroke, extra = {}) {
    return { label, stroke, width: 2, value: (u, v) => withUnit(v, view.type), ...extra };
  }

  function drawHistory(data, range) {
    const series = [{ label: "Time", value: (u, v) => (v === null ? "–" : fullTime(v * 1000)) }];
    if (view.devices.length) {
      view.devices.forEach((d, i) => series.push(valueSeries(d, COLOURS[i % COLOURS.length])));
    } else {
      series.push(
        valueSeries("min", "#93c5fd", { width: 1 }),
        valueSeries("avg", "#2563eb"),
        valueSeries("max", "#93c5fd", { width: 1 }),
      );
    }
    const key = `${series.map((s) => s.label).join("|")}|${view.type}`;
    historyWindow = range;
    if (historyPlot && historyPlot.key === key) {
      historyPlot.setData(data);
      return;
    }
    if (historyPlot) historyPlot.destroy();
    const plot = new uPlot(
      {
        width: chartWidth("history-chart"),
        height: 300,
        tzDate,
        series,
        bands: view.devices.length ? [] : [{ series: [3, 1], fill: "rgba(37, 99, 235, 0.12)" }],
        // The x axis is the chosen range, whatever the data covers.
        scales: { x: { time: true, range: () => [historyWindow.from, historyWindow.to] } },
        axes: [
          { space: 90, size: 50, values: timeAxisValues },
          { size: 70, label: typeLabel(view.type), labelSize: 20 },
        ],
        cursor: { drag: { x: true, y: false, setScale: false } },
        hooks: {
          setSelect: [zoomToSelection],
          setScale: [(u, scale) => {
            if (scale !== "x") return;
            $("history-chart").dataset.xMin = String(u.scales.x.min);
            $("history-chart").dataset.xMax = String(u.scales.x.max);
          }],
        },
      },
      data,
      $("history-chart"),
    );
    plot.key = key;
    $("history-chart").uplot = plot; // for scripts/dashboard-walkthrough.cjs
    historyPlot = plot;
  }

  /** Dragging across the history chart makes the selection the range. */
  function zoomToSelection(u) {
    if (u.select.width < 5) return;
    const from = Math.floor(u.posToVal(u.select.left, "x"));
    const to = Math.ceil(u.posToVal(u.select.left + u.select.width, "x"));
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    if (to - from < 2) return;
    Object.assign(view, { range: "custom", from, to });
    showRangeControls();
    writeUrl();
    loadHistory();
  }

  // --- Latest readings and the live stream ---------------------------------

  /** The latest readings of what is chosen, oldest first. */
  async function latestReadings() {
    const pages = view.devices.length
      ? await Promise.all(view.devices.map((d) => {
        const params = selection(d);
        params.set("limit", "20");
        return getJson(`/readings?${params}`);
      }))
      : [await getJson(`/readings?${new URLSearchParams([...selection(null), ["limit", "50"]])}`)];
    return pages.flatMap((p) => p.data).sort((a, b) => a.timestamp.localeCompare(b.timestamp));
  }

  /** A timestamp's event id: microseconds since the epoch, as text. */
  function eventId(timestamp) {
    const [whole, fraction = ""] = timestamp.replace("Z", "").split(".");
    const micros = Date.parse(`${whole}Z`) * 1000 + Number(fraction.padEnd(6, "0").slice(0, 6));
    return String(micros);
  }

  /** Takes one reading into the live series and the table; false when it
   * belongs to no device shown. */
  function addReading(r) {
    const key = `${r.id1}/${r.id2}`;
    if (view.devices.length && !view.devices.includes(key)) return false;
    let series = live.get(key);
    if (!series && live.size < MAX_DEVICES) {
      series = { x: [], y: [] };
      live.set(key, series);
      if (livePlot) livePlot.stale = true;
    }
    if (series) {
      series.x.push(Date.parse(r.timestamp) / 1000);
      series.y.push(r.sensor_value);
      if (series.x.length > LIVE_POINTS) {
        series.x.shift();
        series.y.shift();
      }
    }
    tableRows.unshift(r);
    if (tableRows.length > TABLE_ROWS) tableRows.length = TABLE_ROWS;
    const device = devices.find((d) => d.id1 === r.id1 && d.id2 === r.id2);
    if (device && r.timestamp > device.last_seen) {
      device.last_seen = r.timestamp;
      device.last_value = r.sensor_value;
    }
    return true;
  }

  function renderTable() {
    const rows = tableRows.map((r) => {
      const tr = document.createElement("tr");
      const texts = [fullTime(Date.parse(r.timestamp)), `${r.id1}/${r.id2}`, typeLabel(r.sensor_type), withUnit(r.sensor_value, r.sensor_type)];
      for (const text of texts) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    });
    $("latest").tBodies[0].replaceChildren(...rows);
  }

  function stopStream() {
    if (stream) stream.abort.abort();
    stream = null;
  }

  /** Opens the stream for the chosen type (and device, when just one is
   * chosen), replacing any open one. */
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
    const params = selection(view.devices.length === 1 ? view.devices[0] : null);
    const response = await fetch(`${API}/readings/stream?${params}`, { headers, signal: mine.abort.signal });
    if (response.status === 401) return logOut("Your session has ended; log in again.");
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    $("live-info").textContent = "connected";
    status("");
    await apiClient.readEvents(response, (block) => onEvent(mine, block));
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
    if (addReading(data)) queueRedraw();
  }

  function queueRedraw() {
    if (redrawQueued) return;
    redrawQueued = true;
    requestAnimationFrame(() => {
      redrawQueued = false;
      drawLive();
      renderTable();
      const points = [...live.values()].reduce((n, s) => n + s.x.length, 0);
      $("live-info").textContent = `${plural(points, "reading")} from ${plural(live.size, "device")}`;
    });
  }

  function drawLive() {
    const keys = [...live.keys()];
    const seriesBuckets = keys.map((k) => {
      const s = live.get(k);
      return s.x.map((at, i) => ({ at, value: s.y[i] }));
    });
    // Live points are not buckets: no gap markers, each device's line
    // joins its own points across the others'.
    const data = align(seriesBuckets, Infinity, ["value"]);
    if (livePlot && !livePlot.stale && livePlot.keys === keys.join("|")) {
      livePlot.setData(data);
      return;
    }
    if (livePlot) livePlot.destroy();
    livePlot = new uPlot(
      {
        width: chartWidth("live-chart"),
        height: 300,
        tzDate,
        series: [
          { label: "Time", value: (u, v) => (v === null ? "–" : fullTime(v * 1000)) },
          ...keys.map((k) => valueSeries(k, colourOf(k), { spanGaps: true, points: { show: true, size: 4 } })),
        ],
        axes: [
          { space: 90, size: 50, values: timeAxisValues },
          { size: 70, label: typeLabel(view.type), labelSize: 20 },
        ],
      },
      data,
      $("live-chart"),
    );
    livePlot.keys = keys.join("|");
    $("live-chart").uplot = livePlot;
  }

  function chartWidth(id) {
    return Math.max(260, $(id).clientWidth || 600);
  }

  window.addEventListener("resize", () => {
    for (const [plot, id] of [[historyPlot, "history-chart"], [livePlot, "live-chart"]]) {
      if (plot) plot.setSize({ width: chartWidth(id), height: 300 });
    }
  });

  // --- CSV of what is shown ------------------------------------------------

  $("export-csv").addEventListener("click", async () => {
    const { from, to } = currentWindow();
    const targets = view.devices.length ? view.devices : [null];
    try {
      const parts = [];
      for (const [i, device] of targets.entries()) {
        const params = selection(device);
        params.set("from", iso(from));
        params.set("to", iso(to));
        params.set("format", "csv");
        params.set("units", "true");
        const text = await (await get(`/readings/export?${params}`)).text();
        // One header for the whole file.
        parts.push(i === 0 ? text : text.slice(text.indexOf("\n") + 1));
      }
      const link = document.createElement("a");
      link.href = URL.createObjectURL(new Blob(parts, { type: "text/csv" }));
      link.download = `${view.type || "readings"}-${iso(from).slice(0, 19)}.csv`.replaceAll(":", "");
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    } catch (error) {
      status(error.message);
    }
  });

  // Ages move on and devices come and go: refresh the list now and then.
  setInterval(() => { if (session.token && !$("dashboard").hidden) renderDevices(); }, 5_000);
  setInterval(() => { if (session.token && !$("dashboard").hidden) loadDevices().catch(() => {}); }, 30_000);
  // A preset range ends now: move it on.
  setInterval(() => { if (session.token && !$("dashboard").hidden && view.range !== "custom") loadHistory(); }, 60_000);

  if (session.token) show();
})();
