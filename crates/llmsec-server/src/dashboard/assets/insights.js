// The Insights page: attack success over time, the engine's time, output
// entropy and drift, a users × tools heatmap, and access and abuse by
// client address and by role — all from GET /api/v1/insights.

import { api } from "./api.js";
import { bars, fmt, heatmap, lines } from "./charts.js";
import { RANGES, STEP, card, h, rangeSelect } from "./pages.js";

/** A card two grid columns wide on wide screens (tables need the room). */
function wide(node) {
  node.classList.add("wide");
  return node;
}

/** `[{t, v}]` of one field of the insight buckets. */
function points(buckets, f) {
  return buckets.map((b) => ({ t: Date.parse(b.timestamp), v: f(b) }));
}

function accessTable(rows, what) {
  return h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { class: "visually-hidden" }, `Calls by ${what}`),
    h("thead", {}, h("tr", {}, [what, "calls", "refused", "with threats", "errors"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {},
      h("td", {}, r.key), h("td", {}, fmt(r.requests)), h("td", {}, fmt(r.blocked)), h("td", {}, fmt(r.threats)), h("td", {}, fmt(r.errors)))))));
}

export async function insights(ctx) {
  const range = RANGES[ctx.params.get("range")] ? ctx.params.get("range") : "24h";
  const end = new Date();
  const start = new Date(end.getTime() - RANGES[range]);
  const q = new URLSearchParams({ start: start.toISOString(), end: end.toISOString(), granularity: STEP[range] });
  const r = await api("GET", `/api/v1/insights?${q}`);
  const head = h("div", { class: "filters" },
    h("h1", {}, "Insights"),
    rangeSelect(range, (v) => ctx.go(`#/insights?range=${v}`)));
  const s = r.security;
  const attacks = s.reduce((a, b) => a + b.attacks, 0);
  const passed = s.reduce((a, b) => a + b.attacks_passed, 0);
  const completions = r.entropy.reduce((a, b) => a + b.completions, 0);
  const abuse = r.by_ip.filter((x) => x.blocked + x.threats + x.errors > 0)
    .map((x) => ({ label: x.key, value: x.blocked + x.threats + x.errors }));
  const note = r.truncated ? h("p", { class: "muted" }, `Only the first ${fmt(r.events_read)} analyses and ${fmt(r.telemetry_read)} LLM calls of the range were read.`) : null;
  return h("div", {}, head, note,
    h("div", { class: "grid" },
      card("Attack success rate",
        h("p", { class: "muted" }, attacks
          ? `${fmt(passed)} of ${fmt(attacks)} prompt-injection and jailbreak attempts were not blocked (${fmt((100 * passed) / attacks)} %).`
          : "No prompt-injection or jailbreak attempt in this range."),
        lines([{ name: "success", cls: "s2", points: points(s, (b) => (b.attack_success_rate === null ? null : 100 * b.attack_success_rate)) }],
          "Share of attacks not blocked, percent, over time", "%")),
      card("Attacks: blocked and passed",
        h("div", { class: "legend" }, h("span", {}, "blocked"), h("span", { class: "c2" }, "passed")),
        lines([{ name: "blocked", cls: "s1", points: points(s, (b) => b.attacks - b.attacks_passed) },
          { name: "passed", cls: "s2", points: points(s, (b) => b.attacks_passed) }], "Attacks blocked and passed over time", "")),
      card("Analysis time p50 / p99",
        h("div", { class: "legend" }, h("span", {}, "p50"), h("span", { class: "c2" }, "p99")),
        lines([{ name: "p50", cls: "s1", points: points(s, (b) => b.analysis_us_p50) },
          { name: "p99", cls: "s2", points: points(s, (b) => b.analysis_us_p99) }], "Engine time per analysis, p50 and p99, microseconds", "µs")),
      card("Output entropy",
        h("p", { class: "muted" }, completions
          ? `Mean token entropy of ${fmt(completions)} completions with logprobs (nats).`
          : "No completion with logprobs in this range: send data.logprobs with telemetry events."),
        lines([{ name: "entropy", cls: "s1", points: points(r.entropy, (b) => b.mean_entropy) }], "Mean token entropy of completions over time", "nats")),
      card("Entropy drift (PSI)",
        h("p", { class: "muted" }, "Population Stability Index of each period against the range's first quarter; above 0.25 is a shift."),
        lines([{ name: "psi", cls: "s2", points: points(r.entropy, (b) => b.psi) }], "Drift of completion entropy, PSI, over time", "")),
      card("Tool calls by user",
        heatmap(r.tool_heatmap.users, r.tool_heatmap.tools, r.tool_heatmap.counts, "Tool calls, users by tools")),
      wide(card("Abuse by client address",
        h("p", { class: "muted" }, "Refusals, calls with threats and errors, per address."),
        bars(abuse, "Abuse by client address"), accessTable(r.by_ip, "address"))),
      wide(card("Access by role", accessTable(r.by_role, "role")))));
}
