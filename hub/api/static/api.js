// StreamFlow API access for the page: sign-in, tokens, requests, the live stream.
// Every request the page makes goes through `api()` (the stream through
// `api.stream()`), so that the bearer token, its refresh and the error messages
// live here and nowhere else. Plain JavaScript, no build step, no CDN.
//
// Tokens (docs/security.md): the password grant gives an access token (a JWT
// living `expires_in` seconds) and an opaque refresh token that rotates on
// every use; spending one twice revokes the whole sign-in. Hence one refresh
// at a time (`refreshing`), however many requests found their token stale.

// ---------------------------------------------------------------- errors

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// ---------------------------------------------------------------- session

// The refresh token is kept in sessionStorage so that a reload keeps the
// sign-in. Trade-off: script running in this page (an XSS hole) could read it
// there, where a variable alone would die with the page. We accept that:
// the page loads no third-party script and renders every value as text; the
// storage is per tab and emptied when the tab closes; and the token rotates
// with reuse detection, so a stolen one that is used ends the sign-in for
// both. The access token stays in memory only.
// TODO: a duplicated tab copies sessionStorage; both tabs then spend the
// same refresh token and the second ends the sign-in (needs a shared lock,
// e.g. the Web Locks API, or an httpOnly cookie from the server).
const SESSION_KEY = "streamflow.refresh_token";
// Refresh at four fifths of the access token's life, as hub.client does.
const REFRESH_AT = 0.8;
// A failed refresh that may pass (network, 5xx) is tried again after this.
const REFRESH_RETRY_MS = 5000;

const session = {
  access: null, // the access token
  refresh: null, // the refresh token (spend once)
  expiresAt: 0, // ms since the epoch, when `access` expires
  timer: null, // the scheduled refresh
  me: null, // GET /v1/auth/me: name, role, kind, scopes
  off: false, // the API runs with auth off: no token needed
};
let refreshing = null;
const endedListeners = [];
const streams = new Set();

function storedRefresh() {
  try {
    return window.sessionStorage.getItem(SESSION_KEY);
  } catch (_) {
    return null; // storage disabled: the sign-in lasts as long as the page
  }
}

function storeRefresh(token) {
  try {
    if (token) window.sessionStorage.setItem(SESSION_KEY, token);
    else window.sessionStorage.removeItem(SESSION_KEY);
  } catch (_) {
    // storage disabled: see storedRefresh
  }
}

function accept(body) {
  session.access = body.access_token;
  session.refresh = body.refresh_token || null;
  session.expiresAt = Date.now() + body.expires_in * 1000;
  storeRefresh(session.refresh);
  schedule(body.expires_in * 1000 * REFRESH_AT);
}

function schedule(delayMs) {
  clearTimeout(session.timer);
  session.timer = setTimeout(() => {
    refresh().catch(() => {
      // refresh() ended the session or re-scheduled itself; nothing to add.
    });
  }, delayMs);
}

function clearSession() {
  clearTimeout(session.timer);
  Object.assign(session, { access: null, refresh: null, expiresAt: 0, me: null });
  session.timer = null;
  storeRefresh(null);
  for (const stream of [...streams]) stream.close();
}

// The sign-in is over (refresh refused, sign-out): tell the page.
function endSession(message) {
  const wasSignedIn = session.access !== null || session.refresh !== null;
  clearSession();
  if (wasSignedIn) for (const listener of endedListeners) listener(message);
}

// An error of the token endpoint (RFC 6749 section 5.2) as a sentence.
function tokenError(resp, data) {
  const code = (data && data.error) || `http_${resp.status}`;
  if (resp.status === 429) {
    const wait = resp.headers.get("Retry-After");
    const after = wait ? ` in ${wait} s` : " later";
    return new ApiError(429, code, `Too many failed sign-ins: try again${after}.`);
  }
  let text = (data && data.error_description) || resp.statusText || code;
  text = text.charAt(0).toUpperCase() + text.slice(1);
  return new ApiError(resp.status, code, text.endsWith(".") ? text : `${text}.`);
}

async function tokenRequest(fields) {
  const resp = await fetch(new URL("/v1/auth/token", window.location.origin), {
    method: "POST",
    headers: { Accept: "application/json" },
    // URLSearchParams: sent as application/x-www-form-urlencoded.
    body: new URLSearchParams(fields),
    cache: "no-store",
  });
  const data = await readJson(resp);
  if (!resp.ok) throw tokenError(resp, data);
  return data;
}

