#!/usr/bin/env node
// Walks through Swagger UI in a real browser the way a newcomer would: log
// in with "Try it out", paste the token into "Authorize", then run every
// operation of the API and of the generator service and check the status
// each one shows. Also fails if the page fetches anything from another host
// (every asset must be served by the binary).
//
//   node scripts/swagger-walkthrough.cjs API_BASE GENERATORS_BASE USERNAME PASSWORD
//
// Needs playwright-core (npm) and Chromium (CHROMIUM, default /usr/bin/chromium).
// SWAGGER_SCREENSHOT=FILE.png saves the API's page after the walkthrough.
// .ci/run runs it against `datastream up`.

const { chromium } = require("playwright-core");

const [apiBase, generatorsBase, username, password] = process.argv.slice(2);
if (!password) {
  console.error("usage: swagger-walkthrough.cjs API_BASE GENERATORS_BASE USERNAME PASSWORD");
  process.exit(2);
}

/** One Swagger UI page, with the steps a person takes on it. */
class SwaggerPage {
  constructor(page, base) {
    this.page = page;
    this.base = base;
  }

  async open() {
    await this.page.goto(`${this.base}/swagger-ui/`);
    await this.page.waitForSelector(".opblock", { timeout: 30_000 });
  }

  /** Pastes `token` into the bearer field of the Authorize dialog. */
  async authorize(token) {
    await this.page.click("button.authorize");
    const dialog = this.page.locator(".modal-ux");
    await dialog.locator("input").first().fill(token);
    await dialog.locator(".auth-btn-wrapper button.authorize").click();
    await dialog.locator("button.btn-done").click();
  }

  /**
   * Expands operation `tag`/`operationId`, presses "Try it out", fills
   * `params` (by name) and `body`, presses "Execute" and returns the status
   * and body Swagger UI shows.
   */
  async run(tag, operationId, { params = {}, body } = {}) {
    const op = this.page.locator(`#operations-${tag}-${operationId}`);
    if (!(await op.locator(".opblock-body").count())) {
      await op.locator(".opblock-summary").first().click();
    }
    const tryOut = op.locator("button.try-out__btn");
    if ((await tryOut.innerText()).trim() === "Try it out") {
      await tryOut.click();
    }
    for (const [name, value] of Object.entries(params)) {
      // Enumerated parameters (group_by, format) are drop-downs, the rest text fields.
      const row = op.locator(`tr[data-param-name="${name}"]`);
      if (await row.locator("select").count()) {
        await row.locator("select").selectOption(String(value));
      } else {
        await row.locator("input").fill(String(value));
      }
    }
    if (body !== undefined) {
      await op.locator("textarea.body-param__text").fill(JSON.stringify(body));
    }
    const clear = op.locator("button.btn-clear");
    if (await clear.count()) {
      await clear.click();
    }
    await op.locator("button.execute").click();
    const status = op.locator(".live-responses-table .response .response-col_status");
    await status.first().waitFor({ timeout: 15_000 });
    const code = Number((await status.first().innerText()).trim());
    const pre = op.locator(".live-responses-table .response-col_description pre");
    const text = (await pre.count()) ? await pre.first().innerText() : "";
    // A body sent as an attachment is offered as a "Download file" link.
    const link = op.locator(".live-responses-table .response-col_description a[download]");
    const download = (await link.count()) ? await link.first().getAttribute("download") : null;
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      // metrics are text, 204s have no body
    }
    return { code, text, json, download };
  }
}

let failures = 0;
function expect(what, result, code) {
  const ok = result.code === code;
  if (!ok) failures += 1;
  console.log(`${ok ? "ok  " : "FAIL"} ${what}: ${result.code}${ok ? "" : ` (expected ${code}) ${result.text.slice(0, 200)}`}`);
  return ok;
}

