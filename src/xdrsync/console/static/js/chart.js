// Small SVG charts drawn from data, no library: columns (incidents over time), lines, bars
// and pies (hunting results with `render`). Sizes follow the container's width.
import { clear, h, s, parseTime, utcText } from "./common.js";

export const PALETTE = ["#5fb3f9", "#f5a524", "#7ad17a", "#e06c75", "#c792ea", "#56d4c8", "#e5c07b", "#98a7bd", "#ff8f6b", "#9ad0ff"];

const fmtShort = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
// Day buckets are UTC days (queue_stats): labelled as such, whatever the analyst's zone.
const fmtUtcDay = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
const fmtUtcDayLong = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric", timeZone: "UTC" });
const fmtHour = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fmtFull = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

function niceMax(value) {
  if (value <= 0) return 1;
  const exp = Math.pow(10, Math.floor(Math.log10(value)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * exp >= value) return m * exp;
  return 10 * exp;
}

function ticks(max, count = 4) {
  const step = niceMax(max / count);
  const out = [];
  for (let v = 0; v <= max + 1e-9; v += step) out.push(v);
  return out;
}

/** A round maximum that `ticks` divides evenly. */
function axisMax(value, count) {
  const step = niceMax(Math.max(value, 1e-9) / count);
  return Math.max(step, Math.ceil(value / step) * step);
}

function fmtNum(v) {
  if (Math.abs(v) >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (Math.abs(v) >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(2).replace(/\.?0+$/, "");
}

function size(container, height) {
  const width = Math.max(container.clientWidth || 600, 240);
  return { width, height };
}

function legend(series) {
  if (series.length < 2) return null;
  return h("div", { class: "legend" }, series.map((serie, i) =>
    h("span", { class: "legend-item" }, h("span", { class: `swatch swatch-${i % PALETTE.length}` }), serie.name)));
}

/**
 * Columns over time: points [{at: ISO, count, parts?: {key: n}}], optional stacking keys.
 * `bucket: "day"` says each point is a UTC day (labelled in UTC); otherwise times are shown
 * in the analyst's zone. `onPick(point)` is called when a column is clicked.
 */
export function timeColumns(container, points, { height = 120, stackKeys = null, onPick = null, bucket = null } = {}) {
  clear(container);
  if (!points.length) {
    container.append(h("div", { class: "empty muted" }, "No incidents in this view."));
    return;
  }
  const { width } = size(container, height);
  const pad = { l: 34, r: 8, t: 8, b: 20 };
  const innerW = width - pad.l - pad.r;
  const innerH = height - pad.t - pad.b;
  const max = axisMax(Math.max(1, ...points.map((p) => p.count)), 3);
  const bw = innerW / points.length;
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "chart" });
  for (const t of ticks(max, 3)) {
    const y = pad.t + innerH - (t / max) * innerH;
    svg.append(s("line", { x1: pad.l, x2: width - pad.r, y1: y, y2: y, class: "gridline" }));
    svg.append(s("text", { x: pad.l - 4, y: y + 3, class: "axis", "text-anchor": "end" }, fmtNum(t)));
  }
  const first = parseTime(points[0].at);
  const last = parseTime(points[points.length - 1].at);
  const span = first && last ? last - first : 0;
  const labelEvery = Math.max(1, Math.ceil(points.length / Math.max(2, Math.floor(innerW / 70))));
  points.forEach((p, i) => {
    const x = pad.l + i * bw;
    const date = parseTime(p.at);
    const group = s("g", { class: ["bar-group", onPick ? "pickable" : ""] });
    let y0 = pad.t + innerH;
    const keys = stackKeys && p.parts ? stackKeys : null;
    const pieces = keys ? keys.map((k) => [k, p.parts[k] || 0]) : [["count", p.count]];
    pieces.forEach(([key, value], k) => {
      if (!value) return;
      const hgt = (value / max) * innerH;
      y0 -= hgt;
      group.append(s("rect", {
        x: x + Math.max(bw * 0.12, 0.5), y: y0, width: Math.max(bw * 0.76, 1), height: hgt,
        class: keys ? `bar stack-${key}` : "bar", "data-series": k,
      }));
    });
    const daily = bucket === "day";
    let label = String(p.at);
    if (date) label = daily ? `${fmtUtcDayLong.format(date)} (UTC day)` : `${fmtFull.format(date)} (${utcText(date)})`;
    const detail = keys ? keys.filter((k) => p.parts[k]).map((k) => `${k}: ${p.parts[k]}`).join(", ") : "";
    group.append(s("title", {}, `${label}: ${p.count}${detail ? ` — ${detail}` : ""}`));
    group.append(s("rect", { x, y: pad.t, width: bw, height: innerH, class: "hit" }));
    if (onPick) group.addEventListener("click", () => onPick(p));
    svg.append(group);
    if (i % labelEvery === 0 && date) {
      let text;
      if (daily) text = fmtUtcDay.format(date);
      else text = span > 2 * 86400e3 ? fmtShort.format(date) : fmtHour.format(date);
      svg.append(s("text", { x: x + bw / 2, y: height - 5, class: "axis", "text-anchor": "middle" }, text));
    }
  });
  svg.append(s("line", { x1: pad.l, x2: width - pad.r, y1: pad.t + innerH, y2: pad.t + innerH, class: "baseline" }));
  container.append(svg);
}

// -- hunting charts -------------------------------------------------------------------------

function asNumber(value) {
  if (typeof value === "number") return value;
  if (typeof value === "string" && value.trim() !== "" && !Number.isNaN(Number(value))) return Number(value);
  return null;
}

function xValue(value, type) {
  if (type === "datetime" || type === "date" || type === "timestamp") {
    const date = parseTime(value);
    return date ? { kind: "time", v: date.getTime(), label: fmtFull.format(date) } : null;
  }
  const n = asNumber(value);
  if (n !== null && type !== "string") return { kind: "num", v: n, label: fmtNum(n) };
  return { kind: "cat", v: value == null ? "(empty)" : String(typeof value === "object" ? JSON.stringify(value) : value), label: null };
}

/**
 * Series from a query result and its chart hint: {kind, x, series: [y columns], splitBy}.
 * Without a hint's columns: x is the first column, y every numeric column after it.
 */
export function seriesOf(result, spec) {
  const columns = (result.columns || []).map((c) => (typeof c === "string" ? { name: c, type: "" } : c));
  const names = columns.map((c) => c.name);
  const types = Object.fromEntries(columns.map((c) => [c.name, (c.type || "").toLowerCase()]));
  const rows = (result.rows || []).map((r) => (Array.isArray(r) ? r : names.map((n) => r[n])));
  const numeric = (t) => ["int", "long", "real", "double", "decimal", "float", "integer", "number", "bigint"].includes(t);
  const asList = (v) => (v == null ? [] : Array.isArray(v) ? v : [v]);
  const xName = spec.x ?? names[0];
  let yNames = asList(spec.series).filter((n) => names.includes(n));
  if (!yNames.length) yNames = names.filter((n) => n !== xName && numeric(types[n]));
  let splitName = spec.splitBy && names.includes(spec.splitBy) ? spec.splitBy : null;
  if (spec.splitBy === undefined) splitName = names.find((n) => n !== xName && !yNames.includes(n) && types[n] === "string") ?? null;
  const xi = names.indexOf(xName);
  const series = new Map();
  for (const row of rows) {
    const x = xValue(row[xi], types[xName]);
    if (!x) continue;
    for (const y of yNames) {
      const v = asNumber(row[names.indexOf(y)]);
      if (v === null) continue;
      const key = splitName && splitName !== y ? `${row[names.indexOf(splitName)] ?? "(empty)"}${yNames.length > 1 ? ` · ${y}` : ""}` : y;
      if (!series.has(key)) series.set(key, []);
      series.get(key).push({ x, y: v });
    }
  }
  return { xName, yNames, series: [...series.entries()].map(([name, points]) => ({ name, points })) };
}

export function renderResultChart(container, result, spec) {
  clear(container);
  const kind = String(spec.type ?? spec.kind ?? spec.visualization ?? "columnchart").toLowerCase();
  const data = seriesOf(result, spec);
  if (!data.series.length) {
    container.append(h("div", { class: "empty muted" }, "Nothing to chart: no numeric column."));
    return;
  }
  if (kind === "card") card(container, data);
  else if (kind.startsWith("pie")) pie(container, data);
  else if (kind.startsWith("bar")) hbars(container, data);
  else if (kind.startsWith("column")) columns(container, data);
  else lines(container, data, kind.startsWith("area"));
  const key = legend(data.series);
  if (key && !kind.startsWith("pie")) container.append(key);
}

function frame(container, height) {
  const { width } = size(container, height);
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "chart" });
  return { svg, width, height };
}

