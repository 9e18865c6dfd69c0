// The dashboard's Manage tab: generators (through the API, which passes
// them on to the generator service), the sensor-type catalog and the
// users, read by everyone allowed to and changed by admins. Viewers see
// generators and the catalog read-only, no controls and no users; the
// API and the generator service refuse their writes anyway.
"use strict";

const manage = (() => {
  const $ = (id) => document.getElementById(id);

  const { cell, button, attempt, deleteButton } = pageParts;

  function input(name, value, attributes = {}) {
    const element = document.createElement("input");
    element.name = name;
    element.value = value ?? "";
    Object.assign(element, attributes);
    return element;
  }

  /** A number field's value: null when empty. */
  const numberOrNull = (text) => (text.trim() === "" ? null : Number(text));

  // --- Sensor types -------------------------------------------------------

  function typeBody(fields) {
    const body = {};
    for (const name of ["display_name", "unit"]) {
      const text = fields[name].trim();
      if (text) body[name] = text;
    }
    const min = numberOrNull(fields.expected_min);
    const max = numberOrNull(fields.expected_max);
    if (min !== null) body.expected_min = min;
    if (max !== null) body.expected_max = max;
    return body;
  }

  async function loadTypes() {
    const admin = apiClient.role() === "admin";
    const types = await apiClient.getJson("/sensor-types");
    const rows = types.map((t) => {
      const tr = document.createElement("tr");
      tr.dataset.type = t.name;
      tr.append(cell(t.name));
      if (admin) {
        const fields = {
          display_name: input("display_name", t.display_name, { placeholder: "Display name", size: 14 }),
          unit: input("unit", t.unit, { placeholder: "Unit", size: 5 }),
          expected_min: input("expected_min", t.expected_min, { type: "number", step: "any", placeholder: "min" }),
          expected_max: input("expected_max", t.expected_max, { type: "number", step: "any", placeholder: "max" }),
        };
        for (const field of Object.values(fields)) tr.append(cell(field));
        tr.append(cell(t.has_readings ? "yes" : "none yet"));
        const actions = document.createElement("span");
        actions.className = "actions";
        const values = () => Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v.value]));
        actions.append(button("Save", () => attempt("types-error",
          () => apiClient.json("PUT", `/sensor-types/${encodeURIComponent(t.name)}`, typeBody(values())), loadTypes)));
        if (t.catalogued) {
          actions.append(button("Remove", () => attempt("types-error",
            () => apiClient.json("DELETE", `/sensor-types/${encodeURIComponent(t.name)}`), loadTypes), "secondary"));
        }
        tr.append(cell(actions));
      } else {
        for (const text of [t.display_name, t.unit, t.expected_min, t.expected_max, t.has_readings ? "yes" : "none yet", ""]) {
          tr.append(cell(text === null ? "" : String(text ?? "")));
        }
      }
      return tr;
    });
    $("types-table").tBodies[0].replaceChildren(...rows);
  }

  $("type-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    const fields = Object.fromEntries(new FormData(form));
    attempt("types-error", async () => {
      await apiClient.json("PUT", `/sensor-types/${encodeURIComponent(fields.name.trim())}`, typeBody(fields));
      form.reset();
    }, loadTypes);
  });

  // --- Generators (the generator service, passed on by the API) ------------

  async function loadGenerators() {
    const admin = apiClient.role() === "admin";
    const generators = await apiClient.getJson("/generators");
    const rows = generators.map((g) => {
      const tr = document.createElement("tr");
      tr.dataset.generator = g.name;
      const state = g.status?.state || (g.paused ? "paused" : "starting");
      const device = g.id2_end ? `${g.sensor_type} ${g.id1}/${g.id2}–${g.id2_end}` : `${g.sensor_type} ${g.id1}/${g.id2}`;
      tr.append(cell(g.name), cell(device), cell(g.status?.error ? `${state}: ${g.status.error}` : state), cell(String(g.status?.published ?? 0)));
      const path = `/generators/${encodeURIComponent(g.name)}`;
      if (admin) {
        const rate = input("frequency_hz", g.frequency_hz, { type: "number", step: "any", min: "0.001" });
        const model = document.createElement("select");
        model.name = "model";
        model.append(new Option("sine", "sine"), new Option("random walk", "random_walk"));
        model.value = g.model;
        const min = input("min", g.min, { type: "number", step: "any", title: "lowest value" });
        const max = input("max", g.max, { type: "number", step: "any", title: "highest value" });
        const values = document.createElement("span");
        values.className = "actions";
        values.append(model, min, max);
        tr.append(cell(rate), cell(values));
        const actions = document.createElement("span");
        actions.className = "actions";
        actions.append(
          button("Save", () => attempt("generators-error",
            () => apiClient.json("PATCH", path, {
              frequency_hz: Number(rate.value),
              model: model.value,
              min: Number(min.value),
              max: Number(max.value),
            }), loadGenerators)),
          button(g.paused ? "Resume" : "Pause", () => attempt("generators-error",
            () => apiClient.json("PATCH", path, { paused: !g.paused }), loadGenerators), "secondary"),
          button("Delete", () => attempt("generators-error",
            () => apiClient.json("DELETE", path), loadGenerators), "secondary"),
        );
        tr.append(cell(actions));
      } else {
        tr.append(cell(String(g.frequency_hz)), cell(`${g.model.replace("_", " ")}, ${g.min} to ${g.max}`), cell(""));
      }
      return tr;
    });
    $("generators-table").tBodies[0].replaceChildren(...rows);
  }

  $("generator-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    const fields = Object.fromEntries(new FormData(form));
    const body = {
      name: fields.name.trim(),
      sensor_type: fields.sensor_type.trim(),
      id1: fields.id1.trim(),
      id2: Number(fields.id2),
      frequency_hz: Number(fields.frequency_hz),
    };
    attempt("generators-error", async () => {
      await apiClient.json("POST", "/generators", body);
      form.reset();
    }, loadGenerators);
  });

  // --- Users ----------------------------------------------------------------

  async function loadUsers() {
    const users = await apiClient.getJson("/users");
    const me = apiClient.session.user?.toLowerCase();
    const rows = users.map((u) => {
      const tr = document.createElement("tr");
      tr.dataset.user = u.username;
      tr.append(cell(u.username));
      const role = document.createElement("select");
      role.name = "role";
      role.append(new Option("viewer", "viewer"), new Option("admin", "admin"));
      role.value = u.role;
      role.disabled = u.username === me; // nobody changes their own role
      role.addEventListener("change", () => attempt("users-error",
        () => apiClient.json("PATCH", `/users/${encodeURIComponent(u.username)}`, { role: role.value }), loadUsers));
      tr.append(cell(role));
      const password = input("password", "", { type: "password", placeholder: "new password", autocomplete: "new-password", size: 14 });
      const actions = document.createElement("span");
      actions.className = "actions";
      actions.append(password, button("Set password", () => attempt("users-error",
        () => apiClient.json("PATCH", `/users/${encodeURIComponent(u.username)}`, { password: password.value }), loadUsers)));
      if (u.username !== me) {
        actions.append(deleteButton(() => attempt("users-error",
          () => apiClient.json("DELETE", `/users/${encodeURIComponent(u.username)}`), loadUsers)));
      }
      tr.append(cell(actions));
      return tr;
    });
    $("users-table").tBodies[0].replaceChildren(...rows);
  }

  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    const { username, password, role } = Object.fromEntries(new FormData(form));
    attempt("users-error", async () => {
      await apiClient.json("POST", "/users", { username: username.trim(), password, role });
      form.reset();
    }, loadUsers);
  });

  /** Shows the tab: admins get the controls, viewers a read-only catalog. */
  async function show() {
    const admin = apiClient.role() === "admin";
    for (const element of document.querySelectorAll(".admin-only")) element.hidden = !admin;
    for (const element of document.querySelectorAll(".viewer-only")) element.hidden = admin;
    $("types-error").textContent = "";
    $("users-error").textContent = "";
    await attempt("generators-error", async () => {}, loadGenerators);
    await attempt("types-error", async () => {}, loadTypes);
    if (admin) await attempt("users-error", async () => {}, loadUsers);
  }

  return { show };
})();
