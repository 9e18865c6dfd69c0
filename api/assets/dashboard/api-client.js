// The API as the dashboard's scripts call it: the session's bearer token on
// every request, failures as errors carrying the API's message and the
// field it names, and a 401 ending the session. Loaded before
// dashboard.js and manage.js, which share it.
"use strict";

const apiClient = (() => {
  const API = "/api/v1";
  let sessionEnded = () => {};

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

  /** `method` on `path` under the API, with `body` as JSON if given. */
  async function request(method, path, body) {
    const headers = { Authorization: `Bearer ${session.token}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {
      sessionEnded("Your session has ended; log in again.");
      throw new Error("session ended");
    }
    if (!response.ok) {
      const answer = await response.json().catch(() => ({}));
      const error = new Error(answer.error?.message || `${method} ${path}: HTTP ${response.status}`);
      error.field = answer.error?.field;
      error.status = response.status;
      throw error;
    }
    return response;
  }

  /** The answer's JSON (null for a 204). */
  async function json(method, path, body) {
    const response = await request(method, path, body);
    return response.status === 204 ? null : response.json();
  }

  /** Reads a Server-Sent-Events body, handing each event block (the text
   * between blank lines) to `onBlock`; returns when `onBlock` says "stop",
   * throws when the stream ends. */
  async function readEvents(response, onBlock) {
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
        if (onBlock(block) === "stop") return;
      }
    }
  }

  /** The role the token was issued with (the API checks it anyway). */
  function role() {
    try {
      const payload = session.token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(payload)).role === "admin" ? "admin" : "viewer";
    } catch {
      return "viewer";
    }
  }

  return {
    API,
    session,
    request,
    json,
    getJson: (path) => json("GET", path),
    readEvents,
    role,
    /** What to do when the API says the token is no longer good. */
    onSessionEnd(handler) { sessionEnded = handler; },
  };
})();
