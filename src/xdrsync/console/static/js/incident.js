// One incident: header, actions (responders), overview, alerts, investigation graph,
// entities, timeline, comments, edits, history and audit. Edits go through the API and are
// followed from pending to confirmed (or conflict/failed); changes made in Defender show up
// without reload (GET /api/v1/changes).
import {
  $, api, can, clear, CLASSIFICATIONS, DETERMINATIONS, every, h, humanize, me,
  productLabel, severityBadge, statusBadge, statusLabel, syncBadge, tagChip, timeEl, toast,
  typing, copyable, wireCopy, utcText, parseTime, fillDeterminations, looksLikeAddress, wireAssignAndStatus,
  seenOf,
} from "./common.js";
import { drawGraph } from "./graph.js";

const root = $("#incident");
const ID = root.dataset.id;
const EDITABLE = root.dataset.canEdit === "true" && can("responder");
const PATH = `/api/v1/incidents/${encodeURIComponent(ID)}`;
const AUDIT_SHOWN = 60; // the newest audit entries listed (the API sends up to 200)
const ENTITY_LABELS = {
  user: "Accounts", account: "Accounts", device: "Devices", host: "Devices", ip: "IP addresses",
  url: "URLs", file: "Files", process: "Processes", mailbox: "Mailboxes", analyzedMessage: "Emails",
  mailCluster: "Mail clusters", registryKey: "Registry keys", registryValue: "Registry values",
  cloudApplication: "Cloud apps", oauthApplication: "OAuth apps", securityGroup: "Groups",
  mailboxConfiguration: "Mailbox rules", dns: "DNS", networkConnection: "Network connections",
  malware: "Malware", azureResource: "Azure resources", googleCloudResource: "GCP resources",
  amazonResource: "AWS resources", kubernetesCluster: "Kubernetes", blob: "Blobs", teamsMessage: "Teams messages",
};

let current = null;
let graphApi = null;
const tracked = new Map(); // edit id → last known state
let seq = null;

const entityLabel = (kind) => ENTITY_LABELS[kind] ?? humanize(kind);

// -- loading ----------------------------------------------------------------------------------

async function load({ background = false } = {}) {
  try {
    const data = await api(PATH, { background });
    current = data;
    render(data);
    followEdits(data.edits || []);
  } catch (error) {
    if (error.status === 404) {
      $("#h-title").textContent = `No incident ${ID}`;
      toast("This incident does not exist, or is in a tenant you may not see.", "error", 8000);
    } else {
      toast(`Could not load the incident: ${error.message}`, "error");
    }
  }
}

function render(d) {
  renderHeader(d);
  renderOverview(d);
  renderAlerts(d);
  renderGraph(d);
  renderEntities(d);
  renderTimeline(d);
  renderComments(d);
  renderEdits(d);
  renderHistory(d);
  document.title = `${d.incidentId} ${d.displayName || ""} · xdrsync`;
}

// -- header -----------------------------------------------------------------------------------