function yAxis(svg, pad, width, innerH, max, min = 0) {
  for (const t of ticks(max - min, 4)) {
    const value = min + t;
    const y = pad.t + innerH - (t / (max - min)) * innerH;
    svg.append(s("line", { x1: pad.l, x2: width - pad.r, y1: y, y2: y, class: "gridline" }));
    svg.append(s("text", { x: pad.l - 5, y: y + 3, class: "axis", "text-anchor": "end" }, fmtNum(value)));
  }
}

function lines(container, data, area) {
  const { svg, width, height } = frame(container, 300);
  const pad = { l: 48, r: 16, t: 12, b: 28 };
  const innerW = width - pad.l - pad.r;
  const innerH = height - pad.t - pad.b;
  const all = data.series.flatMap((serie) => serie.points);
  const categorical = all.some((p) => p.x.kind === "cat");
  const cats = categorical ? [...new Set(all.map((p) => p.x.v))] : [];
  const xs = categorical ? cats.map((_, i) => i) : all.map((p) => p.x.v);
  const xmin = Math.min(...xs);
  const xmax = Math.max(...xs);
  const ymax = niceMax(Math.max(0, ...all.map((p) => p.y)));
  const ymin = Math.min(0, ...all.map((p) => p.y));
  const X = (p) => {
    const v = categorical ? cats.indexOf(p.x.v) : p.x.v;
    return pad.l + (xmax === xmin ? innerW / 2 : ((v - xmin) / (xmax - xmin)) * innerW);
  };
  const Y = (v) => pad.t + innerH - ((v - ymin) / (ymax - ymin)) * innerH;
  yAxis(svg, pad, width, innerH, ymax, ymin);
  // x labels
  const count = Math.max(2, Math.floor(innerW / 110));
  for (let i = 0; i <= count; i++) {
    const v = xmin + ((xmax - xmin) * i) / count;
    let label;
    if (categorical) label = cats[Math.round(v)] ?? "";
    else if (all[0].x.kind === "time") label = fmtFull.format(new Date(v));
    else label = fmtNum(v);
    const x = pad.l + (innerW * i) / count;
    svg.append(s("text", { x, y: height - 8, class: "axis", "text-anchor": i === 0 ? "start" : i === count ? "end" : "middle" }, String(label).slice(0, 24)));
  }
  data.series.forEach((serie, i) => {
    const points = [...serie.points].sort((a, b) => (categorical ? cats.indexOf(a.x.v) - cats.indexOf(b.x.v) : a.x.v - b.x.v));
    const d = points.map((p, j) => `${j ? "L" : "M"}${X(p).toFixed(1)},${Y(p.y).toFixed(1)}`).join(" ");
    if (area && points.length) {
      const base = Y(Math.max(0, ymin));
      svg.append(s("path", { d: `${d} L${X(points[points.length - 1]).toFixed(1)},${base} L${X(points[0]).toFixed(1)},${base} Z`, class: `area series-${i % PALETTE.length}` }));
    }
    svg.append(s("path", { d, class: `line series-${i % PALETTE.length}` }));
    if (points.length <= 60) {
      for (const p of points) {
        svg.append(s("circle", { cx: X(p), cy: Y(p.y), r: 2.5, class: `dotp series-${i % PALETTE.length}` },
          s("title", {}, `${serie.name} · ${p.x.label ?? p.x.v}: ${fmtNum(p.y)}`)));
      }
    }
  });
  container.append(svg);
}

