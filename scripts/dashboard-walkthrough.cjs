#!/usr/bin/env node
// Uses the dashboard in a real browser as a person would, against a running
// `datastream up`: logs in through the form, checks that the history chart
// draws, publishes readings over MQTT and checks that the live chart and
// the table show the chosen device's reading within 2 s and not another
// device's, then looks at the page on a phone-sized screen. Fails on any
// request to another host and on any error in the browser console.
//
//   node scripts/dashboard-walkthrough.cjs BASE_URL MQTT_PORT USERNAME PASSWORD
//
// Needs playwright-core (npm), Chromium (CHROMIUM, default /usr/bin/chromium)
// and mosquitto_pub. DASHBOARD_SCREENSHOT=FILE.png saves the page.
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
  const started = Date.now();
  try {
    await page.locator("#latest tbody td", { hasText: text }).first().waitFor({ timeout: timeoutMs });
    return Date.now() - started;
  } catch {
    return null;
  }
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

  await page.goto(`${base}/`);
  await page.fill('input[name="username"]', username);
  await page.fill('input[name="password"]', password);
  await page.click('#login button[type="submit"]');
  await page.locator("#dashboard").waitFor({ state: "visible", timeout: 10_000 });
  check("logged in through the form", await page.locator("#login").isHidden());

  // Every device of one type first, then one device.
  await page.locator("#sensor-type option", { hasText: "temperature" }).first().waitFor({ state: "attached", timeout: 10_000 });
  await page.selectOption("#sensor-type", "temperature");
  await page.locator("#history-chart canvas").waitFor({ timeout: 10_000 });
  await page.waitForFunction(() => /^[1-9]\d* buckets/.test(document.getElementById("history-info").textContent), null, { timeout: 10_000 }).catch(() => {});
  const history = await page.locator("#history-info").textContent();
  check("the history chart draws buckets", /^[1-9]\d* buckets/.test(history), history);

  const device = await page.$$eval("#device option", (options) => options.map((o) => o.value).find((v) => v));
  check("the device picker lists devices from /devices", Boolean(device), "no device");
  await page.selectOption("#device", device);
  // The page says "connecting…" until the chosen device's stream answers.
  await page.waitForFunction(() => /^(connected|\d+ readings)$/.test(document.getElementById("live-info").textContent), null, { timeout: 10_000 });
  const [id1, id2] = device.split("/");

  // Another device's reading first: it must not show.
  publish("temperature", "WALKOTHER", 9, 21.9876);
  publish("temperature", id1, Number(id2), 21.4321);
  const shownAfter = await timeUntilRow(page, "21.4321", 2_000);
  check("the chosen device's reading shows in the table within 2 s", shownAfter !== null, "not shown");
  if (shownAfter !== null) console.log(`     shown ${shownAfter} ms after publishing`);
  const livePoints = await page.locator("#live-info").textContent();
  check("the live chart has the reading", /^[1-9]\d* readings/.test(livePoints), livePoints);
  const other = await page.locator("#latest tbody td", { hasText: "21.9876" }).count();
  check("another device's reading is filtered out", other === 0, `${other} rows`);

  if (process.env.DASHBOARD_SCREENSHOT) {
    await page.waitForTimeout(1_500); // a few more live readings from the generators
    await page.screenshot({ path: process.env.DASHBOARD_SCREENSHOT });
  }

  // A phone: the page fits its width (the table scrolls inside its panel).
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  check("the page fits a phone's width", overflow <= 1, `${overflow}px wider`);

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