function renderHeader(d) {
  const sev = $("#h-severity");
  sev.replaceWith(Object.assign(severityBadge(d.severity), { id: "h-severity" }));
  $("#h-title").textContent = d.displayName || "(no title)";
  clear($("#h-status")).append(statusBadge(d.status));
  clear($("#h-owner")).append(d.assignedTo ? h("span", { class: "owner" }, d.assignedTo) : h("span", { class: "muted" }, "unassigned"));
  const cls = d.classification && d.classification !== "unknown" ? CLASSIFICATIONS[d.classification] ?? humanize(d.classification) : null;
  const det = d.determination && d.determination !== "unknown" ? DETERMINATIONS[d.determination] ?? humanize(d.determination) : null;
  clear($("#h-classification")).append(cls ? `${cls}${det ? ` · ${det}` : ""}` : h("span", { class: "muted" }, "not classified"));
  clear($("#h-tenant")).append(d.tenant, " ", copyable(d.incidentId, { title: "Defender's incident id — click to copy" }));
  clear($("#h-created")).append(timeEl(d.createdDateTime, { style: "long" }));
  clear($("#h-updated")).append(timeEl(d.lastUpdateDateTime, { style: "long" }));
  clear($("#h-sync")).append(syncBadge(d.syncState));
  const portal = clear($("#h-portal"));
  if (d.incidentWebUrl) portal.append(h("a", { href: d.incidentWebUrl, target: "_blank", rel: "noopener noreferrer", id: "portal-link" }, "Open in Defender ↗"));
  else portal.append(h("span", { class: "muted" }, "—"));
  const tags = clear($("#h-tags"));
  for (const tag of d.customTags || []) {
    let remove = null;
    if (EDITABLE) {
      remove = h("button", { type: "button", title: `Remove tag ${tag}`, "aria-label": `Remove tag ${tag}` }, "×");
      remove.addEventListener("click", () => edit({ removeTags: [tag] }, `remove tag ${tag}`));
    }
    tags.append(tagChip(tag, remove));
  }
  if (!(d.customTags || []).length) tags.append(h("span", { class: "muted small" }, "no tags"));
  const merged = $("#h-merged");
  clear(merged);
  const parts = [];
  if (d.mergedInto) {
    const survivor = h("a", { href: `/incidents/${encodeURIComponent(d.mergedInto)}` }, d.mergedInto);
    // Defender takes no edit of an incident merged away; comments go on to the survivor.
    parts.push(h("span", {}, "Merged into ", survivor, EDITABLE ? ": assign, change status and close it there; comments added here go there. " : ". "));
  }
  if ((d.mergedFrom || []).length) {
    parts.push(h("span", {}, "Merged from ", d.mergedFrom.map((m, i) => [i ? ", " : "", h("a", { href: `/incidents/${encodeURIComponent(m)}` }, m)]), "."));
  }
  merged.append(...parts);
  merged.hidden = !parts.length;
  if (EDITABLE) {
    $("#actions").hidden = !!d.mergedInto;
    const closed = d.status === "resolved";
    $("#act-close").hidden = closed;
    $("#act-reopen").hidden = !closed;
    const meButton = $("#act-assign-me");
    const mine = (d.assignedTo || "").toLowerCase() === me.address.toLowerCase();
    meButton.disabled = mine || !looksLikeAddress(me.address);
    meButton.title = !looksLikeAddress(me.address)
      ? `Your user (${me.name}) has no address (xdrsync users add --email); use “assign to…”`
      : mine ? "Already yours" : "Assign to me (a)";
    const select = $("#act-status select");
    if (!closed && [...select.options].some((o) => o.value === d.status)) select.value = d.status;
  }
}

// -- overview, alerts -------------------------------------------------------------------------

function allEntities(d) {
  return Object.values(d.entities || {}).flat();
}

function renderOverview(d) {
  const desc = $("#description");
  desc.textContent = d.description || "No description.";
  desc.classList.toggle("muted", !d.description);
  const tactics = clear($("#tactics"));
  for (const t of d.tactics || []) tactics.append(h("span", { class: "chip" }, humanize(t)));
  const techniques = [...new Set((d.alerts || []).flatMap((a) => a.mitreTechniques || []))].sort();
  const tech = clear($("#techniques"));
  for (const t of techniques) tech.append(h("span", { class: "chip mono" }, t));
  if (!techniques.length) tech.append(h("span", { class: "muted" }, "—"));
  if (!(d.tactics || []).length) tactics.append(h("span", { class: "muted" }, "—"));
  const products = clear($("#products"));
  for (const p of d.productSources || []) products.append(h("span", { class: "chip", title: p }, productLabel(p)));
  const top = allEntities(d).sort((a, b) => b.alertIds.length - a.alertIds.length || (b.otherIncidents || 0) - (a.otherIncidents || 0)).slice(0, 8);
  const topBox = clear($("#top-entities"));
  for (const e of top) {
    const chip = h("button", { type: "button", class: "chip", title: `${e.kind}: ${e.entityKey || e.displayName} — in ${e.alertIds.length} alert(s)` }, `${e.displayName || e.entityKey} (${e.alertIds.length})`);
    chip.addEventListener("click", () => { graphApi?.pick(`entity:${e.kind}:${e.entityKey ?? e.displayName}`); $("#graph").scrollIntoView(); });
    topBox.append(chip);
  }
  if (!top.length) topBox.append(h("span", { class: "muted" }, "—"));
  $("#n-alerts").textContent = String((d.alerts || []).length);
  $("#n-entities").textContent = String(allEntities(d).length);
  $("#n-comments").textContent = String((d.comments || []).length);
  $("#n-edits").textContent = String((d.edits || []).length);
}

