// The queue's side pane: one incident's summary, alerts, top entities and last comments,
// with quick actions for responders (assign, status, close) followed pending → confirmed,
// without leaving the queue. Data: GET /api/v1/incidents/{id}; edits: PATCH the same path.
// An incident merged into another offers no edit (Defender refuses them), as on its page: the
// pane points to the survivor instead.
import {
  $, api, can, clear, CLASSIFICATIONS, DETERMINATIONS, h, humanize, me, productLabel,
  severityBadge, statusBadge, statusLabel, syncBadge, tagChip, timeEl, toast, copyable,
  fillDeterminations, looksLikeAddress, seenOf, wireAssignAndStatus,
} from "./common.js";

/** Why "assign to me" is not possible (empty when it is). */
export function assignMeProblem() {
  return looksLikeAddress(me.address) ? "" : `Your user (${me.name}) has no address (xdrsync users add --email); use “assign to…”`;
}

const POLL_MS = 1000;
const POLL_LIMIT_MS = 60_000;
const LAST_COMMENTS = 3;
const TOP_ENTITIES = 8;

/**
 * The pane. `onChanged(id)` is called when an edit was queued or confirmed, so the queue can
 * refresh the row.
 */
export function createPane({ onChanged = () => {} } = {}) {
  const root = $("#pane");
  const editable = can("responder") && !!$("#pane-actions");
  let currentId = null;
  let current = null;
  let ticket = 0;
  let tracked = new Map(); // edit id → state, for the incident shown
  let pollTimer = 0;
  let pollUntil = 0;

  const path = (id) => `/api/v1/incidents/${encodeURIComponent(id)}`;
  const href = (id) => `/incidents/${encodeURIComponent(id)}`;

  async function open(id, { focus = false } = {}) {
    if (id !== currentId) {
      tracked = new Map();
      clearTimeout(pollTimer);
      current = null;
      hideCloseForm();
    }
    currentId = id;
    root.hidden = false;
    root.dataset.id = id;
    document.body.classList.add("pane-open");
    if (!current) showLoading(id);
    await load();
    if (focus && currentId === id) root.focus({ preventScroll: true });
  }

  function close() {
    if (root.hidden) return;
    root.hidden = true;
    currentId = null;
    current = null;
    tracked = new Map();
    clearTimeout(pollTimer);
    delete root.dataset.id;
    document.body.classList.remove("pane-open");
  }

  function showLoading(id) {
    $("#pane-title").textContent = "Loading…";
    $("#pane-title").setAttribute("href", href(id));
    $("#pane-open").setAttribute("href", href(id));
    clear($("#pane-severity"));
    clear($("#pane-facts"));
    clear($("#pane-tags"));
    clear($("#pane-merged")).hidden = true;
    for (const sel of ["#pane-alerts", "#pane-entities", "#pane-comments"]) clear($(sel));
    for (const sel of ["#pane-n-alerts", "#pane-n-entities", "#pane-n-comments"]) $(sel).textContent = "";
    // No actions until the incident has loaded: they would act on what the pane showed before.
    // Their space is kept, so that the sections below do not jump at every move.
    if (editable) {
      clear($("#pane-state"));
      const actions = $("#pane-actions");
      actions.style.visibility = "hidden";
      actions.inert = true;
    }
    root.setAttribute("aria-busy", "true");
  }

  async function load({ background = false } = {}) {
    const id = currentId;
    const mine = ++ticket;
    try {
      const data = await api(path(id), { background });
      if (mine !== ticket || id !== currentId) return;
      current = data;
      render(data);
      follow(data.edits || []);
    } catch (error) {
      if (mine !== ticket || id !== currentId) return;
      $("#pane-title").textContent = error.status === 404 ? `No incident ${id}` : `Could not load ${id}`;
      clear($("#pane-facts")).append(h("div", { class: "pane-error" }, error.status === 404
        ? "This incident does not exist (any more), or is in a tenant you may not see."
        : error.message));
    } finally {
      if (mine === ticket) root.setAttribute("aria-busy", "false");
    }
  }

  // -- drawing --------------------------------------------------------------------------------

  function fact(label, ...value) {
    return h("div", {}, h("dt", {}, label), h("dd", {}, ...value));
  }

  function render(d) {
    clear($("#pane-severity")).append(severityBadge(d.severity));
    const title = $("#pane-title");
    title.textContent = d.displayName || "(no title)";
    title.setAttribute("href", href(d.id));
    title.setAttribute("title", d.displayName || "");
    $("#pane-open").setAttribute("href", href(d.id));
    const cls = d.classification && d.classification !== "unknown" ? CLASSIFICATIONS[d.classification] ?? humanize(d.classification) : null;
    const det = d.determination && d.determination !== "unknown" ? DETERMINATIONS[d.determination] ?? humanize(d.determination) : null;
    clear($("#pane-facts")).append(
      fact("Status", statusBadge(d.status)),
      fact("Owner", d.assignedTo ? h("span", { class: "owner", id: "pane-owner", title: d.assignedTo }, d.assignedTo) : h("span", { class: "muted", id: "pane-owner" }, "unassigned")),
      fact("Classification", cls ? `${cls}${det ? ` · ${det}` : ""}` : h("span", { class: "muted" }, "not classified")),
      fact("Tenant", d.tenant, " ", copyable(d.incidentId, { title: "Defender's incident id — click to copy" })),
      fact("Updated", timeEl(d.lastUpdateDateTime, { style: "ago" })),
      fact("Sync", syncBadge(d.syncState)),
      fact("Defender", d.incidentWebUrl
        ? h("a", { href: d.incidentWebUrl, target: "_blank", rel: "noopener noreferrer", id: "pane-portal" }, "Open in Defender ↗")
        : h("span", { class: "muted" }, "—")),
    );
    const tags = clear($("#pane-tags"));
    for (const tag of d.customTags || []) tags.append(tagChip(tag));
    if (!(d.customTags || []).length) tags.append(h("span", { class: "muted small" }, "no tags"));
    renderMerged(d);

    const alerts = d.alerts || [];
    $("#pane-n-alerts").textContent = String(alerts.length);
    const alertList = clear($("#pane-alerts"));
    for (const a of alerts) {
      alertList.append(h("li", { class: "pane-alert", "data-alert": a.id },
        severityBadge(a.severity),
        h("span", { class: "pane-alert-title", title: a.title || a.alertId }, a.title || a.alertId),
        h("span", { class: "chip pane-alert-product", title: a.productName || a.serviceSource || "" }, a.serviceSource ? productLabel(a.serviceSource) : a.productName || "—")));
    }
    if (!alerts.length) alertList.append(h("li", { class: "muted" }, "No alerts."));

    const entities = Object.values(d.entities || {}).flat();
    $("#pane-n-entities").textContent = String(entities.length);
    const top = [...entities].sort((a, b) => (b.alertIds || []).length - (a.alertIds || []).length || (b.otherIncidents || 0) - (a.otherIncidents || 0)).slice(0, TOP_ENTITIES);
    const entityBox = clear($("#pane-entities"));
    for (const e of top) {
      entityBox.append(h("span", { class: "chip pane-entity", title: `${humanize(e.kind)}: ${e.entityKey || e.displayName} — in ${(e.alertIds || []).length} alert(s)${e.otherIncidents ? `, ${e.otherIncidents} other incident(s)` : ""}` },
        h("span", { class: "muted" }, `${humanize(e.kind)} `), e.displayName || e.entityKey || "(unnamed)"));
    }
    if (!top.length) entityBox.append(h("span", { class: "muted" }, "—"));

    const comments = d.comments || [];
    $("#pane-n-comments").textContent = String(comments.length);
    const commentList = clear($("#pane-comments"));
    for (const c of comments.slice(-LAST_COMMENTS).reverse()) {
      commentList.append(h("li", { class: ["comment", c.state !== "synced" && c.state !== "confirmed" ? "pending" : ""] },
        h("div", { class: "comment-head" },
          h("span", { class: "comment-author" }, c.createdBy || "unknown"),
          timeEl(c.createdDateTime),
          c.state && c.state !== "synced" ? syncBadge(c.state) : null),
        h("div", { class: "comment-body" }, c.text)));
    }
    if (!comments.length) commentList.append(h("li", { class: "muted" }, "No comments yet."));

    if (editable) renderActions(d);
  }

  /** Merged incidents both ways, as the incident's page shows them. */
  function renderMerged(d) {
    const box = clear($("#pane-merged"));
    const parts = [];
    if (d.mergedInto) {
      const survivor = h("a", { href: href(d.mergedInto), id: "pane-survivor" }, d.mergedInto);
      parts.push(h("span", {}, "Merged into ", survivor, editable ? ": assign, change status and close it there. " : ". "));
    }
    if ((d.mergedFrom || []).length) {
      parts.push(h("span", {}, "Merged from ", d.mergedFrom.map((m, i) => [i ? ", " : "", h("a", { href: href(m) }, m)]), "."));
    }
    box.append(...parts);
    box.hidden = !parts.length;
  }

  function renderActions(d) {
    // Defender takes no edit of an incident merged away: no actions, the pointer instead.
    const actions = $("#pane-actions");
    actions.style.visibility = "";
    actions.inert = false;
    actions.hidden = !!d.mergedInto;
    if (d.mergedInto) hideCloseForm();
    const closed = d.status === "resolved";
    $("#pane-close-open").hidden = closed;
    $("#pane-reopen").hidden = !closed;
    if (closed) hideCloseForm();
    const meButton = $("#pane-assign-me");
    const mine = (d.assignedTo || "").toLowerCase() === (me.address || "").toLowerCase() && !!me.address;
    const problem = assignMeProblem();
    meButton.disabled = mine || !!problem;
    meButton.title = problem || (mine ? "Already yours" : "Assign to me");
    const select = $("#pane-status select");
    if (!closed && [...select.options].some((o) => o.value === d.status)) select.value = d.status;
  }

  // -- edits: pending → confirmed ---------------------------------------------------------------

  function wanted(e) {
    const w = e.wanted;
    if (e.field === "classification" && w && typeof w === "object") return `${humanize(w.classification)} · ${humanize(w.determination)}`;
    if (e.field === "status") return statusLabel(w);
    if (e.field === "comment") return "";
    if (w === "" || w === null) return "(none)";
    return typeof w === "object" ? "" : String(w);
  }

  function showTracked() {
    if (!editable) return;
    const box = clear($("#pane-state"));
    for (const [id, state] of [...tracked.entries()].slice(-4)) {
      const e = (current?.edits || []).find((x) => x.id === id);
      box.append(h("span", { class: "tracked", "data-edit": id, "data-state": state },
        e ? `${humanize(e.field)} ${wanted(e)} ` : `edit ${id} `, syncBadge(state)));
    }
  }

  function follow(edits) {
    let changed = false;
    for (const e of edits) {
      if (!tracked.has(e.id) || tracked.get(e.id) === e.state) continue;
      tracked.set(e.id, e.state);
      changed = true;
      if (e.state === "failed") toast(`Defender refused ${humanize(e.field)}: ${e.outcome || "failed"}`, "error", 9000);
      else if (e.state === "conflict") toast(`${humanize(e.field)} conflicts with a change in Defender — see Conflicts`, "error", 9000);
    }
    showTracked();
    if (changed && currentId) onChanged(currentId);
    schedulePoll();
  }

  const anyPending = () => [...tracked.values()].some((state) => state === "pending");

  function schedulePoll() {
    clearTimeout(pollTimer);
    if (!anyPending() || !currentId || Date.now() > pollUntil) return;
    pollTimer = setTimeout(() => load({ background: true }), POLL_MS);
  }

  async function edit(body, label) {
    const id = currentId;
    if (!id) return false;
    // Nothing is sent before the pane knows the incident (it may be merged away), nor for one
    // merged away (a click or `a` on a row that still showed it otherwise).
    if (!current || current.id !== id) { toast(`${label}: the incident has not loaded yet`, "error", 6000); return false; }
    if (current.mergedInto) { toast(`${current.incidentId} was merged into ${current.mergedInto}: edit that one`, "error", 6000); return false; }
    try {
      const answer = await api(path(id), { method: "PATCH", body: { ...body, seen: seenOf(current) } });
      if (id !== currentId) return true;
      for (const e of answer.edits || []) tracked.set(e.id, e.state);
      toast((answer.edits || []).length ? `Queued: ${label}` : `Nothing to change: ${label}`);
      pollUntil = Date.now() + POLL_LIMIT_MS;
      onChanged(id);
      await load();
      return true;
    } catch (error) {
      toast(`${label}: ${error.message}`, "error", 9000);
      return false;
    }
  }

  async function comment(text) {
    const id = currentId;
    try {
      const answer = await api(`${path(id)}/comments`, { method: "POST", body: { comment: text } });
      if (id !== currentId) return true;
      for (const e of answer.edits || []) tracked.set(e.id, e.state);
      pollUntil = Date.now() + POLL_LIMIT_MS;
      await load();
      return true;
    } catch (error) {
      toast(`Comment: ${error.message}`, "error", 9000);
      return false;
    }
  }

  function hideCloseForm() {
    const form = $("#pane-close-form");
    if (!form) return;
    form.hidden = true;
    $("#pane-close-open").setAttribute("aria-expanded", "false");
    $("#pane-error").hidden = true;
  }

  function wire() {
    $("#pane-close").addEventListener("click", close);
    if (!editable) return;
    $("#pane-assign-me").addEventListener("click", () => edit({ assignedTo: me.address }, "assign to me"));
    wireAssignAndStatus("pane", edit);
    $("#pane-reopen").addEventListener("click", () => edit({ status: "active" }, "reopen"));
    const cls = $("#pane-classification");
    const det = $("#pane-determination");
    cls.addEventListener("change", () => fillDeterminations(cls.value, det));
    fillDeterminations(cls.value, det);
    $("#pane-close-open").addEventListener("click", () => {
      const form = $("#pane-close-form");
      if (!form.hidden) { hideCloseForm(); return; }
      form.hidden = false;
      $("#pane-close-open").setAttribute("aria-expanded", "true");
      cls.focus();
    });
    $("#pane-close-cancel").addEventListener("click", hideCloseForm);
    $("#pane-close-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = $("#pane-error");
      if (!cls.value) {
        error.textContent = "Closing an incident needs a classification.";
        error.hidden = false;
        return;
      }
      error.hidden = true;
      const note = $("#pane-comment").value.trim();
      const submit = $("#pane-close-submit");
      submit.disabled = true;
      const ok = await edit({ status: "resolved", classification: cls.value, determination: det.value || undefined }, "close");
      if (ok && note) await comment(note);
      submit.disabled = false;
      if (ok) {
        hideCloseForm();
        $("#pane-comment").value = "";
        cls.value = "";
        fillDeterminations("", det);
      }
    });
  }

  wire();
  return {
    open,
    close,
    get id() { return currentId; },
    get isOpen() { return !root.hidden; },
    contains: (node) => root.contains(node),
    refresh: (options) => (currentId ? load(options) : undefined),
    /** Assign the incident shown to me, as the button does; false when the pane cannot
     * (not loaded yet, already mine, no address). */
    assignToMe: () => {
      const button = $("#pane-assign-me");
      if (!editable || !current || current.id !== currentId || !button || button.disabled) return false;
      button.click();
      return true;
    },
  };
}