// One refresh at a time (see the top); every caller waits for the same one.
function refresh() {
  if (!refreshing) {
    refreshing = doRefresh().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function doRefresh() {
  if (!session.refresh) {
    throw new ApiError(401, "signed_out", "You are signed out: sign in again.");
  }
  const spent = session.refresh;
  try {
    const body = await tokenRequest({ grant_type: "refresh_token", refresh_token: spent });
    // Signed out while the answer was on its way: do not bring it back.
    if (session.refresh !== spent) throw new ApiError(401, "signed_out", "You are signed out.");
    accept(body);
  } catch (err) {
    if (err.code === "signed_out") throw err;
    const refused = err instanceof ApiError && err.status >= 400 && err.status < 500;
    if (refused && err.status !== 429) {
      // Refused (expired, revoked, reused, user disabled): only a new
      // sign-in helps.
      const message = `Your session has ended (${err.message.replace(/\.$/, "")}): sign in again.`;
      endSession(message);
      throw new ApiError(401, "session_ended", message);
    }
    // The network or the server: the access token may still be good.
    schedule(REFRESH_RETRY_MS);
    throw err;
  }
}

// Refresh first when the token is (nearly) expired: a laptop that slept
// missed its timer.
async function fresh() {
  if (session.off || !session.refresh) return;
  if (Date.now() >= session.expiresAt - 1000) await refresh();
}

// ---------------------------------------------------------------- requests

async function readJson(resp) {
  const text = await resp.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch (_) {
    return null;
  }
}

// fetch with the bearer token; once more after a refresh on a 401.
async function send(url, init) {
  await fresh();
  const attempt = () => {
    const headers = { ...(init.headers || {}) };
    if (session.access) headers.Authorization = `Bearer ${session.access}`;
    return { token: session.access, promise: fetch(url, { ...init, headers }) };
  };
  const first = attempt();
  const resp = await first.promise;
  if (resp.status !== 401 || session.off || !session.refresh) return resp;
  // Another request may have refreshed meanwhile: then just use the new one.
  if (session.access === first.token) await refresh();
  return attempt().promise;
}

function apiError(resp, data, action) {
  // Every API error has one shape: {"error": {"code", "message"}}.
  const err = (data && data.error) || {
    code: `http_${resp.status}`,
    message: resp.statusText || `HTTP ${resp.status}`,
  };
  if (err.code === "insufficient_scope") {
    const role = session.me ? ` (${session.me.role})` : "";
    return new ApiError(403, err.code, `Your role${role} may not ${action || "do this"}.`);
  }
  return new ApiError(resp.status, err.code, err.message);
}

/**
 * Call the API: JSON in, JSON out, with the session's token.
 *
 * @param {string} path - e.g. "/v1/alerts".
 * @param {object} [options] - method, body (sent as JSON), query (an object),
 *   action (what the call does, for the message of a 403: "acknowledge alerts").
 * @returns {Promise<any>} the decoded answer (null when empty).
 * @throws {ApiError} on an error status, with a message for people.
 */
export async function api(path, { method = "GET", body, query, action } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") {
      url.searchParams.set(key, value);
    }
  }
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await send(url, init);
  const data = await readJson(resp);
  if (!resp.ok) throw apiError(resp, data, action);
  return data;
}

/**
 * Sign in with a user name and password (the password grant).
 *
 * @returns {Promise<object>} who signed in (GET /v1/auth/me).
 * @throws {ApiError} wrong name or password (400), throttled (429), ...
 */
api.signIn = async (username, password) => {
  clearSession();
  session.off = false;
  accept(await tokenRequest({ grant_type: "password", username, password }));
  session.me = await api("/v1/auth/me");
  return session.me;
};

/**
 * Resume after a reload (the refresh token in sessionStorage), or find that
 * the API needs no sign-in (auth off).
 *
 * @returns {Promise<{me: object|null, message: string}>} who is signed in
 *   (null: show the sign-in form, with `message` if the old sign-in ended).
 */
api.restore = async () => {
  const stored = storedRefresh();
  if (stored) {
    session.refresh = stored;
    try {
      await refresh();
      session.me = await api("/v1/auth/me");
      return { me: session.me, message: "" };
    } catch (err) {
      clearSession();
      return { me: null, message: err.message };
    }
  }
  // No token: with auth off the API answers anyway (as "anonymous").
  const resp = await fetch(new URL("/v1/auth/me", window.location.origin), {
    headers: { Accept: "application/json" },
  });
  if (resp.ok) {
    session.off = true;
    session.me = await readJson(resp);
    return { me: session.me, message: "" };
  }
  return { me: null, message: "" };
};

/** Sign out (POST /v1/auth/logout): the sign-in ends on the server too. */
api.signOut = async () => {
  if (session.access) {
    try {
      await fetch(new URL("/v1/auth/logout", window.location.origin), {
        method: "POST",
        headers: { Authorization: `Bearer ${session.access}` },
      });
    } catch (_) {
      // Offline: the tokens are dropped here all the same and expire there.
    }
  }
  endSession("You are signed out.");
};

/** Call `listener(message)` when the sign-in ends (sign-out, refresh refused). */
api.onSessionEnd = (listener) => endedListeners.push(listener);

/** Who is signed in (GET /v1/auth/me), or null. */
api.me = () => session.me;

/** Whether the API runs with auth off (no sign-in). */
api.authOff = () => session.off;