function renderAlerts(d) {
  const tbody = clear($("#alerts-table tbody"));
  for (const a of d.alerts || []) {
    const title = a.alertWebUrl
      ? h("a", { href: a.alertWebUrl, target: "_blank", rel: "noopener noreferrer", title: "Open the alert in Defender" }, a.title || a.alertId)
      : a.title || a.alertId;
    const tr = h("tr", { "data-alert": a.id },
      h("td", {}, severityBadge(a.severity)),
      h("td", {}, title, h("div", { class: "sub muted mono" }, a.alertId)),
      h("td", {}, a.productName || productLabel(a.serviceSource || "")),
      h("td", {}, statusBadge(a.status), a.assignedTo ? h("div", { class: "sub muted" }, a.assignedTo) : null),
      h("td", {}, (a.mitreTechniques || []).map((t) => h("span", { class: "chip mono" }, t)), a.category ? h("div", { class: "sub muted" }, humanize(a.category)) : null),
      h("td", { class: "col-time" }, timeEl(a.firstActivityDateTime)),
      h("td", { class: "col-time" }, timeEl(a.lastActivityDateTime)),
      h("td", { class: "col-time" }, timeEl(a.createdDateTime)));
    pickable(tr, () => graphApi?.pick(a.id), `Show alert ${a.title || a.alertId} in the graph`);
    tbody.append(tr);
  }
  if (!(d.alerts || []).length) tbody.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No alerts.")));
}

// -- graph ------------------------------------------------------------------------------------

function renderGraph(d) {
  const alerts = new Map((d.alerts || []).map((a) => [a.id, a]));
  const entities = new Map(allEntities(d).map((e) => [`entity:${e.kind}:${e.entityKey ?? e.displayName}`, e]));
  const details = $("#graph-details");
  graphApi = drawGraph($("#graph-canvas"), d.graph || { nodes: [], edges: [] }, {
    describe(node) {
      if (node.kind === "incident") return { kind: "incident", title: node.label || d.displayName, severity: d.severity };
      if (node.kind === "alert") {
        const a = alerts.get(node.id) || {};
        return { kind: `alert · ${a.serviceSource ? productLabel(a.serviceSource) : a.productName || ""}`, title: node.label || a.title, severity: a.severity };
      }
      const e = entities.get(node.id) || {};
      const shared = (e.alertIds || []).length > 1;
      return { kind: `${humanize(node.kind)}${shared ? ` · ${e.alertIds.length} alerts` : ""}`, title: node.label, shared, verdict: e.verdict, sub: e.entityKey };
    },
    onPick(node) {
      clear(details);
      if (node.kind === "incident") {
        details.append(h("h4", {}, d.displayName), h("dl", { class: "kv" },
          h("dt", {}, "Status"), h("dd", {}, statusLabel(d.status)),
          h("dt", {}, "Alerts"), h("dd", {}, String((d.alerts || []).length)),
          h("dt", {}, "Entities"), h("dd", {}, String(entities.size))));
      } else if (node.kind === "alert") {
        const a = alerts.get(node.id) || {};
        details.append(h("h4", {}, a.title || node.label), h("dl", { class: "kv" },
          h("dt", {}, "Severity"), h("dd", {}, severityBadge(a.severity)),
          h("dt", {}, "Status"), h("dd", {}, statusLabel(a.status)),
          h("dt", {}, "Product"), h("dd", {}, a.productName || a.serviceSource || "—"),
          h("dt", {}, "Category"), h("dd", {}, humanize(a.category) || "—"),
          h("dt", {}, "MITRE"), h("dd", {}, (a.mitreTechniques || []).join(", ") || "—"),
          h("dt", {}, "First"), h("dd", {}, timeEl(a.firstActivityDateTime, { style: "long" })),
          h("dt", {}, "Last"), h("dd", {}, timeEl(a.lastActivityDateTime, { style: "long" })),
          h("dt", {}, "Id"), h("dd", {}, copyable(a.alertId || ""))),
          a.alertWebUrl ? h("p", {}, h("a", { href: a.alertWebUrl, target: "_blank", rel: "noopener noreferrer" }, "Open in Defender ↗")) : null);
      } else {
        const e = entities.get(node.id) || {};
        details.append(h("h4", {}, e.displayName || node.label), h("dl", { class: "kv" },
          h("dt", {}, "Kind"), h("dd", {}, humanize(e.kind || node.kind)),
          h("dt", {}, "Key"), h("dd", {}, e.entityKey ? copyable(e.entityKey) : "—"),
          h("dt", {}, "Verdict"), h("dd", { class: `verdict-${e.verdict}` }, humanize(e.verdict) || "—"),
          h("dt", {}, "Remediation"), h("dd", {}, humanize(e.remediationStatus) || "—"),
          Object.entries(e.attributes || {}).map(([name, value]) => [h("dt", {}, name), h("dd", { class: "mono" }, copyable(typeof value === "object" ? JSON.stringify(value) : String(value)))]),
          h("dt", {}, "In alerts"), h("dd", {}, (e.alertIds || []).map((id) => h("div", {}, alerts.get(id)?.title || id))),
          h("dt", {}, "Elsewhere"), h("dd", {}, e.otherIncidents ? alsoIn(e, d) : "only this incident")));
      }
    },
  });
}