function expectThat(what, ok, detail) {
  if (!ok) failures += 1;
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${ok ? "" : `: ${detail.slice(0, 200)}`}`);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox"],
  });
  const page = await browser.newPage();
  const foreign = [];
  const allowed = [new URL(apiBase).host, new URL(generatorsBase).host];
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.protocol.startsWith("http") && !allowed.includes(url.host)) foreign.push(request.url());
  });

  // The main API: log in, authorize, then every operation.
  const api = new SwaggerPage(page, apiBase);
  await api.open();
  const login = await api.run("auth", "login", { body: { username, password } });
  if (!expect("POST /api/v1/auth/login", login, 200) || !login.json?.access_token) {
    throw new Error(`no token from login: ${login.text}`);
  }
  const token = login.json.access_token;
  await api.authorize(token);

  const list = await api.run("readings", "list_readings", { params: { limit: 5 } });
  expect("GET /api/v1/readings", list, 200);
  const first = list.json?.data?.[0];
  if (!first) throw new Error(`no readings to work on: ${list.text.slice(0, 200)}`);
  expect("GET /api/v1/readings/{id}", await api.run("readings", "get_reading", { params: { id: first.id } }), 200);
  const device = { id1: first.id1, id2: first.id2, sensor_type: first.sensor_type, from: first.timestamp, duration: "1s" };
  const updated = await api.run("readings", "update_readings", { params: device, body: { sensor_value: 1.5 } });
  expect("PATCH /api/v1/readings", updated, 200);
  const edited = await api.run("readings", "get_reading", { params: { id: first.id } });
  expectThat("the edited reading shows the new value", edited.json?.sensor_value === 1.5, edited.text);
  const deleted = await api.run("readings", "delete_readings", { params: device });
  expect("DELETE /api/v1/readings", deleted, 200);
  expectThat("the delete removed readings", deleted.json?.deleted >= 1, deleted.text);
  const gone = await api.run("readings", "get_reading", { params: { id: first.id } });
  expect("GET /api/v1/readings/{id} after the delete", gone, 404);
  const hourly = await api.run("analytics", "aggregate_readings", {
    params: { sensor_type: first.sensor_type, duration: "1d", interval: "1h", group_by: "sensor_type" },
  });
  expect("GET /api/v1/readings/aggregate", hourly, 200);
  expectThat("the aggregate has hourly buckets", hourly.json?.interval === "1h" && Array.isArray(hourly.json?.data), hourly.text);
  // Every device: silent_for left empty.
  const devices = await api.run("analytics", "list_devices", {
    params: { sensor_type: first.sensor_type, silent_for: "" },
  });
  expect("GET /api/v1/devices", devices, 200);
  expectThat("the catalog lists devices", devices.json?.data?.length >= 1, devices.text);
  const exported = await api.run("analytics", "export_readings", { params: { duration: "1h", format: "csv" } });
  expect("GET /api/v1/readings/export", exported, 200);
  expectThat(
    "the export is offered as a CSV file",
    exported.download === "readings.csv" && exported.text.includes("text/csv"),
    `download ${exported.download}: ${exported.text}`,
  );
  expect(
    "POST /api/v1/users",
    await api.run("users", "create_user", {
      body: { username: "swagger-viewer", password: "a long enough password", role: "viewer" },
    }),
    201,
  );
  expect("GET /api/v1/users", await api.run("users", "list_users"), 200);
  expect(
    "PATCH /api/v1/users/{username}",
    await api.run("users", "update_user", { params: { username: "swagger-viewer" }, body: { role: "admin", password: "another long password" } }),
    200,
  );
  expect("DELETE /api/v1/users/{username}", await api.run("users", "delete_user", { params: { username: "swagger-viewer" } }), 204);
  expect(
    "PUT /api/v1/sensor-types/{name}",
    await api.run("sensor-types", "put_sensor_type", {
      params: { name: "swagger-type" },
      body: { unit: "m/s", display_name: "Swagger type", expected_min: 0, expected_max: 50 },
    }),
    200,
  );
  const types = await api.run("sensor-types", "list_sensor_types");
  expect("GET /api/v1/sensor-types", types, 200);
  expectThat(
    "the catalog lists the new type with its unit",
    Array.isArray(types.json) && types.json.some((t) => t.name === "swagger-type" && t.unit === "m/s"),
    types.text,
  );
  expect(
    "DELETE /api/v1/sensor-types/{name}",
    await api.run("sensor-types", "delete_sensor_type", { params: { name: "swagger-type" } }),
    204,
  );
  // An alert rule every reading of the first device breaks, so an alert
  // fires within a second or two; then its history and deliveries.
  const created = await api.run("alerts", "create_alert_rule", {
    body: { name: "Swagger rule", kind: "threshold", sensor_type: first.sensor_type, id1: first.id1, id2: first.id2, above: -1000000, for: "0s" },
  });
  expect("POST /api/v1/alert-rules", created, 201);
  const ruleId = created.json?.id;
  expect("GET /api/v1/alert-rules", await api.run("alerts", "list_alert_rules"), 200);
  expect("GET /api/v1/alert-rules/{id}", await api.run("alerts", "get_alert_rule", { params: { id: ruleId } }), 200);
  const patched = await api.run("alerts", "update_alert_rule", { params: { id: ruleId }, body: { name: "Swagger rule, renamed" } });
  expect("PATCH /api/v1/alert-rules/{id}", patched, 200);
  expectThat("the patch renamed the rule", patched.json?.name === "Swagger rule, renamed", patched.text);
  let alerts = null;
  for (let i = 0; i < 20; i += 1) {
    alerts = await api.run("alerts", "list_alerts", { params: { rule_id: ruleId } });
    if (alerts.json?.data?.length) break;
    await page.waitForTimeout(500);
  }
  expect("GET /api/v1/alerts", alerts, 200);
  const alert = alerts.json?.data?.[0];
  expectThat("the rule fired an alert", Boolean(alert), alerts.text);
  if (alert) {
    expect("GET /api/v1/alerts/{id}", await api.run("alerts", "get_alert", { params: { id: alert.id } }), 200);
    expect("GET /api/v1/alerts/{id}/deliveries", await api.run("alerts", "list_alert_deliveries", { params: { id: alert.id } }), 200);
  }
  expect("DELETE /api/v1/alert-rules/{id}", await api.run("alerts", "delete_alert_rule", { params: { id: ruleId } }), 204);
  for (const op of ["healthz", "readyz", "metrics"]) {
    expect(`GET /${op}`, await api.run("operations", op), 200);
  }

  if (process.env.SWAGGER_SCREENSHOT) {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: process.env.SWAGGER_SCREENSHOT });
  }

  // The generator service: same token, its own Swagger UI.
  const generators = new SwaggerPage(page, generatorsBase);
  await generators.open();
  await generators.authorize(token);
  const name = "swagger-walkthrough";
  expect(
    "POST /api/v1/generators",
    await generators.run("generators", "create_generator", {
      body: { name, sensor_type: "pressure", id1: "SWAGGER", id2: 1, frequency_hz: 1 },
    }),
    201,
  );
  expect("GET /api/v1/generators", await generators.run("generators", "list_generators"), 200);
  expect("GET /api/v1/generators/{name}", await generators.run("generators", "get_generator", { params: { name } }), 200);
  expect(
    "PATCH /api/v1/generators/{name}",
    await generators.run("generators", "update_generator", { params: { name }, body: { frequency_hz: 2 } }),
    200,
  );
  expect("DELETE /api/v1/generators/{name}", await generators.run("generators", "delete_generator", { params: { name } }), 204);

  await browser.close();
  if (foreign.length) {
    failures += 1;
    console.log(`FAIL Swagger UI fetched from other hosts: ${foreign.join(", ")}`);
  }
  if (failures) {
    console.log(`${failures} step(s) failed`);
    process.exit(1);
  }
  console.log("every operation ran from Swagger UI");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