// ---------------------------------------------------------------- the stream

/**
 * A parser of server-sent events (the WHATWG HTML "event stream" rules):
 * feed it decoded text in chunks of any size with `push`.
 *
 * Lines end in CRLF, LF or CR; `data:` lines join with "\n"; `id:` sets the
 * last event id (kept across events, ignored if it holds NUL); `retry:`
 * (digits only) sets the reconnection delay; lines starting with ":" are
 * comments (the server's heartbeats); a blank line dispatches the event
 * unless it has no data.
 */
export class SseParser {
  /**
   * @param {object} handlers - onEvent({type, data, id}), onComment(text),
   *   onRetry(ms); each optional.
   */
  constructor({ onEvent, onComment, onRetry } = {}) {
    this.onEvent = onEvent || (() => {});
    this.onComment = onComment || (() => {});
    this.onRetry = onRetry || (() => {});
    this.lastEventId = "";
    this.buffer = "";
    this.data = [];
    this.type = "";
    this.idBuffer = "";
    this.sawCR = false; // the last chunk ended in CR: a leading LF is its pair
  }

  push(text) {
    if (this.sawCR && text.startsWith("\n")) text = text.slice(1);
    this.sawCR = false;
    this.buffer += text;
    for (;;) {
      const end = this.buffer.search(/[\r\n]/);
      if (end < 0) return;
      if (this.buffer[end] === "\r" && end === this.buffer.length - 1) {
        // A CR at the very end: its LF may be in the next chunk.
        this.sawCR = true;
      }
      const line = this.buffer.slice(0, end);
      const crlf = this.buffer[end] === "\r" && this.buffer[end + 1] === "\n";
      this.buffer = this.buffer.slice(end + (crlf ? 2 : 1));
      this.line(line);
    }
  }

  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) {
      this.onComment(line.slice(1).replace(/^ /, ""));
      return;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") this.data.push(value);
    else if (field === "event") this.type = value;
    else if (field === "id" && !value.includes("\0")) this.idBuffer = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.onRetry(Number(value));
    // other fields are ignored, as the standard says
  }

  dispatch() {
    this.lastEventId = this.idBuffer;
    const data = this.data;
    const type = this.type || "message";
    this.data = [];
    this.type = "";
    if (data.length === 0) return;
    this.onEvent({ type, data: data.join("\n"), id: this.lastEventId });
  }
}

// Heartbeats come every 15 s: three missed and the connection is dead, even
// if TCP has not noticed (a gateway's NAT dropped it).
const STREAM_SILENCE_MS = 45000;
const STREAM_BACKOFF_MAX_MS = 30000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Read a server-sent event stream with fetch(), since an EventSource cannot
 * send an Authorization header. Reconnects after errors with Last-Event-ID
 * (the server then sends what was missed), with a fresh token if it expired.
 *
 * @param {string} path - e.g. "/v1/alerts/stream".
 * @param {object} handlers - on(type, data) per event; onState(state, error)
 *   with "open", "reconnecting" or "stopped" (a refusal retrying cannot fix).
 * @returns {{close: function(): void, lastEventId: function(): string}}
 */
api.stream = (path, { on, onState = () => {} }) => {
  const url = new URL(path, window.location.origin);
  let lastId = "";
  let retryMs = 2000;
  let failures = 0;
  let closed = false;
  let controller = null;
  let watchdog = null;

  const handle = {
    close() {
      closed = true;
      streams.delete(handle);
      clearTimeout(watchdog);
      if (controller) controller.abort();
    },
    lastEventId: () => lastId,
  };
  streams.add(handle);

  const alive = () => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => controller && controller.abort(), STREAM_SILENCE_MS);
  };

  async function connect() {
    controller = new AbortController();
    const headers = { Accept: "text/event-stream" };
    if (lastId) headers["Last-Event-ID"] = lastId;
    const resp = await send(url, { headers, signal: controller.signal, cache: "no-store" });
    if (!resp.ok) {
      throw apiError(resp, await readJson(resp), "see the alerts");
    }
    failures = 0;
    onState("open");
    alive();
    const parser = new SseParser({
      onEvent: (ev) => {
        lastId = ev.id;
        on(ev.type, ev.data);
      },
      onComment: () => {},
      onRetry: (ms) => {
        retryMs = ms;
      },
    });
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      alive();
      parser.push(value);
    }
  }

  (async () => {
    while (!closed) {
      try {
        await connect();
      } catch (err) {
        if (closed) return;
        // Retrying cannot fix a refusal (403, a sign-in that ended): stop.
        if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
          handle.close();
          onState("stopped", err);
          return;
        }
      }
      clearTimeout(watchdog);
      if (closed) return;
      failures += 1;
      onState("reconnecting");
      await sleep(Math.min(retryMs * 2 ** (failures - 1), STREAM_BACKOFF_MAX_MS));
    }
  })();
  return handle;
};