// The queue of this tenant's incidents whose evidence names the entity exactly (this one
// among them): the incidents the count is of.
/** `element` shows its item in the graph when clicked (not on a link in it), or from the
 * keyboard: it takes focus, and Enter or Space picks it. (No button role: a table row keeps
 * its cells, and an entity card holds a link of its own.) */
function pickable(element, pick, hint) {
  element.tabIndex = 0;
  element.title ||= hint;
  element.addEventListener("click", (event) => { if (!event.target.closest("a")) pick(); });
  element.addEventListener("keydown", (event) => {
    if (event.target !== element || (event.key !== "Enter" && event.key !== " ")) return;
    event.preventDefault();
    pick();
  });
}

function alsoIn(e, d) {
  const q = new URLSearchParams({ entity: `${e.kind}:${e.entityKey}`, tenant: d.tenant });
  return h("span", { class: "also" }, h("a", { href: `/?${q}`, title: "Incidents that share this entity" }, `also in ${e.otherIncidents} incident${e.otherIncidents === 1 ? "" : "s"}`));
}

// -- entities ---------------------------------------------------------------------------------

function renderEntities(d) {
  const box = clear($("#entity-groups"));
  const groups = Object.entries(d.entities || {}).sort((a, b) => b[1].length - a[1].length);
  for (const [kind, list] of groups) {
    const items = [...list].sort((a, b) => b.alertIds.length - a.alertIds.length || (a.displayName || "").localeCompare(b.displayName || ""));
    box.append(h("div", { class: "entity-group", "data-kind": kind },
      h("h3", {}, entityLabel(kind), h("span", { class: "pill" }, String(items.length))),
      items.map((e) => {
        const node = h("div", { class: "entity" },
          h("div", { class: "entity-name", title: e.entityKey || "" }, e.displayName || e.entityKey || "(unnamed)"),
          h("div", { class: "entity-meta" },
            e.verdict ? h("span", { class: `verdict-${e.verdict}` }, humanize(e.verdict)) : null,
            e.remediationStatus && e.remediationStatus !== "none" ? h("span", {}, `remediation: ${humanize(e.remediationStatus)}`) : null,
            h("span", {}, `${e.alertIds.length} alert${e.alertIds.length === 1 ? "" : "s"}`),
            e.evidenceKind && e.evidenceKind !== e.kind ? h("span", {}, humanize(e.evidenceKind)) : null,
            e.otherIncidents ? alsoIn(e, d) : null));
        const name = e.displayName || e.entityKey || "entity";
        pickable(node, () => graphApi?.pick(`entity:${e.kind}:${e.entityKey ?? e.displayName}`), `Show ${name} in the graph`);
        return node;
      })));
  }
  if (!groups.length) box.append(h("p", { class: "muted" }, "No entities."));
}

