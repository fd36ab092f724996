// Health: per tenant and stream, how far behind and how the last cycles went; quarantined
// records with their reason and raw payload (as text, never as HTML).
import { $, api, clear, every, fmtNumber, fmtSeconds, h, humanize, timeEl } from "./common.js";

const box = $("#health");
const quarantine = $("#quarantine");
const status = $("#health-status");

function tile(label, value, cls = "") {
  return h("div", { class: ["tile", cls] }, h("div", { class: "n" }, value), h("div", { class: "l" }, label));
}

function outcome(value) {
  return h("span", { class: ["badge", `outcome-${value}`] }, value);
}

function pretty(raw) {
  if (raw == null) return "";
  if (typeof raw === "string") {
    try { return JSON.stringify(JSON.parse(raw), null, 2); } catch { return raw; }
  }
  return JSON.stringify(raw, null, 2);
}

function tenantCard(t) {
  const wb = t.writeBacks || {};
  const graph = t.graph || {};
  const tenantStreams = t.streams || [];
  // A tenant none of whose streams has read anything yet is not "ok" (a hung or throttled
  // tenant from the start); the server turns it to "error" once its grace has passed.
  const worst = tenantStreams.some((s) => s.outcome === "error") ? "error"
    : tenantStreams.some((s) => s.outcome === "waiting") ? "waiting"
    : tenantStreams.length && tenantStreams.every((s) => s.neverSynced) ? "never" : "ok";
  const streams = h("table", { class: "grid" },
    h("thead", {}, h("tr", {}, ["Stream", "Outcome", "Watermark", "Lag", "Last commit", "Last full read", "Cycles", "Quarantined", "Unparsed evidence", "Last error"].map((c) => h("th", {}, c)))),
    h("tbody", {}, (t.streams || []).map((s) => h("tr", {},
      h("td", {}, s.stream),
      h("td", {}, outcome(s.outcome), s.backfilling ? h("span", { class: "muted small" }, " backfilling") : null),
      h("td", { class: "col-time" }, timeEl(s.watermark)),
      h("td", { class: ["num", s.lagSeconds > 900 ? "warn" : ""] }, fmtSeconds(s.lagSeconds)),
      h("td", { class: "col-time" }, timeEl(s.lastCommitAt, { style: "ago" })),
      h("td", { class: "col-time" }, timeEl(s.lastSuccessAt, { style: "ago" })),
      h("td", { class: "num" }, fmtNumber(s.cycles)),
      h("td", { class: ["num", s.quarantined ? "warn" : ""] }, fmtNumber(s.quarantined)),
      h("td", { class: ["num", s.unparsedEvidence?.items ? "warn" : ""], title: s.unparsedEvidence?.reason || "" }, fmtNumber(s.unparsedEvidence?.items ?? 0)),
      h("td", { class: "small" }, s.lastError ? h("span", { class: "bad" }, s.lastError) : h("span", { class: "muted" }, "—"),
        s.retryAt ? h("div", { class: "muted" }, "retry ", timeEl(s.retryAt, { style: "ago" })) : null),
    ))));
  const counts = wb.counts || {};
  return h("section", { class: "card tenant-health", "data-tenant": t.tenant },
    h("h2", {}, t.tenant, outcome(worst), h("span", { class: "muted mono small" }, t.tenantId)),
    h("div", { class: "tiles" },
      tile("incidents", fmtNumber(t.records?.incidents)),
      tile("alerts", fmtNumber(t.records?.alerts)),
      tile("Graph requests", fmtNumber(graph.requests ?? 0)),
      tile("throttled", fmtNumber(graph.throttled ?? 0), graph.throttled ? "warn" : ""),
      tile("retries", fmtNumber(graph.retries ?? 0)),
      tile("quarantined", fmtNumber(t.quarantine?.count ?? 0), t.quarantine?.count ? "warn" : ""),
      tile("edits pending", fmtNumber(wb.pending ?? 0)),
      tile("edits failed", fmtNumber(wb.failed ?? 0), wb.failed ? "bad" : ""),
      tile("conflicts", fmtNumber(counts.conflict ?? 0), counts.conflict ? "warn" : ""),
      tile("write-backs", wb.writes ?? "—", wb.writes === "read-only" ? "warn" : ""),
    ),
    h("div", { class: "grid-wrap" }, streams),
    (wb.readOnlyReasons || []).length ? h("p", { class: "warn small" }, `Read-only: ${wb.readOnlyReasons.join("; ")}`) : null,
    wb.lastFailure ? h("p", { class: "small" }, h("span", { class: "bad" }, "Last refused edit: "),
      `${wb.lastFailure.entityType} ${wb.lastFailure.entityId} ${wb.lastFailure.field} by ${wb.lastFailure.author}: ${wb.lastFailure.outcome || ""}`) : null,
  );
}

function destinationCard(list) {
  if (!list || !list.length) return null;
  return h("section", { class: "card" }, h("h2", {}, "Destinations"),
    h("div", { class: "grid-wrap" }, h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, ["Destination", "Type", "Behind", "Oldest pending", "Delivered", "Dead letters", "Error"].map((c) => h("th", {}, c)))),
      h("tbody", {}, list.map((d) => h("tr", {},
        h("td", {}, d.name), h("td", {}, d.type), h("td", { class: "num" }, fmtNumber(d.behind)),
        h("td", { class: "col-time" }, timeEl(d.oldestPendingAt, { style: "ago" })),
        h("td", { class: "col-time" }, timeEl(d.deliveredAt, { style: "ago" })),
        h("td", { class: "num" }, fmtNumber(d.deadLetters)),
        h("td", { class: "small" }, d.error ? h("span", { class: "bad" }, d.error) : h("span", { class: "muted" }, "—"))))))));
}

function quarantineList(tenants) {
  clear(quarantine);
  let any = false;
  for (const t of tenants) {
    for (const q of t.quarantine?.newest || []) {
      any = true;
      quarantine.append(h("div", { class: "quarantine-item" },
        h("div", {}, h("strong", {}, t.tenant), " · ", q.stream, " · ", timeEl(q.at), " · ", h("span", { class: "warn" }, q.reason)),
        h("details", {}, h("summary", { class: "muted small" }, "raw payload"), h("pre", { class: "raw" }, pretty(q.raw)))));
    }
    if ((t.quarantine?.count || 0) > (t.quarantine?.newest || []).length) {
      quarantine.append(h("p", { class: "muted small" }, `${t.tenant}: ${t.quarantine.count} in all, the newest shown (xdrsync quarantine list for the rest).`));
    }
  }
  if (!any) quarantine.append(h("p", { class: "muted" }, "Nothing quarantined."));
}

async function load({ background = false } = {}) {
  try {
    const data = await api("/api/v1/health", { background });
    clear(box);
    for (const t of data.tenants || []) box.append(tenantCard(t));
    const dest = destinationCard(data.destinations);
    if (dest) box.append(dest);
    quarantineList(data.tenants || []);
    status.textContent = `as of ${new Date(data.generatedAt || Date.now()).toLocaleTimeString()}`;
  } catch (error) {
    status.textContent = `Could not load health: ${error.message}`;
  }
}

export { humanize };
load();
every(10000, load);