function columns(container, data) {
  const { svg, width, height } = frame(container, 300);
  const pad = { l: 48, r: 12, t: 12, b: 46 };
  const innerW = width - pad.l - pad.r;
  const innerH = height - pad.t - pad.b;
  const cats = [...new Set(data.series.flatMap((serie) => serie.points.map((p) => p.x.label ?? p.x.v)))].slice(0, 60);
  const n = data.series.length;
  const max = niceMax(Math.max(0, ...data.series.flatMap((serie) => serie.points.map((p) => p.y))));
  yAxis(svg, pad, width, innerH, max);
  const bw = innerW / Math.max(cats.length, 1);
  data.series.forEach((serie, i) => {
    for (const p of serie.points) {
      const c = cats.indexOf(p.x.label ?? p.x.v);
      if (c < 0) continue;
      const hgt = (Math.max(p.y, 0) / max) * innerH;
      const x = pad.l + c * bw + bw * 0.1 + (i * bw * 0.8) / n;
      svg.append(s("rect", { x, y: pad.t + innerH - hgt, width: Math.max((bw * 0.8) / n - 1, 1), height: hgt, class: `bar series-${i % PALETTE.length}` },
        s("title", {}, `${serie.name} · ${p.x.label ?? p.x.v}: ${fmtNum(p.y)}`)));
    }
  });
  const every = Math.max(1, Math.ceil(cats.length / Math.floor(innerW / 60)));
  cats.forEach((c, i) => {
    if (i % every) return;
    svg.append(s("text", { x: pad.l + i * bw + bw / 2, y: height - pad.b + 14, class: "axis", "text-anchor": "middle" }, String(c).slice(0, 14)));
  });
  container.append(svg);
}

