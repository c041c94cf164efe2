// The dashboard's calls to the server: the same REST and GraphQL routes
// any client uses, authenticated by the HttpOnly session cookie the
// browser sends by itself. Mutating requests carry the session's CSRF
// token in X-CSRF-Token; the token lives only in this module's memory.

let csrf = null;

/** An error the server answered with: its message, status and field. */
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.field = e.field || e.header || null;
  }
}

/** Called with no argument when a request finds the session ended. */
let onSignedOut = () => {};
export function whenSignedOut(f) { onSignedOut = f; }

function mutating(method) { return !["GET", "HEAD", "OPTIONS"].includes(method); }

/** One JSON request: resolves to the parsed body, rejects with ApiError. */
export async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (mutating(method) && csrf) headers["X-CSRF-Token"] = csrf;
  const r = await fetch(path, {
    method, headers, credentials: "same-origin", cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = null; }
  if (r.status === 401) { csrf = null; onSignedOut(); }
  if (!r.ok) throw new ApiError(r.status, parsed);
  return parsed;
}

/** The session, if the cookie names an open one: {tenant, scopes, …}. */
export async function currentSession() {
  const s = await api("GET", "/dashboard/session");
  csrf = s && s.signed_in ? s.csrf_token : null;
  return s && s.signed_in ? s : null;
}

export async function signIn(key) {
  const s = await api("POST", "/dashboard/session", { key });
  csrf = s.csrf_token;
  return s;
}

export async function signOut() {
  try { await api("DELETE", "/dashboard/session"); } finally { csrf = null; }
}

/** A GraphQL operation over POST /graphql: resolves to `data`. */
export async function gql(query, variables) {
  const r = await api("POST", "/graphql", { query, variables: variables || {} });
  if (r && r.errors && r.errors.length) throw new Error(r.errors.map((e) => e.message).join("; "));
  return r.data;
}

/**
 * A GraphQL subscription over /graphql/ws (graphql-transport-ws), which
 * the session cookie authenticates. Calls `onData(data)` for each result
 * and `onState("live" | "closed")`; returns a function that closes it.
 */
export function subscribe(query, onData, onState) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/graphql/ws`, "graphql-transport-ws");
  let closed = false;
  ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "connection_init", payload: {} })));
  ws.addEventListener("message", (m) => {
    let msg;
    try { msg = JSON.parse(m.data); } catch { return; }
    if (msg.type === "connection_ack") {
      ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query } }));
      onState("live");
    } else if (msg.type === "next" && msg.payload && msg.payload.data) {
      onData(msg.payload.data);
    } else if (msg.type === "ping") {
      ws.send(JSON.stringify({ type: "pong" }));
    }
  });
  ws.addEventListener("close", () => { if (!closed) onState("closed"); });
  return () => { closed = true; ws.close(1000); };
}