// -- timeline ---------------------------------------------------------------------------------

const TL_KINDS = ["alert", "evidence", "comment", "version"];
const tlShown = new Set(["alert", "comment", "version"]);
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", year: "numeric", month: "short", day: "numeric" });
const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

function renderTimelineFilter(d) {
  const box = clear($("#tl-filter"));
  const counts = {};
  for (const t of d.timeline || []) counts[t.kind] = (counts[t.kind] || 0) + 1;
  for (const kind of TL_KINDS) {
    if (!counts[kind]) continue;
    const input = h("input", { type: "checkbox", value: kind });
    input.checked = tlShown.has(kind);
    input.addEventListener("change", () => { input.checked ? tlShown.add(kind) : tlShown.delete(kind); renderTimeline(current, false); });
    box.append(h("label", {}, input, `${humanize(kind)}s (${counts[kind]})`));
  }
}

function renderTimeline(d, withFilter = true) {
  if (withFilter) renderTimelineFilter(d);
  const list = clear($("#timeline-list"));
  const alerts = new Map((d.alerts || []).map((a) => [a.id, a]));
  let day = "";
  for (const t of d.timeline || []) {
    if (!tlShown.has(t.kind)) continue;
    const date = parseTime(t.at);
    const thisDay = date ? dayFmt.format(date) : "Unknown time";
    if (thisDay !== day) {
      day = thisDay;
      list.append(h("li", { class: "tl-day" }, day));
    }
    const ref = t.ref && alerts.get(t.ref);
    list.append(h("li", { class: ["tl-item", `tl-${t.kind}`] },
      h("span", { class: "tl-time" }, date ? h("time", { datetime: date.toISOString(), title: utcText(date) }, clock.format(date)) : "—"),
      h("span", { class: "tl-kind" }, t.kind),
      t.kind === "comment" ? h("span", { class: "comment-body" }, t.text) : h("span", {}, t.text ?? ""),
      ref && t.kind === "evidence" ? h("span", { class: "muted small" }, ` — in “${ref.title}”`) : null));
  }
  if (!list.children.length) list.append(h("li", { class: "muted tl-item" }, "Nothing to show."));
}

// -- comments, edits, history ----------------------------------------------------------------

function sourceLabel(c) {
  if (c.source === "defender") return "in Defender";
  if (c.source === "destination") return `from ${c.origin || "a destination"}`;
  return `here (${c.origin || "workspace"})`;
}

function renderComments(d) {
  const list = clear($("#comment-list"));
  const items = [...(d.comments || [])].reverse();
  for (const c of items) {
    list.append(h("li", { class: ["comment", c.state !== "synced" && c.state !== "confirmed" ? "pending" : ""] },
      h("div", { class: "comment-head" },
        h("span", { class: "comment-author" }, c.createdBy || "unknown"),
        timeEl(c.createdDateTime),
        h("span", {}, sourceLabel(c)),
        c.state && c.state !== "synced" ? syncBadge(c.state) : null),
      h("div", { class: "comment-body" }, c.text)));
  }
  if (!items.length) list.append(h("li", { class: "muted" }, "No comments yet."));
}

function wantedText(e) {
  const w = e.wanted;
  if (e.field === "classification" && w && typeof w === "object") return `${humanize(w.classification)} · ${humanize(w.determination)}`;
  if (e.field === "customTags" && w && typeof w === "object") {
    return [...(w.add || []).map((t) => `+${t}`), ...(w.remove || []).map((t) => `−${t}`)].join(" ");
  }
  if (e.field === "status") return statusLabel(w);
  if (e.field === "comment") return String(w).length > 80 ? `${String(w).slice(0, 80)}…` : String(w);
  if (w === "" || w === null) return "(none)";
  return typeof w === "object" ? JSON.stringify(w) : String(w);
}

