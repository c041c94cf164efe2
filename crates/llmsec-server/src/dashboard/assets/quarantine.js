// The Quarantine page: requests and completions `[quarantine]` held for
// review (GET /api/v1/quarantine), each with its held text, findings and
// status; keys with `triage` release or discard a pending one
// (POST /api/v1/quarantine/{id}/release or /discard, with a reason).

import { api } from "./api.js";
import { card, h } from "./pages.js";

const STATUSES = ["pending", "released", "discarded", "expired"];

function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** A gateway answer's text (its choices' content), else the held text as it is. */
function readable(item) {
  if (item.kind === "text") return item.content;
  try {
    const a = JSON.parse(item.content);
    const texts = (a.choices || []).map((c) => (c.message && c.message.content) || c.text || "")
      .concat((a.content || []).filter((b) => b.type === "text").map((b) => b.text));
    return texts.filter(Boolean).join("\n\n") || item.content;
  } catch {
    return item.content;
  }
}

function itemCard(item, ctx, reload) {
  const findings = (item.findings || []).map((f) => `${f.type} (${f.severity}, ${f.scanner})`).join(", ") || "none";
  const msg = h("p", { class: "error", role: "alert" });
  const reason = h("input", { type: "text", id: `reason-${item.id}`, name: "reason", maxlength: 1024 });
  const decide = async (action, done) => {
    msg.textContent = "";
    try {
      await api("POST", `/api/v1/quarantine/${encodeURIComponent(item.id)}/${action}`, reason.value ? { reason: reason.value } : {});
      ctx.announce(`${done}: ${item.id}`);
      reload();
    } catch (e) { msg.textContent = e.message; }
  };
  let actions = null;
  if (item.status === "pending" && ctx.can("triage")) {
    actions = h("div", {},
      h("label", { for: `reason-${item.id}` }, "Reason (optional, kept with the decision)"), reason,
      h("div", { class: "actions" },
        h("button", { type: "button", class: "release", onclick: () => decide("release", "Released") }, "Release"),
        h("button", { type: "button", class: "secondary discard", onclick: () => decide("discard", "Discarded") }, "Discard")),
      msg);
  }
  const decided = item.decided_at ? `${item.status} by ${item.decided_by} ${when(item.decided_at)}${item.reason ? ` — ${item.reason}` : ""}` : null;
  return card(`${item.source} · ${item.id}`,
    h("p", {}, h("span", { class: `badge v-${item.verdict}` }, item.verdict), " ",
      h("span", { class: "badge" }, item.status), " ", `held ${when(item.created_at)}`,
      item.status === "pending" ? ` · until ${when(item.expires_at)}` : ""),
    h("p", { class: "muted" }, `Findings: ${findings}`, item.user_id ? ` · user ${item.user_id}` : ""),
    h("div", { class: "text" }, readable(item)),
    decided ? h("p", { class: "muted" }, decided) : null,
    actions);
}

export async function quarantine(ctx) {
  const current = STATUSES.includes(ctx.params.get("status")) ? ctx.params.get("status") : "pending";
  const list = await api("GET", `/api/v1/quarantine?status=${current}&limit=100`);
  const select = h("select", { id: "q-status", name: "status" }, STATUSES.map((s) => h("option", { value: s, selected: s === current }, s)));
  const form = h("form", { class: "filters", "aria-label": "Filter held items" },
    h("div", {}, h("label", { for: "q-status" }, "Status"), select), h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    ctx.go(`#/quarantine?status=${select.value}`);
  });
  const reload = () => ctx.go(`#/quarantine?status=${current}&t=${Date.now()}`);
  const note = ctx.can("triage") ? null : h("p", { class: "muted" }, "This key is read-only: it can view held items but not release or discard them.");
  return h("div", {}, h("h1", {}, "Quarantine"), form, note,
    h("p", {}, `${list.total_count} ${current}`),
    list.items.length
      ? h("div", { class: "grid" }, list.items.map((i) => itemCard(i, ctx, reload)))
      : h("p", { class: "muted", id: "no-held" }, current === "pending" ? "Nothing is waiting for review." : `No ${current} items.`));
}