function hbars(container, data) {
  const cats = [...new Set(data.series.flatMap((serie) => serie.points.map((p) => p.x.label ?? p.x.v)))].slice(0, 40);
  const rowH = 22;
  const { svg, width } = frame(container, Math.max(cats.length * rowH * Math.max(1, data.series.length * 0.6) + 30, 80));
  const pad = { l: 170, r: 50, t: 6, b: 20 };
  const innerW = width - pad.l - pad.r;
  const max = niceMax(Math.max(0, ...data.series.flatMap((serie) => serie.points.map((p) => p.y))));
  const band = (Number(svg.getAttribute("height")) - pad.t - pad.b) / Math.max(cats.length, 1);
  const n = data.series.length;
  cats.forEach((c, i) => {
    svg.append(s("text", { x: pad.l - 6, y: pad.t + i * band + band / 2 + 4, class: "axis label", "text-anchor": "end" }, String(c).slice(0, 26)));
  });
  data.series.forEach((serie, k) => {
    for (const p of serie.points) {
      const i = cats.indexOf(p.x.label ?? p.x.v);
      if (i < 0) continue;
      const w = (Math.max(p.y, 0) / max) * innerW;
      const y = pad.t + i * band + band * 0.12 + (k * band * 0.76) / n;
      const bh = Math.max((band * 0.76) / n - 1, 2);
      svg.append(s("rect", { x: pad.l, y, width: w, height: bh, class: `bar series-${k % PALETTE.length}` },
        s("title", {}, `${serie.name} · ${c(p)}: ${fmtNum(p.y)}`)));
      svg.append(s("text", { x: pad.l + w + 4, y: y + bh / 2 + 4, class: "axis" }, fmtNum(p.y)));
    }
  });
  function c(p) { return p.x.label ?? p.x.v; }
  container.append(svg);
}

function pie(container, data) {
  const serie = data.series[0];
  const points = serie.points.filter((p) => p.y > 0).sort((a, b) => b.y - a.y);
  const shown = points.slice(0, 9);
  const rest = points.slice(9).reduce((sum, p) => sum + p.y, 0);
  if (rest > 0) shown.push({ x: { v: "other" }, y: rest });
  const total = shown.reduce((sum, p) => sum + p.y, 0) || 1;
  const { svg, width, height } = frame(container, 280);
  const r = Math.min(height / 2 - 14, 120);
  const cx = r + 24;
  const cy = height / 2;
  let angle = -Math.PI / 2;
  shown.forEach((p, i) => {
    const slice = (p.y / total) * Math.PI * 2;
    const end = angle + slice;
    const large = slice > Math.PI ? 1 : 0;
    const [x1, y1, x2, y2] = [cx + r * Math.cos(angle), cy + r * Math.sin(angle), cx + r * Math.cos(end), cy + r * Math.sin(end)];
    const d = shown.length === 1
      ? `M${cx - r},${cy} a${r},${r} 0 1,0 ${2 * r},0 a${r},${r} 0 1,0 ${-2 * r},0`
      : `M${cx},${cy} L${x1.toFixed(2)},${y1.toFixed(2)} A${r},${r} 0 ${large} 1 ${x2.toFixed(2)},${y2.toFixed(2)} Z`;
    const label = p.x.label ?? p.x.v;
    svg.append(s("path", { d, class: `slice series-${i % PALETTE.length}` }, s("title", {}, `${label}: ${fmtNum(p.y)} (${((p.y / total) * 100).toFixed(1)}%)`)));
    const ly = 24 + i * 22;
    const lx = cx + r + 40;
    if (lx < width - 60) {
      svg.append(s("rect", { x: lx, y: ly - 10, width: 12, height: 12, rx: 2, class: `slice series-${i % PALETTE.length}` }));
      svg.append(s("text", { x: lx + 18, y: ly, class: "axis label" }, `${String(label).slice(0, 40)} — ${fmtNum(p.y)} (${((p.y / total) * 100).toFixed(0)}%)`));
    }
    angle = end;
  });
  container.append(svg);
}

function card(container, data) {
  const p = data.series[0].points[0];
  container.append(h("div", { class: "card-value" }, h("div", { class: "big-number" }, fmtNum(p.y)), h("div", { class: "muted" }, data.series[0].name)));
}