function renderEdits(d) {
  const list = clear($("#edit-list"));
  for (const e of [...(d.edits || [])].reverse()) {
    list.append(h("li", { class: ["edit", e.state], "data-edit": e.id },
      h("div", { class: "edit-head" }, syncBadge(e.state), h("strong", {}, humanize(e.field)), h("span", {}, wantedText(e))),
      h("div", { class: "muted small" }, `${e.author} via ${e.origin} · `, timeEl(e.createdAt, { style: "ago" }),
        e.entityType === "alert" ? ` · alert ${e.entityId}` : "",
        e.doneAt ? [" · done ", timeEl(e.doneAt, { style: "ago" })] : ""),
      e.outcome ? h("div", { class: "edit-outcome" }, e.outcome) : null,
      e.state === "conflict" ? h("div", {}, h("a", { href: "/conflicts" }, "Resolve in Conflicts →")) : null));
  }
  if (!(d.edits || []).length) list.append(h("li", { class: "muted" }, "No edits from the workspace."));
}

function changeText(change) {
  const show = (v) => (v === null || v === undefined || v === "" ? "∅" : typeof v === "object" ? JSON.stringify(v) : String(v));
  return `${show(change.from)} → ${show(change.to)}`;
}

function renderHistory(d) {
  const list = clear($("#history-list"));
  for (const v of [...(d.history || [])].reverse()) {
    const changed = Object.entries(v.changed || {});
    list.append(h("li", { class: "hist" },
      h("div", {}, timeEl(v.version || v.recordedAt, { style: "long" }),
        v.modifiedBy ? h("span", { class: "hist-by" }, ` by ${v.modifiedBy}${v.viaWorkspace ? " (in the workspace)" : ""}`) : null,
        h("span", { class: "muted small" }, " read ", timeEl(v.recordedAt, { style: "ago" }))),
      changed.length
        ? changed.map(([field, c]) => h("div", { class: "hist-change" }, h("strong", {}, field), ": ", changeText(c)))
        : h("div", { class: "muted small" }, "first version read")));
  }
  if (!(d.history || []).length) list.append(h("li", { class: "muted" }, "—"));
  const audit = clear($("#audit-list"));
  const shown = [...(d.audit || [])].reverse().slice(0, AUDIT_SHOWN);
  for (const a of shown) {
    const detail = a.detail && Object.keys(a.detail).length ? JSON.stringify(a.detail) : "";
    audit.append(h("li", { class: "hist" },
      h("div", {}, timeEl(a.at), " ", h("strong", {}, a.decision), h("span", { class: "muted" }, ` · ${a.stream}`)),
      detail ? h("div", { class: "hist-change" }, detail.length > 240 ? `${detail.slice(0, 240)}…` : detail) : null));
  }
  if (!(d.audit || []).length) audit.append(h("li", { class: "muted" }, "—"));
  const total = d.auditTotal ?? shown.length;
  if (total > shown.length) {
    audit.append(h("li", { class: "muted small", id: "audit-more" },
      `the newest ${shown.length} of ${total} entries`));
  }
}

// -- edits: pending → confirmed ---------------------------------------------------------------

function showTracked() {
  const box = $("#act-state");
  if (!box) return;
  clear(box);
  const recent = [...tracked.entries()].slice(-4);
  for (const [id, state] of recent) {
    const e = (current?.edits || []).find((x) => x.id === id);
    box.append(h("span", { class: "tracked", "data-edit": id }, e ? `${humanize(e.field)} ` : `edit ${id} `, syncBadge(state)));
  }
}

function followEdits(edits) {
  for (const e of edits) {
    if (!tracked.has(e.id)) continue;
    const before = tracked.get(e.id);
    if (before === e.state) continue;
    tracked.set(e.id, e.state);
    if (e.state === "confirmed") toast(`Defender confirmed: ${humanize(e.field)} ${wantedText(e)}`, "ok");
    else if (e.state === "failed") toast(`Defender refused ${humanize(e.field)}: ${e.outcome || "failed"}`, "error", 9000);
    else if (e.state === "conflict") toast(`${humanize(e.field)} conflicts with a change in Defender — see Conflicts`, "error", 9000);
    else if (e.state === "overridden" || e.state === "replaced") toast(`${humanize(e.field)}: ${e.state}${e.outcome ? ` (${e.outcome})` : ""}`);
  }
  showTracked();
}

