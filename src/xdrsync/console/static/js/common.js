// Shared helpers of the console's pages: the API client (CSRF header on edits), a small DOM
// builder that only ever sets text (never HTML), times in the analyst's zone with UTC on
// hover, labels and badges.

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.getAttribute("content") ?? "";

export const me = {
  name: meta("user-name"),
  role: meta("user-role"),
  // The address incidents are assigned to ("assign to me"); empty when the user has none.
  address: meta("user-address"),
};
const RANK = { reader: 0, responder: 1, admin: 2 };
export const can = (role) => (RANK[me.role] ?? -1) >= RANK[role];
export const csrfToken = () => meta("csrf-token");

// Set once the user signs out: a call the ended session then answers with 401 (one the page
// had in flight, such as its first loads) leaves the navigation to the sign-out, which goes
// to the plain login page rather than back to this one.
let signingOut = false;
export const beginSignOut = () => { signingOut = true; };

export class ApiError extends Error {
  constructor(status, detail, data) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
    this.data = data;
  }
}

/** Call the console's API; JSON in, JSON out. Edits carry the session's CSRF token.
 * ``background``: the page asks on its own (a live poll, or the refresh it triggers), not the
 * analyst: the session stays valid but its idle timer is not reset, so an unattended page
 * still signs out after the idle minutes. */
export async function api(path, { method = "GET", body, signal, background = false } = {}) {
  const headers = { Accept: "application/json" };
  if (background === true) headers["X-Xdrsync-Background"] = "1";
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  if (response.status === 401) {
    const here = location.pathname + location.search;
    if (!signingOut) location.assign(`/login?next=${encodeURIComponent(here)}`);
    throw new ApiError(401, "signed out");
  }
  let data = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) data = await response.json().catch(() => null);
  else data = await response.text().catch(() => null);
  if (!response.ok) {
    const detail = data && typeof data === "object" ? (data.detail ?? data.error ?? data) : data;
    throw new ApiError(response.status, describe(detail), data);
  }
  return data;
}

/** One line for an API error's detail (FastAPI's 422 lists of problems included). */
export function describe(detail) {
  if (detail == null) return "request failed";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // FastAPI's loc starts with "body" (or "query"); a problem of the whole body has no more.
    const where = (d) => (d.loc || []).slice(1).join(".");
    return detail.map((d) => (d && d.msg ? (where(d) ? `${where(d)}: ${d.msg}` : String(d.msg)) : String(d))).join("; ");
  }
  if (typeof detail === "object" && detail.message) return String(detail.message);
  return JSON.stringify(detail);
}

// -- DOM ------------------------------------------------------------------------------------

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "href") node.setAttribute("href", safeHref(String(value)));
    else node.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element with attributes and children (strings become text nodes). */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  apply(node, attrs);
  append(node, children);
  return node;
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  apply(node, attrs);
  append(node, children);
  return node;
}

/** Only same-site paths and http(s) links; anything else (javascript:, data:) becomes "#". */
export function safeHref(value) {
  if (value.startsWith("/") && !value.startsWith("//")) return value;
  if (value.startsWith("#") || value.startsWith("?")) return value;
  try {
    const url = new URL(value);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : "#";
  } catch {
    return "#";
  }
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

/**
 * What a page shows of the fields an edit may change, sent with the edit as `seen`: Defender
 * may have changed a field since the page was drawn, and only the value the analyst saw lets
 * the merge treat that as a conflict (decided by the field's policy) instead of overwriting it.
 */
export const seenOf = (d) => ({
  assignedTo: d.assignedTo ?? null, status: d.status ?? null,
  classification: d.classification ?? null, determination: d.determination ?? null,
});

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

// -- time -----------------------------------------------------------------------------------

const dateFmt = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit",
});
const shortFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit" });
const clockFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

export function parseTime(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

export function utcText(date) {
  return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/Z$/, " UTC");
}

export function ago(date, now = Date.now()) {
  const seconds = Math.round((now - date.getTime()) / 1000);
  const future = seconds < 0;
  const abs = Math.abs(seconds);
  let text;
  if (abs < 45) text = `${abs}s`;
  else if (abs < 3600) text = `${Math.round(abs / 60)}m`;
  else if (abs < 86400 * 2) text = `${Math.round(abs / 3600)}h`;
  else text = `${Math.round(abs / 86400)}d`;
  return future ? `in ${text}` : `${text} ago`;
}

