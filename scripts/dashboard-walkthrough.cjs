#!/usr/bin/env node
// Uses the dashboard in a real browser as a person would, against a running
// `datastream up`: logs in through the form; checks that the history axis
// spans exactly the chosen range (presets, a custom range, drag-to-zoom)
// and that the range is kept in the URL; that units from the sensor-type
// catalog label the picker, the device list and the table, and that a
// unit edited in the catalog shows; searches the device list and overlays
// two devices (two legend entries); adds, changes and deletes an alert
// rule and sees its alert in the panel and the device picker; publishes
// readings over MQTT and
// checks that the table shows the chosen device's reading within 2 s and
// not another device's; switches the time zone; then looks at the page on
// a phone-sized screen. Fails on any request to another host and on any
// error in the browser console.
//
//   node scripts/dashboard-walkthrough.cjs BASE_URL MQTT_PORT USERNAME PASSWORD
//
// Needs playwright-core (npm), Chromium (CHROMIUM, default /usr/bin/chromium)
// and mosquitto_pub. DASHBOARD_SCREENSHOTS=DIR saves each screen there
// (dashboard-*.png, as in docs/).
// .ci/run runs it.

const { chromium } = require("playwright-core");
const { execFileSync } = require("node:child_process");

const [base, mqttPort, username, password] = process.argv.slice(2);
if (!password) {
  console.error("usage: dashboard-walkthrough.cjs BASE_URL MQTT_PORT USERNAME PASSWORD");
  process.exit(2);
}