const anyPending = () => [...tracked.values()].some((state) => state === "pending");

async function edit(body, label) {
  try {
    const answer = await api(PATH, { method: "PATCH", body: current ? { ...body, seen: seenOf(current) } : body });
    for (const e of answer.edits || []) tracked.set(e.id, e.state);
    if (!(answer.edits || []).length) toast(`Nothing to change: ${label}`);
    else toast(`Queued: ${label}`);
    await load();
    return true;
  } catch (error) {
    toast(`${label}: ${error.message}`, "error", 9000);
    return false;
  }
}

async function comment(text) {
  try {
    const answer = await api(`${PATH}/comments`, { method: "POST", body: { comment: text } });
    const edits = answer.edits || [];
    for (const e of edits) if (e.target === ID) tracked.set(e.id, e.state);
    // An incident merged away: the comment went on to the survivor, followed on its page.
    const elsewhere = edits.find((e) => e.target !== ID);
    if (elsewhere) toast(`Comment sent to incident ${elsewhere.target}, which this one was merged into`, "info", 9000);
    await load();
    return true;
  } catch (error) {
    toast(`Comment: ${error.message}`, "error", 9000);
    return false;
  }
}

function wireActions() {
  if (!EDITABLE) return;
  $("#act-assign-me").addEventListener("click", () => edit({ assignedTo: me.address }, "assign to me"));
  wireAssignAndStatus("act", edit);
  $("#act-reopen").addEventListener("click", () => edit({ status: "active" }, "reopen"));
  $("#act-tag").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = event.target.elements.tag;
    const tag = input.value.trim();
    if (!tag) return;
    // Only the tag clicked: a tag added in Defender since the page was drawn stays.
    edit({ addTags: [tag] }, `add tag ${tag}`).then((ok) => { if (ok) input.value = ""; });
  });
  const dialog = $("#close-dialog");
  const cls = $("#close-classification");
  const det = $("#close-determination");
  cls.addEventListener("change", () => fillDeterminations(cls.value, det));
  fillDeterminations(cls.value, det);
  $("#act-close").addEventListener("click", () => {
    $("#close-error").hidden = true;
    dialog.showModal();
    cls.focus();
  });
  $("#close-cancel").addEventListener("click", () => dialog.close());
  $("#close-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!cls.value) {
      const err = $("#close-error");
      err.textContent = "Closing an incident needs a classification.";
      err.hidden = false;
      return;
    }
    const note = $("#close-comment").value.trim();
    $("#close-submit").disabled = true;
    const ok = await edit({ status: "resolved", classification: cls.value, determination: det.value || undefined }, "close");
    if (ok && note) await comment(note);
    $("#close-submit").disabled = false;
    if (ok) {
      dialog.close();
      $("#close-comment").value = "";
    }
  });
  const form = $("#comment-form");
  const text = $("#comment-text");
  const send = async () => {
    const value = text.value.trim();
    if (!value) return;
    const button = form.querySelector("button");
    button.disabled = true;
    if (await comment(value)) text.value = "";
    button.disabled = false;
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); send(); });
  text.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") { event.preventDefault(); send(); }
  });
}

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || typing(event)) return;
  if (!EDITABLE) return;
  if (event.key === "a" && !$("#act-assign-me").disabled && !$("#actions").hidden) { event.preventDefault(); $("#act-assign-me").click(); }
  else if (event.key === "c") { event.preventDefault(); $("#comment-text").focus(); }
});

// -- live -------------------------------------------------------------------------------------

// The page's own requests: they do not count as the analyst's use of the session.
const BG = { background: true };

async function poll() {
  if (seq === null) {
    seq = (await api("/api/v1/changes?after=0", BG)).seq;
    return;
  }
  const changed = await api(`/api/v1/changes?after=${seq}`, BG);
  seq = changed.seq;
  if ((changed.incidents || []).includes(ID) || anyPending()) await load(BG);
}

wireCopy($("#crumb-id"), ID);
wireActions();
load();
poll();
every(1500, poll);
