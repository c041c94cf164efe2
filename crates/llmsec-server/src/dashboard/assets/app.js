// The dashboard's shell: sign-in, navigation between pages (by the URL
// fragment, so the back button and links work), and sign-out.

import { currentSession, signIn, signOut, whenSignedOut } from "./api.js";
import { PAGES, h } from "./pages.js";

const $ = (id) => document.getElementById(id);
let session = null;
/** Closes what the current page opened (live subscriptions). */
let cleanups = [];

function announce(text) {
  $("live").textContent = text;
}

function showSignIn(message) {
  session = null;
  for (const c of cleanups.splice(0)) c();
  $("nav").hidden = true;
  $("who").hidden = true;
  $("view").replaceChildren();
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message || "";
  // On a first visit the skip link stays the first stop; after a sign-out
  // or an ended session, the key field is where the user goes next.
  if (message) $("key").focus();
}

function showShell() {
  $("sign-in").hidden = true;
  $("nav").hidden = false;
  $("who").hidden = false;
  const ro = !session.scopes.some((s) => ["triage", "admin", "operator", "analyze"].includes(s));
  $("who-text").textContent = `tenant ${session.tenant} · key ${session.key_id} · ${session.scopes.join(", ")}${ro ? " (read-only)" : ""}`;
}

/** Parses "#/anomalies/ID?x=1" into {page, arg, params}. */
function route() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  const [page, ...rest] = path.split("/");
  return { page: page || "overview", arg: rest.length ? decodeURIComponent(rest.join("/")) : null, params: new URLSearchParams(query || "") };
}

async function render() {
  if (!session) return;
  for (const c of cleanups.splice(0)) c();
  const r = route();
  const page = PAGES[r.page] ? r.page : "overview";
  for (const a of document.querySelectorAll("nav a")) {
    if (a.getAttribute("href") === `#/${page}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const view = $("view");
  view.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  const ctx = {
    session,
    arg: r.arg,
    params: r.params,
    announce,
    onLeave: (f) => cleanups.push(f),
    go: (hash) => { location.hash = hash; },
    // As the server's Scope::grants: operator includes admin, which includes triage.
    can: (scope) => session.scopes.some((s) => s === scope
      || (s === "operator" && (scope === "admin" || scope === "triage"))
      || (s === "admin" && scope === "triage")),
  };
  try {
    const node = await PAGES[page](ctx);
    if (route().page === r.page) view.replaceChildren(node);
  } catch (e) {
    if (session) view.replaceChildren(h("div", { class: "card" }, h("h1", {}, "Something went wrong"), h("p", { class: "error", role: "alert" }, e.message)));
  }
  document.title = `${page[0].toUpperCase()}${page.slice(1)} · llm-security`;
}

async function start() {
  whenSignedOut(() => { if (session) showSignIn("Your session has ended. Sign in again."); });
  $("sign-in-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("key");
    $("sign-in-error").textContent = "";
    try {
      session = await signIn(input.value);
      input.value = "";
      showShell();
      announce(`Signed in to tenant ${session.tenant}`);
      if (!location.hash) location.hash = "#/overview";
      await render();
      $("main").focus();
    } catch (err) {
      $("sign-in-error").textContent = err.message;
    }
  });
  $("sign-out").addEventListener("click", async () => {
    await signOut().catch(() => {});
    showSignIn("Signed out.");
  });
  window.addEventListener("hashchange", () => { render().then(() => $("main").focus({ preventScroll: true })); });
  session = await currentSession().catch(() => null);
  if (session) {
    showShell();
    await render();
  } else {
    showSignIn();
  }
}

start();