let failures = 0;
function check(what, ok, detail = "") {
  if (!ok) failures += 1;
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${ok ? "" : `: ${String(detail).slice(0, 300)}`}`);
  return ok;
}

/** Publishes one reading over MQTT, taken now. */
function publish(sensorType, id1, id2, value) {
  const reading = { sensor_value: value, sensor_type: sensorType, id1, id2, timestamp: new Date().toISOString() };
  execFileSync("mosquitto_pub", [
    "-h", "127.0.0.1", "-p", String(mqttPort), "-q", "1",
    "-t", `sensors/${sensorType}/${id1}/${id2}`, "-m", JSON.stringify(reading),
  ]);
}

/** Milliseconds until the latest-readings table shows `text`, or null. */
async function timeUntilRow(page, text, timeoutMs) {
  // The table is redrawn as readings arrive: look for the text anywhere in it.
  const started = Date.now();
  try {
    await page.locator("#latest tbody td", { hasText: text }).first().waitFor({ timeout: timeoutMs });
    return Date.now() - started;
  } catch {
    return null;
  }
}

/** Readings per second on the live stream of `sensorType`, over `seconds`,
 * read in the page with its token. */
/** A request to the API from outside the browser, as `token`'s user. */
async function api(method, path, token, body) {
  const response = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, json: await response.json().catch(() => null) };
}

/** The page's JavaScript heap after a garbage collection, in bytes. */
async function heapUsed(cdp) {
  await cdp.send("HeapProfiler.collectGarbage");
  return (await cdp.send("Runtime.getHeapUsage")).usedSize;
}

/** Saves the page as DIR/dashboard-`name`.png when DASHBOARD_SCREENSHOTS is set. */
async function shot(page, name) {
  if (!process.env.DASHBOARD_SCREENSHOTS) return;
  await page.waitForTimeout(1_000); // a few more live readings
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: `${process.env.DASHBOARD_SCREENSHOTS}/dashboard-${name}.png` });
}

async function streamRate(page, sensorType, seconds) {
  return page.evaluate(async ([type, secs]) => {
    const token = sessionStorage.getItem("datastream.token");
    const abort = new AbortController();
    const response = await fetch(`/api/v1/readings/stream?sensor_type=${type}`, { headers: { Authorization: `Bearer ${token}` }, signal: abort.signal });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let text = "", events = 0, started = null;
    const deadline = Date.now() + secs * 1000;
    try {
      while (Date.now() < deadline) {
        const { value, done } = await Promise.race([reader.read(), new Promise((r) => setTimeout(() => r({ value: null, done: false }), 500))]);
        if (done) break;
        if (!value) continue;
        text += decoder.decode(value, { stream: true });
        let end;
        while ((end = text.indexOf("\n\n")) >= 0) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          if (/^data: /m.test(block) && !/^event: /m.test(block)) {
            if (started === null) started = Date.now(); else events += 1;
          }
        }
      }
    } finally {
      abort.abort();
    }
    return started === null ? 0 : events / ((Date.now() - started) / 1000);
  }, [sensorType, seconds]);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const consoleErrors = [];
  const foreign = [];
  const host = new URL(base).host;
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => consoleErrors.push(error.message));
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.protocol.startsWith("http") && url.host !== host) foreign.push(request.url());
  });

  // A second temperature device, so that two can be overlaid.
  publish("temperature", "WALKTWO", 2, 20.5);
  await page.waitForTimeout(500);
  await page.goto(`${base}/`);
  await page.fill('input[name="username"]', username);
  await page.fill('input[name="password"]', password);
  await page.click('#login button[type="submit"]');
  await page.locator("#dashboard").waitFor({ state: "visible", timeout: 10_000 });
  check("logged in through the form", await page.locator("#login").isHidden());

  // The page opens on the type of the newest reading; pick temperature.
  await page.locator("#sensor-type option", { hasText: "Temperature" }).first().waitFor({ state: "attached", timeout: 10_000 });
  await page.selectOption("#sensor-type", "temperature");
  await page.locator("#history-chart canvas").waitFor({ timeout: 10_000 });
  await page.waitForFunction(() => /^[1-9]\d* buckets? of /.test(document.getElementById("history-info").textContent), null, { timeout: 10_000 }).catch(() => {});
  const history = await page.locator("#history-info").textContent();
  check("the history chart draws buckets", /^[1-9]\d* buckets? of /.test(history), history);
  check("a single bucket is not \"1 buckets\"", !/^1 buckets/.test(history), history);
  const typeLabel = await page.locator("#sensor-type option:checked").textContent();
  check("the sensor type is labelled with its unit from the catalog", typeLabel.includes("°C"), typeLabel);

  // The x axis is the chosen range, whatever the data covers.
  for (const [range, seconds] of [["1h", 3600], ["24h", 86400], ["7d", 604800]]) {
    await page.selectOption("#range", range);
    const ok = await page.waitForFunction((span) => {
      const chart = document.getElementById("history-chart");
      const min = Number(chart.dataset.xMin), max = Number(chart.dataset.xMax);
      return Math.abs(max - min - span) < 1 && Math.abs(max - Date.now() / 1000) < 10;
    }, seconds, { timeout: 10_000 }).then(() => true, () => false);
    const axis = await page.$eval("#history-chart", (c) => `${c.dataset.xMin}..${c.dataset.xMax}`);
    check(`the history axis spans exactly ${range}, ending now`, ok, axis);
    check(`the URL keeps the ${range} range`, page.url().includes(`range=${range}`), page.url());
  }
  await page.selectOption("#range", "custom");
  await page.fill("#range-from", "2026-01-01T00:00:00");
  await page.fill("#range-to", "2026-01-03T12:00:00");
  await page.click("#range-apply");
  const customFrom = Date.parse("2026-01-01T00:00:00Z") / 1000, customTo = Date.parse("2026-01-03T12:00:00Z") / 1000;
  const customOk = await page.waitForFunction(([from, to]) => {
    const chart = document.getElementById("history-chart");
    return Number(chart.dataset.xMin) === from && Number(chart.dataset.xMax) === to;
  }, [customFrom, customTo], { timeout: 10_000 }).then(() => true, () => false);
  check("a custom range (UTC) is the axis exactly, with no data in it", customOk, await page.$eval("#history-chart", (c) => `${c.dataset.xMin}..${c.dataset.xMax}`));
  const empty = await page.locator("#history-info").textContent();
  check("an empty range says so", empty.startsWith("no readings"), empty);

  // Dragging across the chart zooms into that stretch of the last hour.
  await page.selectOption("#range", "1h");
  await page.waitForFunction(() => Math.abs(Number(document.getElementById("history-chart").dataset.xMax) - Date.now() / 1000) < 10, null, { timeout: 10_000 });
  const over = await page.locator("#history-chart .u-over").boundingBox();
  await page.mouse.move(over.x + over.width * 0.5, over.y + over.height / 2);
  await page.mouse.down();
  await page.mouse.move(over.x + over.width * 0.75, over.y + over.height / 2, { steps: 5 });
  await page.mouse.up();
  const zoomed = await page.waitForFunction(() => {
    const chart = document.getElementById("history-chart");
    const span = Number(chart.dataset.xMax) - Number(chart.dataset.xMin);
    return document.getElementById("range").value === "custom" && span > 600 && span < 1200;
  }, null, { timeout: 10_000 }).then(() => true, () => false);
  check("dragging across the history zooms to about a quarter of the hour", zoomed, await page.$eval("#history-chart", (c) => `${c.dataset.xMin}..${c.dataset.xMax}`));
  check("the zoomed range is in the URL", page.url().includes("range=custom") && page.url().includes("from="), page.url());
  await page.selectOption("#range", "1h");

  // Axis labels never overlap, from a wide screen to a phone.
  for (const width of [1600, 1280, 800, 390]) {
    await page.setViewportSize({ width, height: 900 });
    await page.waitForTimeout(300);
    const overlaps = await page.evaluate(() => {
      // uPlot draws the labels on a canvas: measure them as it placed them.
      const found = [];
      for (const id of ["history-chart", "live-chart"]) {
        const u = document.getElementById(id).uplot;
        if (!u) continue;
        const axis = u.axes[0];
        const splits = axis._splits || [];
        const values = axis._values || [];
        const ctx = document.createElement("canvas").getContext("2d");
        ctx.font = Array.isArray(axis.font) ? axis.font[0] : axis.font;
        // The history spans an hour here: it always has labels to compare.
        if (id === "history-chart" && splits.length < 2) found.push(`${id}: only ${splits.length} labels to measure`);
        const boxes = splits.map((split, i) => {
          const width = Math.max(...String(values[i] ?? "").split("\n").map((line) => ctx.measureText(line).width));
          const centre = u.valToPos(split, "x");
          return [centre - width / 2, centre + width / 2];
        });
        for (let i = 1; i < boxes.length; i++) {
          if (boxes[i][0] < boxes[i - 1][1] + 4) found.push(`${id}: ${values[i - 1]} / ${values[i]}`);
        }
      }
      return found;
    });
    check(`no two time labels overlap at ${width}px`, overlaps.length === 0, overlaps.join(", "));
  }
  await page.setViewportSize({ width: 1280, height: 900 });

  // Devices: the list shows each one's last value, with its unit, and age.
  await page.locator("#device-list li[data-device]").first().waitFor({ timeout: 10_000 });
  const firstRow = await page.locator("#device-list li[data-device]").first().textContent();
  check("the device list shows the last value with its unit and when it was seen", /°C/.test(firstRow) && /last seen/.test(firstRow), firstRow);
  const devices = await page.$$eval("#device-list li[data-device]", (items) => items.map((li) => li.dataset.device));
  check("the device picker lists devices from /devices", devices.length >= 2, `${devices.length} devices`);
  // A generator's device, and the one published above.
  const device = devices.find((d) => !d.startsWith("WALK"));
  const second = devices.find((d) => d.startsWith("WALKTWO/"));
  // The server searches: type an id1/id2 and the list is what it found.
  await page.fill("#device-search", device);
  const narrowed = await page.waitForFunction((key) => {
    const shown = [...document.querySelectorAll("#device-list li[data-device]")].map((li) => li.dataset.device);
    return shown.includes(key) && shown.every((d) => d.startsWith(key)) ? shown : null;
  }, device, { timeout: 10_000 }).then((handle) => handle.jsonValue(), () => null);
  check("searching by id1/id2 narrows the list to the devices it names", narrowed !== null, "not narrowed");
  await page.fill("#device-search", "");
  await page.waitForFunction((n) => document.querySelectorAll("#device-list li[data-device]").length === n, devices.length, { timeout: 10_000 }).catch(() => {});

  // Two devices overlaid: two legend entries, each its own colour.
  await page.check(`#device-list input[value="${second}"]`);
  await page.check(`#device-list input[value="${device}"]`);
  await page.waitForFunction(() => document.querySelectorAll("#history-chart .u-legend .u-series").length === 3, null, { timeout: 10_000 }).catch(() => {});
  const legend = await page.$$eval("#history-chart .u-legend .u-series", (rows) => rows.map((r) => r.textContent));
  check("two devices overlaid in history have two legend entries", legend.length === 3 && legend[1].includes(second) && legend[2].includes(device), legend.join(" | "));
  await shot(page, "overlay");
  check("the URL keeps both devices", page.url().includes(encodeURIComponent(`${second},${device}`)) || page.url().includes(`${second},${device}`) || page.url().includes(`${second}%2C${device}`), page.url());
  await page.uncheck(`#device-list input[value="${second}"]`);

  // The page says "connecting…" until the chosen device's stream answers.
  await page.waitForFunction(() => /^(connected|\d+ readings?)/.test(document.getElementById("live-info").textContent), null, { timeout: 10_000 });
  const [id1, id2] = device.split("/");

  // Another device's reading first: it must not show. (Values outside
  // what the temperature generators make, so that none matches by chance.)
  publish("temperature", "WALKOTHER", 9, 77.7777);
  publish("temperature", id1, Number(id2), 61.4321);
  const shownAfter = await timeUntilRow(page, "61.43 °C", 2_000);
  check("the chosen device's reading shows in the table, with its unit, within 2 s", shownAfter !== null, "not shown");
  if (shownAfter !== null) console.log(`     shown ${shownAfter} ms after publishing`);
  const livePoints = await page.locator("#live-info").textContent();
  check("the live chart has the reading", /^[1-9]\d* readings? from 1 device$/.test(livePoints), livePoints);
  const other = await page.locator("#latest tbody td", { hasText: "77.78" }).count();
  check("another device's reading is filtered out", other === 0, `${other} rows`);

  // "Download CSV" saves what is shown: the chosen device over the range.
  const [download] = await Promise.all([page.waitForEvent("download", { timeout: 15_000 }), page.click("#export-csv")]);
  const csvPath = await download.path();
  const csv = require("node:fs").readFileSync(csvPath, "utf8").trim().split("\n");
  check("the CSV download holds the chosen device's readings, with their unit", csv.length > 1 && /sensor_value.*,unit$/.test(csv[0]) && csv.slice(1).every((line) => line.endsWith(",°C")) && csv.slice(1).every((line) => line.includes(`,${id1},${id2},`) || line.includes(id1)), `${csv.length} lines: ${csv.slice(0, 2).join(" / ")}`);

  // A unit edited in the catalog shows after a reload.
  const edited = await page.evaluate(async () => {
    const token = sessionStorage.getItem("datastream.token");
    const response = await fetch("/api/v1/sensor-types/temperature", {
      method: "PUT",
      headers: { Authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ unit: "K", display_name: "Temperature" }),
    });
    return response.status;
  });
  await page.reload();
  await page.locator("#latest tbody tr").first().waitFor({ timeout: 10_000 });
  const cells = await page.$$eval("#latest tbody tr:first-child td", (tds) => tds.map((td) => td.textContent));
  check("a unit changed in the catalog labels the table after a reload", edited === 200 && / K$/.test(cells[3] || ""), `${edited}: ${cells.join(" | ")}`);
  await page.evaluate(async () => {
    const token = sessionStorage.getItem("datastream.token");
    await fetch("/api/v1/sensor-types/temperature", {
      method: "PUT",
      headers: { Authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ unit: "°C", display_name: "Temperature", expected_min: -40, expected_max: 85 }),
    });
  });

  // One time zone for everything, remembered.
  await page.selectOption("#time-zone", "local");
  await page.reload();
  await page.locator("#latest tbody tr").first().waitFor({ timeout: 10_000 });
  check("the time zone choice is remembered", (await page.locator("#time-zone").inputValue()) === "local" && (await page.locator("#time-heading").textContent()) === "Time (local)");
  const timeCell = await page.locator("#latest tbody tr:first-child td").first().textContent();
  check("table times are on a 24-hour clock", /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/.test(timeCell), timeCell);
  await page.selectOption("#time-zone", "utc");

  // Manage: a user added from the page can log in; a viewer sees no controls.
  await page.click('#tabs button[data-tab="manage"]');
  await page.locator("#types-table tbody tr").first().waitFor({ timeout: 10_000 });
  check("admins see the catalog's controls", await page.locator("#type-form").isVisible());
  const viewerName = `walk${Date.now() % 1_000_000}`;
  await page.fill('#user-form input[name="username"]', viewerName);
  await page.fill('#user-form input[name="password"]', "walkthrough-password");
  await page.selectOption('#user-form select[name="role"]', "viewer");
  await page.click('#user-form button[type="submit"]');
  const added = await page.locator(`#users-table tr[data-user="${viewerName}"]`).waitFor({ timeout: 10_000 }).then(() => true, () => false);
  check("a user added from the page is listed", added, await page.locator("#users-error").textContent());
  await shot(page, "manage");
  // A generator added from the page publishes; its rate changed from the
  // page is what the stream carries.
  const generatorName = `walk-${Date.now() % 1_000_000}`;
  await page.fill('#generator-form input[name="name"]', generatorName);
  await page.fill('#generator-form input[name="sensor_type"]', "walkthrough");
  await page.fill('#generator-form input[name="id1"]', "WALKGEN");
  await page.fill('#generator-form input[name="id2"]', "1");
  await page.fill('#generator-form input[name="frequency_hz"]', "5");
  await page.click('#generator-form button[type="submit"]');
  const generatorRow = page.locator(`#generators-table tr[data-generator="${generatorName}"]`);
  const created = await generatorRow.waitFor({ timeout: 10_000 }).then(() => true, () => false);
  check("a generator added from the page is listed", created, await page.locator("#generators-error").textContent());
  const slow = await streamRate(page, "walkthrough", 4);
  check("the new generator publishes about 5 readings/s", slow > 3 && slow < 7, `${slow.toFixed(1)}/s`);
  await generatorRow.locator('input[name="frequency_hz"]').fill("20");
  await generatorRow.locator('select[name="model"]').selectOption("random_walk");
  await generatorRow.locator('input[name="min"]').fill("100");
  await generatorRow.locator('input[name="max"]').fill("200");
  await generatorRow.locator("button", { hasText: "Save" }).click();
  await page.waitForTimeout(1_000);
  const fast = await streamRate(page, "walkthrough", 4);
  check("its rate changed from the page to 20/s is measured on the stream", fast > 15 && fast < 25, `${fast.toFixed(1)}/s`);
  const changed = await page.evaluate(async (name) => {
    const token = sessionStorage.getItem("datastream.token");
    const g = await (await fetch(`/api/v1/generators/${name}`, { headers: { Authorization: `Bearer ${token}` } })).json();
    const latest = await (await fetch("/api/v1/readings?sensor_type=walkthrough&limit=20", { headers: { Authorization: `Bearer ${token}` } })).json();
    return { model: g.model, min: g.min, max: g.max, values: latest.data.map((r) => r.sensor_value) };
  }, generatorName);
  check(
    "its value model changed from the page: a random walk between 100 and 200",
    changed.model === "random_walk" && changed.min === 100 && changed.max === 200 && changed.values.slice(0, 5).every((v) => v >= 100 && v <= 200),
    JSON.stringify(changed),
  );
  console.log(`     stream: ${slow.toFixed(1)}/s, then ${fast.toFixed(1)}/s`);
  await page.click('#tabs button[data-tab="dashboard"]');
  await page.selectOption("#sensor-type", "walkthrough");
  const liveShown = await page.waitForFunction(() => /^[1-9]\d* readings? from 1 device$/.test(document.getElementById("live-info").textContent), null, { timeout: 10_000 }).then(() => true, () => false);
  check("its readings appear live on the dashboard", liveShown, await page.locator("#live-info").textContent());
  await page.click('#tabs button[data-tab="manage"]');
  await generatorRow.locator("button", { hasText: "Delete" }).click();
  const gone = await generatorRow.waitFor({ state: "detached", timeout: 10_000 }).then(() => true, () => false);
  check("the generator is deleted from the page", gone, await page.locator("#generators-error").textContent());
  await page.click('#tabs button[data-tab="dashboard"]');
  await page.selectOption("#sensor-type", "temperature");

  // Alerts: a rule added from the Manage tab fires for WALKTWO/2 (every
  // reading above 0); the Data tab lists it with its age and marks the
  // device in the picker; the rule changed from the page resolves it, and
  // deleting the rule removes it.
  await page.click('#tabs button[data-tab="manage"]');
  const rule = { name: "walkthrough: too warm", sensor_type: "temperature", id1: "WALKTWO", id2: "2", limit: "0", for: "soon" };
  for (const [name, value] of Object.entries(rule)) await page.fill(`#rule-form input[name="${name}"]`, value);
  // The form refuses a malformed span before any request is made.
  await page.click('#rule-form button[type="submit"]');
  const refusedInPage = await page.$eval('#rule-form input[name="for"]', (input) => !input.validity.valid);
  check("the rule form refuses a malformed `for` itself", refusedInPage);
  await page.fill('#rule-form input[name="for"]', "0s");
  await page.click('#rule-form button[type="submit"]');
  const ruleRow = page.locator("#rules-table tbody tr", { hasText: "walkthrough: too warm" });
  check("a rule added from the page is listed", await ruleRow.waitFor({ timeout: 10_000 }).then(() => true, () => false), await page.locator("#rules-error").textContent());
  await page.click('#tabs button[data-tab="dashboard"]');
  const firingItem = page.locator('#alerts-list li[data-device="WALKTWO/2"]');
  let alertShown = false;
  for (let i = 0; i < 20 && !alertShown; i++) {
    publish("temperature", "WALKTWO", 2, 21 + i / 10);
    alertShown = await firingItem.waitFor({ timeout: 1_000 }).then(() => true, () => false);
  }
  check("the firing alert appears in the alerts panel", alertShown, await page.locator("#alerts-count").textContent());
  const ageBefore = await firingItem.locator(".age").textContent().catch(() => "");
  await page.waitForTimeout(2_100);
  const ageAfter = await firingItem.locator(".age").textContent().catch(() => "");
  check("the alert shows its age, and the age moves", /^firing for \d+ s$/.test(ageBefore) && ageAfter !== ageBefore, `${ageBefore} → ${ageAfter}`);
  await page.fill("#device-search", "WALKTWO");
  const badged = await page.locator('#device-list li[data-device="WALKTWO/2"] .badge').waitFor({ timeout: 10_000 }).then(() => true, () => false);
  check("the alerting device carries a badge in the device picker", badged);
  await shot(page, "alerts");
  await page.fill("#device-search", "");
  await page.click('#tabs button[data-tab="manage"]');
  await ruleRow.locator("button", { hasText: "Edit" }).click();
  await page.fill('#rule-form input[name="limit"]', "1000");
  await page.click('#rule-form button[type="submit"]');
  const ruleEdited = await page.locator("#rules-table tbody tr", { hasText: "above 1000" }).waitFor({ timeout: 10_000 }).then(() => true, () => false);
  check("the rule is changed from the page", ruleEdited, await page.locator("#rules-error").textContent());
  await page.click('#tabs button[data-tab="dashboard"]');
  const resolved = await firingItem.waitFor({ state: "detached", timeout: 10_000 }).then(() => true, () => false);
  check("the changed rule's alert resolves and leaves the panel", resolved, await page.locator("#alerts-count").textContent());
  await page.click('#tabs button[data-tab="manage"]');
  const deleteRule = ruleRow.locator("button", { hasText: "Delete" });
  await deleteRule.click();
  await deleteRule.click();
  check("the rule is deleted from the page", await ruleRow.waitFor({ state: "detached", timeout: 10_000 }).then(() => true, () => false), await page.locator("#rules-error").textContent());
  await page.click('#tabs button[data-tab="dashboard"]');

  const viewer = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  viewer.on("console", (message) => { if (message.type() === "error") consoleErrors.push(`viewer: ${message.text()}`); });
  viewer.on("pageerror", (error) => consoleErrors.push(`viewer: ${error.message}`));
  await viewer.goto(`${base}/`);
  await viewer.fill('input[name="username"]', viewerName);
  await viewer.fill('input[name="password"]', "walkthrough-password");
  await viewer.click('#login button[type="submit"]');
  const viewerIn = await viewer.locator("#dashboard").waitFor({ state: "visible", timeout: 10_000 }).then(() => true, () => false);
  check("the user added from the page logs in", viewerIn, await viewer.locator("#login-error").textContent());
  await viewer.click('#tabs button[data-tab="manage"]');
  await viewer.locator("#types-table tbody tr").first().waitFor({ timeout: 10_000 });
  const viewerControls = await viewer.evaluate(() => ({
    typeForm: !document.getElementById("type-form").hidden || !document.getElementById("generator-form").hidden,
    generatorButtons: document.querySelectorAll("#generators-table button, #generators-table input").length,
    inputs: document.querySelectorAll("#types-table input, #types-table button").length,
    users: document.querySelectorAll("#users-table tbody tr").length,
    usersShown: document.querySelector("#users-panel .admin-only").hidden === false,
    ruleForm: !document.getElementById("rule-form").hidden,
    ruleButtons: document.querySelectorAll("#rules-table button").length,
  }));
  await shot(viewer, "manage-viewer");
  check("a viewer sees the catalog without any control, and no users", !viewerControls.typeForm && viewerControls.generatorButtons === 0 && viewerControls.inputs === 0 && !viewerControls.usersShown && viewerControls.users === 0 && !viewerControls.ruleForm && viewerControls.ruleButtons === 0, JSON.stringify(viewerControls));
  // Outside the page (a refused request there is a console error).
  const viewerToken = await viewer.evaluate(() => sessionStorage.getItem("datastream.token"));
  const viewerHeaders = { Authorization: `Bearer ${viewerToken}`, "content-type": "application/json" };
  const refused = [
    (await fetch(`${base}/api/v1/sensor-types/temperature`, { method: "PUT", headers: viewerHeaders, body: JSON.stringify({ unit: "x" }) })).status,
    (await fetch(`${base}/api/v1/users`, { headers: viewerHeaders })).status,
    (await fetch(`${base}/api/v1/generators`, { method: "POST", headers: viewerHeaders, body: JSON.stringify({ name: "nope", sensor_type: "x", id1: "X", id2: 1, frequency_hz: 1 }) })).status,
    (await fetch(`${base}/api/v1/alert-rules`, { method: "POST", headers: viewerHeaders, body: JSON.stringify({ name: "nope", kind: "silence", sensor_type: "x", for: "1m" }) })).status,
  ];
  check("the API refuses a viewer's writes anyway", refused.every((status) => status === 403), refused.join(","));
  await viewer.close();
  // Leave nothing behind.
  const deleted = await page.evaluate(async (name) => {
    const token = sessionStorage.getItem("datastream.token");
    const response = await fetch(`/api/v1/users/${name}`, { method: "DELETE", headers: { Authorization: `Bearer ${token}` } });
    return response.status;
  }, viewerName);
  check("the walkthrough's user is deleted again", deleted === 204, String(deleted));

  await shot(page, "data");


  // Budgets. 10,000 devices in the catalog (one generator standing for
  // them, paused once each has reported): the first chart is drawn within
  // 1.5 s of logging in. Then the live chart at 50 readings/s for
  // DASHBOARD_HEAP_MINUTES (default 5): the page's heap stays within 2× its
  // size after the first minute.
  const adminToken = await page.evaluate(() => sessionStorage.getItem("datastream.token"));
  const fleet = await api("POST", "/generators", adminToken, {
    name: "walk-fleet", sensor_type: "budget", id1: "BUDGET", id2: 1, id2_end: 10000, frequency_hz: 0.25,
  });
  check("a generator standing for 10,000 devices starts", fleet.status === 201, JSON.stringify(fleet.json));
  let catalogued = 0;
  for (let i = 0; i < 60 && catalogued < 10000; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    const answer = await api("GET", "/devices?sensor_type=budget&limit=10000", adminToken);
    catalogued = answer.json?.data?.length ?? 0;
  }
  check("all 10,000 devices are in the catalog", catalogued === 10000, `${catalogued} devices`);
  await api("PATCH", "/generators/walk-fleet", adminToken, { paused: true });
  const timed = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  timed.on("pageerror", (error) => consoleErrors.push(`budget: ${error.message}`));
  await timed.goto(`${base}/#type=budget&range=1h`);
  await timed.fill('input[name="username"]', username);
  await timed.fill('input[name="password"]', password);
  const loginAt = Date.now();
  await timed.click('#login button[type="submit"]');
  await timed.waitForFunction(() => /^[1-9]\d* buckets? of /.test(document.getElementById("history-info").textContent) && document.querySelector("#history-chart canvas"), null, { timeout: 15_000 });
  const firstChart = Date.now() - loginAt;
  check("the first chart is drawn within 1.5 s of logging in, with 10,000 devices in the catalog", firstChart <= 1500, `${firstChart} ms`);
  console.log(`     first chart ${firstChart} ms after pressing "Log in" (10,000 devices)`);
  await timed.close();
  await api("DELETE", "/generators/walk-fleet", adminToken);

  const minutes = Number(process.env.DASHBOARD_HEAP_MINUTES || 5);
  const heapFleet = await api("POST", "/generators", adminToken, {
    name: "walk-heap", sensor_type: "heapcheck", id1: "HEAP", id2: 1, id2_end: 10, frequency_hz: 5,
  });
  check("a generator of 50 readings/s starts", heapFleet.status === 201, JSON.stringify(heapFleet.json));
  const watched = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  watched.on("pageerror", (error) => consoleErrors.push(`heap: ${error.message}`));
  await watched.goto(`${base}/#type=heapcheck&range=15m`);
  await watched.fill('input[name="username"]', username);
  await watched.fill('input[name="password"]', password);
  await watched.click('#login button[type="submit"]');
  await watched.waitForFunction(() => /readings? from 10 devices$/.test(document.getElementById("live-info").textContent), null, { timeout: 20_000 }).catch(() => {});
  const cdp = await watched.context().newCDPSession(watched);
  await watched.waitForTimeout(60_000);
  const afterOneMinute = await heapUsed(cdp);
  const readingsAt = async () => Number((await watched.locator("#live-info").textContent()).split(" ")[0]);
  await watched.waitForTimeout(Math.max(0, minutes - 1) * 60_000);
  const atEnd = await heapUsed(cdp);
  const shown = await readingsAt();
  const ratio = atEnd / afterOneMinute;
  check(`the page's heap after ${minutes} min of 50 readings/s is within 2× its size after one`, ratio <= 2, `${(afterOneMinute / 1048576).toFixed(1)} → ${(atEnd / 1048576).toFixed(1)} MiB`);
  check("the live chart still holds readings from 10 devices", shown >= 10 && /from 10 devices$/.test(await watched.locator("#live-info").textContent()), await watched.locator("#live-info").textContent());
  console.log(`     heap ${(afterOneMinute / 1048576).toFixed(1)} MiB after 1 min, ${(atEnd / 1048576).toFixed(1)} MiB after ${minutes} min (${ratio.toFixed(2)}×)`);
  await watched.close();
  await api("DELETE", "/generators/walk-heap", adminToken);

  // A phone: the page fits its width (the table scrolls inside its panel).
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  check("the page fits a phone's width", overflow <= 1, `${overflow}px wider`);
  await shot(page, "phone");

  await browser.close();
  check("no request went to another host", foreign.length === 0, foreign.join(", "));
  check("no error in the browser console", consoleErrors.length === 0, consoleErrors.join(" | "));
  if (failures) {
    console.log(`${failures} check(s) failed`);
    process.exit(1);
  }
  console.log("the dashboard works end to end");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