/** A <time> in the browser's zone, its UTC time in the tooltip. */
export function timeEl(value, { style = "short" } = {}) {
  const date = parseTime(value);
  if (!date) return h("span", { class: "muted" }, "—");
  const now = new Date();
  let text;
  if (style === "ago") text = ago(date);
  else if (style === "clock") text = clockFmt.format(date);
  else if (style === "long") text = dateFmt.format(date);
  else text = date.getFullYear() === now.getFullYear() ? shortFmt.format(date) : dateFmt.format(date);
  return h("time", { datetime: date.toISOString(), title: `${utcText(date)} · ${ago(date)}` }, text);
}

// -- labels ---------------------------------------------------------------------------------

export const SEVERITIES = ["high", "medium", "low", "informational", "unknown"];
export const STATUS_LABELS = {
  new: "New", active: "Active", inProgress: "In progress", awaitingAction: "Awaiting action",
  resolved: "Resolved", redirected: "Redirected", unknown: "Unknown",
};
export const PRODUCT_LABELS = {
  microsoftDefenderForEndpoint: "MDE",
  microsoftDefenderForOffice365: "MDO",
  microsoftDefenderForIdentity: "MDI",
  microsoftDefenderForCloudApps: "MDA",
  microsoftDefenderForCloud: "MDC",
  azureAdIdentityProtection: "Entra IdP",
  dataLossPrevention: "DLP",
  microsoftInsiderRiskManagement: "IRM",
  microsoft365Defender: "XDR",
  microsoftSentinel: "Sentinel",
  microsoftAppGovernance: "App Gov",
  microsoftDefenderThreatIntelligenceAnalytics: "MDTI",
  microsoftThreatIntelligence: "MTI",
  microsoftSecurityForAI: "Security for AI",
};
export const CLASSIFICATIONS = {
  unknown: "Unknown",
  falsePositive: "False positive",
  truePositive: "True positive",
  informationalExpectedActivity: "Informational, expected activity",
};
export const DETERMINATIONS = {
  unknown: "Unknown",
  apt: "APT",
  malware: "Malware",
  securityPersonnel: "Security personnel",
  securityTesting: "Security testing",
  unwantedSoftware: "Unwanted software",
  other: "Other",
  multiStagedAttack: "Multi-staged attack",
  compromisedAccount: "Compromised account",
  phishing: "Phishing",
  maliciousUserActivity: "Malicious user activity",
  notMalicious: "Not malicious",
  notEnoughDataToValidate: "Not enough data to validate",
  confirmedActivity: "Confirmed activity",
  lineOfBusinessApplication: "Line-of-business application",
};

/** Words of a camelCase value: "inProgress" → "In progress". */
export function humanize(value) {
  if (value == null || value === "") return "";
  const text = String(value).replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/_/g, " ").toLowerCase();
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export const statusLabel = (v) => STATUS_LABELS[v] ?? humanize(v);
export const productLabel = (v) => PRODUCT_LABELS[v] ?? humanize(String(v).replace(/^microsoft/, ""));

/** Graph's severities in rank order (console/index.py SEVERITY_RANK). */
export const SEVERITY_RANK = { informational: 0, low: 1, medium: 2, high: 3 };
const NO_SEVERITY = new Set(["", "unknown", "unknownfuturevalue"]);

/** The severity an incident counts, filters and sorts under (console/queue.py severity_name):
 * Graph's, "unknown" for a missing or unknown one, and "high" for one newer than this version
 * (Graph's `critical`, say), as the log tables and Sentinel read it. */
export function severityName(severity) {
  const lowered = String(severity ?? "").trim().toLowerCase();
  if (Object.hasOwn(SEVERITY_RANK, lowered)) return lowered;
  return NO_SEVERITY.has(lowered) ? "unknown" : "high";
}

/** The sort rank of a severity (console/index.py severity_rank): -1 when unknown. */
export const severityRank = (severity) => SEVERITY_RANK[severityName(severity)] ?? -1;

/** A severity badge in Defender's own word, coloured as it counts: a newer severity reads
 * "Critical" in High's colours, and says so on hover. */
export function severityBadge(severity) {
  const value = severity || "unknown";
  const name = severityName(severity);
  const newer = name === "high" && String(severity).trim().toLowerCase() !== "high";
  const title = newer
    ? `Severity: ${humanize(value)} (Defender's word; newer than this version, so counted, filtered and sorted as High)`
    : `Severity: ${humanize(value)}`;
  return h("span", { class: ["badge", "sev", `sev-${name}`, newer ? "sev-newer" : ""], title, "data-severity": value }, humanize(value));
}

export function statusBadge(status) {
  const value = status || "unknown";
  return h("span", { class: ["badge", "status", `st-${value}`] }, statusLabel(value));
}

