// Charts drawn as SVG by the dashboard's own code: horizontal bars for
// counts by category, and lines for time series. Every chart has a title
// and a description for screen readers, and the numbers are also shown as
// text beside it.

const NS = "http://www.w3.org/2000/svg";

function el(name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function frame(width, height, title) {
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  svg.appendChild(el("title", {}, title));
  return svg;
}

/** Compact numbers: 1234 → "1.2k". */
export function fmt(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  const a = Math.abs(n);
  if (a >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  if (Number.isInteger(n)) return String(n);
  return n.toFixed(a < 10 ? 2 : 1);
}

/** Horizontal bars: `rows` is [{label, value}], largest first. */
export function bars(rows, title) {
  const rowH = 20, labelW = 110, width = 320, pad = 4;
  const height = Math.max(rows.length, 1) * rowH + pad * 2;
  const svg = frame(width, height, title);
  const max = Math.max(1, ...rows.map((r) => r.value));
  rows.forEach((r, i) => {
    const y = pad + i * rowH;
    const w = Math.max(1, ((width - labelW - 40) * r.value) / max);
    const label = r.label.length > 18 ? `${r.label.slice(0, 17)}…` : r.label;
    svg.appendChild(el("text", { x: 0, y: y + 15 }, label));
    svg.appendChild(el("rect", { class: "bar", x: labelW, y: y + 3, width: w, height: rowH - 8, rx: 2 }));
    svg.appendChild(el("text", { x: labelW + w + 6, y: y + 15 }, fmt(r.value)));
  });
  if (!rows.length) svg.appendChild(el("text", { x: 0, y: 16 }, "no data in this range"));
  return svg;
}

/**
 * Lines over time: `series` is [{name, cls: "s1" | "s2", points: [{t: ms, v}]}].
 * Gaps (v null) break the line.
 */
export function lines(series, title, unit) {
  const width = 340, height = 170, left = 40, right = 8, top = 10, bottom = 22;
  const svg = frame(width, height, title);
  const all = series.flatMap((s) => s.points.filter((p) => p.v !== null && p.v !== undefined));
  const ts = series.flatMap((s) => s.points.map((p) => p.t));
  if (!all.length || !ts.length) {
    svg.appendChild(el("text", { x: left, y: height / 2 }, "no data in this range"));
    return svg;
  }
  const t0 = Math.min(...ts), t1 = Math.max(...ts, t0 + 1);
  const vmax = Math.max(...all.map((p) => p.v)) || 1;
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
  const y = (v) => top + (1 - v / vmax) * (height - top - bottom);
  svg.appendChild(el("line", { class: "axis", x1: left, y1: y(0), x2: width - right, y2: y(0) }));
  for (const f of [0, 0.5, 1]) {
    svg.appendChild(el("text", { x: 0, y: y(vmax * f) + 4 }, `${fmt(vmax * f)}${f === 1 && unit ? ` ${unit}` : ""}`));
  }
  const day = t1 - t0 > 36 * 3600e3;
  for (const t of [t0, (t0 + t1) / 2, t1]) {
    const d = new Date(t);
    const label = day ? d.toLocaleDateString([], { month: "short", day: "numeric" }) : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const anchor = t === t0 ? "start" : t === t1 ? "end" : "middle";
    svg.appendChild(el("text", { x: x(t), y: height - 6, "text-anchor": anchor }, label));
  }
  for (const s of series) {
    let d = "", pen = false;
    for (const p of s.points) {
      if (p.v === null || p.v === undefined) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
      pen = true;
    }
    if (d) svg.appendChild(el("path", { class: `line ${s.cls || "s1"}`, d }));
    // A point with no neighbour draws no line: mark it with a dot.
    s.points.forEach((p, i) => {
      const has = (q) => q && q.v !== null && q.v !== undefined;
      if (has(p) && !has(s.points[i - 1]) && !has(s.points[i + 1])) {
        svg.appendChild(el("circle", { class: `dot ${s.cls || "s1"}`, cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 3 }));
      }
    });
  }
  return svg;
}

/**
 * A heatmap: `rows` × `cols` labels, `counts[row][col]`. The shade of a
 * cell grows with its count and the count is written in it, so the numbers
 * read without colour.
 */
export function heatmap(rows, cols, counts, title) {
  const cell = 34, left = 96, top = 70, width = left + Math.max(cols.length, 1) * cell + 4;
  const height = top + Math.max(rows.length, 1) * cell + 4;
  const svg = frame(width, height, title);
  if (!rows.length || !cols.length) {
    svg.appendChild(el("text", { x: 0, y: 16 }, "no tool calls in this range"));
    return svg;
  }
  const max = Math.max(1, ...counts.flat());
  const clip = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
  cols.forEach((c, j) => {
    const x = left + j * cell + cell / 2;
    svg.appendChild(el("text", { x, y: top - 6, transform: `rotate(-45 ${x} ${top - 6})` }, clip(c, 12)));
  });
  rows.forEach((r, i) => {
    const y = top + i * cell;
    svg.appendChild(el("text", { x: 0, y: y + cell / 2 + 4 }, clip(r, 14)));
    cols.forEach((c, j) => {
      const n = (counts[i] && counts[i][j]) || 0;
      // Opacity from 0.08 (none) to 1 (the most), on a square-root scale so small counts show.
      const o = n ? 0.2 + 0.8 * Math.sqrt(n / max) : 0.06;
      const g = el("g", {});
      g.appendChild(el("title", {}, `${r} · ${c}: ${n}`));
      g.appendChild(el("rect", { class: "cell", x: left + j * cell + 1, y: y + 1, width: cell - 2, height: cell - 2, rx: 3, "fill-opacity": o.toFixed(2) }));
      g.appendChild(el("text", { class: o > 0.6 ? "on-dark" : "", x: left + j * cell + cell / 2, y: y + cell / 2 + 4, "text-anchor": "middle" }, n ? fmt(n) : ""));
      svg.appendChild(g);
    });
  });
  return svg;
}