const SYNC_TITLES = {
  synced: "In step with Defender",
  pending: "An edit is on its way to Defender",
  conflict: "An edit waits for a person (see Conflicts)",
  failed: "Defender refused an edit",
  confirmed: "Defender has the edit",
  overridden: "Defender's value was kept",
  replaced: "A newer edit replaced this one",
};
export function syncBadge(state) {
  const value = state || "synced";
  return h("span", { class: ["badge", "sync", `sync-${value}`], title: SYNC_TITLES[value] ?? value }, value);
}

export function tagChip(tag, extra) {
  return h("span", { class: "tag" }, tag, extra);
}

/** An id the analyst copies with a click, or with Enter or Space once tabbed to: a button. */
export function copyable(text, attrs = {}) {
  const node = h("button", { type: "button", class: ["mono", "copyable", attrs.class], title: attrs.title ?? "Click to copy" }, text);
  wireCopy(node, text);
  return node;
}

/** Make ``node`` (a button the page drew, such as the breadcrumb's id) copy ``text``. */
export function wireCopy(node, text) {
  node.addEventListener("click", (event) => {
    event.preventDefault();
    event.stopPropagation();
    navigator.clipboard?.writeText(text).then(() => toast(`Copied ${text}`), () => toast(`Could not copy ${text}`, "error"));
  });
}

// -- feedback -------------------------------------------------------------------------------

export function toast(message, kind = "info", ms = 3500) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = h("div", { class: ["toast", `toast-${kind}`], role: kind === "error" ? "alert" : "status" }, message);
  box.append(item);
  setTimeout(() => item.classList.add("leaving"), ms);
  setTimeout(() => item.remove(), ms + 400);
}

/** A timer that skips work while the tab is hidden and never overlaps itself; ``work`` gets
 * ``{ background: true }``, to pass on to ``api`` (its requests are not the analyst's). */
export function every(ms, work) {
  let running = false;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    if (!running && !document.hidden) {
      running = true;
      try { await work({ background: true }); } catch (error) { console.warn(error); }
      running = false;
    }
    if (!stopped) setTimeout(tick, ms);
  };
  setTimeout(tick, ms);
  return () => { stopped = true; };
}

/** Whether a key event comes from somewhere the analyst types. */
export function typing(event) {
  const t = event.target;
  return t instanceof HTMLElement && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
}

export function fmtNumber(n) {
  return typeof n === "number" ? n.toLocaleString() : n == null ? "—" : String(n);
}

export function fmtSeconds(seconds) {
  if (seconds == null) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** The determinations the close forms offer with each classification: those of Defender's
 * update table (reference §2.3), as its portal offers them. The API (twoway/fields.py PAIRS)
 * also takes `apt` and `securityPersonnel`, which Microsoft deprecated in 2022 and older
 * incidents carry; the forms do not offer them. */
export const PAIRS = {
  truePositive: ["multiStagedAttack", "maliciousUserActivity", "compromisedAccount", "malware", "phishing", "unwantedSoftware", "other"],
  informationalExpectedActivity: ["securityTesting", "lineOfBusinessApplication", "confirmedActivity", "other"],
  falsePositive: ["notMalicious", "notEnoughDataToValidate", "other"],
  unknown: ["unknown"],
};

/** Fill a determination <select> with what goes with the chosen classification, after a blank
 * first option: the analyst picks one or sends none (the server then keeps the incident's
 * determination where it fits, else "other"), so closing never picks one silently. */
export function fillDeterminations(classification, select) {
  clear(select);
  select.append(h("option", { value: "" }, classification ? "— choose (optional) —" : "—"));
  for (const value of PAIRS[classification] || []) select.append(h("option", { value }, DETERMINATIONS[value] ?? humanize(value)));
  select.disabled = !classification;
}

export const looksLikeAddress = (v) => /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(v || "");

/** Wire the "assign to…" form (`#PREFIX-assign`) and the status form (`#PREFIX-status`) to
 * `edit(changes, label)`, which resolves true when the edit was queued. */
export function wireAssignAndStatus(prefix, edit) {
  $(`#${prefix}-assign`).addEventListener("submit", (event) => {
    event.preventDefault();
    const input = event.target.elements.assignee;
    const who = input.value.trim();
    edit({ assignedTo: who }, who ? `assign to ${who}` : "unassign").then((ok) => { if (ok) input.value = ""; });
  });
  $(`#${prefix}-status`).addEventListener("submit", (event) => {
    event.preventDefault();
    const status = event.target.elements.status.value;
    edit({ status }, `status ${statusLabel(status)}`);
  });
}
