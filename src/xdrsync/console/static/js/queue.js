// The incident queue: counts, incidents over time, filters kept in the URL, sortable dense
// grid, next pages through nextLink, live updates from /api/v1/changes; a side pane for the
// selected incident (pane.js) and bulk actions on the checked ones (bulk.js).
//
// Live updates: every POLL_MS the page asks which incidents changed since the change it holds
// (GET /api/v1/changes?after=seq), then asks for those incidents only, by id, with the view's
// filters (GET /api/v1/incidents?id=...): a loaded row is redrawn in place, wherever it is in
// the list; a loaded one that no longer matches is redrawn from its own data, dimmed; one not
// loaded that matches and that the sort puts among the loaded rows is counted as new. Rows are
// never moved under the analyst's pointer or keyboard selection: a row the sort now puts
// elsewhere is marked (↑/↓), and the indicator offers one click to re-sort the loaded rows
// (the new ones put in their places), which asks the server nothing.
import {
  $, $$, api, can, clear, every, h, humanize, me, productLabel, seenOf, severityBadge,
  severityName, severityRank, statusBadge, statusLabel, syncBadge, tagChip, timeEl, toast,
  typing, SEVERITIES,
} from "./common.js";
import { timeColumns } from "./chart.js";
import { assignMeProblem, createPane } from "./pane.js";
import { createBulk } from "./bulk.js";

const MULTI = ["status", "severity", "tenant", "product", "tactic"];
const SINGLE = ["owner", "tag", "range", "search", "entity"];
const RANGES = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3, "90d": 90 * 86400e3 };
const DEFAULT_SORT = "-lastUpdate";
const POLL_MS = 2500;
const BY_ID = 50; // ids per request (the API's limit of a list parameter)
const MAX_UNLOADED = 200; // changed incidents not loaded that a tick checks, at most
// The API's sorts (console/queue.py SORTS): the items' fields, most significant first; the
// tenant and the incident id break ties.
const SORT_FIELDS = {
  lastUpdate: ["lastUpdateDateTime"],
  created: ["createdDateTime"],
  severity: ["severity", "lastUpdateDateTime"],
  firstActivity: ["firstActivityDateTime"],
  lastActivity: ["lastActivityDateTime"],
  alertCount: ["alertCount", "lastUpdateDateTime"],
};

const form = $("#filters");
const body = $("#queue-rows");
const statusLine = $("#queue-status");
const moreButton = $("#load-more");
const newButton = $("#new-indicator");
const selectAll = $("#select-all");
// Responders check rows for bulk actions; readers get no checkbox column at all.
const EDITABLE = can("responder") && !!selectAll;
const COLUMNS = 14 + (EDITABLE ? 1 : 0);

let view = readUrl();
const notice = $("#queue-notice");
dropUnseenTenants();
let rows = new Map(); // id → {item, tr}
let nextLink = null;
let selected = -1;
let seq = null;
let loading = 0;
// The last item the server listed (as it was then): the loaded rows end there in the sort,
// and the next page (nextLink) goes on after it.
let boundary = null;
const pendingNew = new Map(); // id → item: new in the view, among the loaded rows by the sort
const touched = new Set(); // ids redrawn by live updates since the rows were last sorted
let overflow = false; // more changed incidents than a tick checks: only a reload tells
const checked = new Set(); // ids checked for bulk actions

// -- the URL is the view ----------------------------------------------------------------------

function readUrl() {
  const q = new URLSearchParams(location.search);
  const v = { sort: q.get("sort") || DEFAULT_SORT };
  for (const k of MULTI) v[k] = q.getAll(k).filter(Boolean);
  for (const k of SINGLE) v[k] = q.get(k) || "";
  return v;
}

/** A view kept in a bookmark may name a tenant the user no longer sees (it left the config,
 * or their scope narrowed): the API refuses it (422) as one that does not exist. The page
 * knows the tenants it may ask for (the menu's), so it drops such a tenant from the view and
 * says so, and shows the queue without it rather than nothing. */
function dropUnseenTenants() {
  const seen = new Set($$('.multi[data-name="tenant"] input', form).map((input) => input.value));
  const gone = view.tenant.filter((name) => !seen.has(name));
  if (!gone.length) return;
  view.tenant = view.tenant.filter((name) => seen.has(name));
  writeUrl();
  const names = gone.map((name) => `“${name}”`).join(", ");
  notice.textContent = `${gone.length === 1 ? "Tenant" : "Tenants"} ${names} ${gone.length === 1 ? "is" : "are"} not among the tenants you see (no longer configured, or not yours): showing ${view.tenant.length ? "the others you asked for" : "every tenant you see"} instead.`;
  notice.hidden = false;
}

function writeUrl() {
  const q = new URLSearchParams();
  for (const k of MULTI) for (const value of view[k]) q.append(k, value);
  for (const k of SINGLE) if (view[k]) q.set(k, view[k]);
  if (view.sort !== DEFAULT_SORT) q.set("sort", view.sort);
  const text = q.toString();
  history.replaceState(null, "", text ? `?${text}` : location.pathname);
}

function apiParams(withSort = true) {
  const q = new URLSearchParams();
  for (const k of MULTI) for (const value of view[k]) q.append(k, value);
  if (view.owner) q.set("owner", view.owner);
  if (view.tag) q.append("tag", view.tag);
  if (view.search) q.set("search", view.search);
  if (view.entity) q.set("entity", view.entity);
  if (view.range && RANGES[view.range]) q.set("from", new Date(Date.now() - RANGES[view.range]).toISOString());
  if (withSort) q.set("sort", view.sort);
  return q;
}

function syncForm() {
  for (const box of $$(".multi", form)) {
    const name = box.dataset.name;
    for (const input of $$("input[type=checkbox]", box)) input.checked = view[name].includes(input.value);
    labelMulti(box);
  }
  $("#q").value = view.search;
  $("#f-owner").value = view.owner;
  $("#f-tag").value = view.tag;
  $("#f-range").value = view.range;
  for (const th of $$("th[data-sort]")) {
    const key = th.dataset.sort;
    const on = view.sort.replace(/^-/, "") === key;
    th.classList.toggle("sorted", on);
    th.classList.toggle("desc", on && view.sort.startsWith("-"));
    th.setAttribute("aria-sort", on ? (view.sort.startsWith("-") ? "descending" : "ascending") : "none");
  }
}

function labelMulti(box) {
  const chosen = $$("input:checked", box).map((i) => i.parentElement.textContent.trim());
  const button = $(".multi-btn", box);
  button.textContent = chosen.length ? `${box.dataset.label}: ${chosen.length > 2 ? `${chosen.length} chosen` : chosen.join(", ")}` : box.dataset.label;
  button.classList.toggle("active", chosen.length > 0);
}

// -- filters ----------------------------------------------------------------------------------

/** Open one filter menu (or none), saying so to assistive technology. */
function showMenu(menu) {
  for (const box of $$(".multi", form)) {
    const other = $(".multi-menu", box);
    other.hidden = other !== menu;
    $(".multi-btn", box).setAttribute("aria-expanded", String(other === menu));
  }
}

for (const box of $$(".multi", form)) {
  const button = $(".multi-btn", box);
  const menu = $(".multi-menu", box);
  button.setAttribute("aria-expanded", "false");
  button.addEventListener("click", () => showMenu(menu.hidden ? menu : null));
  box.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || menu.hidden) return;
    event.preventDefault();
    event.stopPropagation();
    showMenu(null);
    button.focus();
  });
  menu.addEventListener("change", () => {
    view[box.dataset.name] = $$("input:checked", menu).map((i) => i.value);
    labelMulti(box);
    apply();
  });
}
document.addEventListener("click", (event) => {
  if (!event.target.closest(".multi")) showMenu(null);
});

let searchTimer = 0;
$("#q").addEventListener("input", (event) => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => { view.search = event.target.value.trim(); apply(); }, 350);
});
$("#f-owner").addEventListener("change", (event) => { view.owner = event.target.value; apply(); });
$("#f-range").addEventListener("change", (event) => { view.range = event.target.value; apply(); });
$("#f-tag").addEventListener("change", (event) => { view.tag = event.target.value.trim(); apply(); });
$("#f-clear").addEventListener("click", () => {
  view = { sort: view.sort, status: [], severity: [], tenant: [], product: [], tactic: [], owner: "", tag: "", range: "", search: "", entity: "" };
  syncForm();
  apply();
});
form.addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(searchTimer);
  view.search = $("#q").value.trim();
  view.tag = $("#f-tag").value.trim();
  apply();
});

for (const th of $$("th[data-sort]")) {
  th.tabIndex = 0;
  const toggle = () => {
    const key = th.dataset.sort;
    const current = view.sort.replace(/^-/, "");
    view.sort = current === key ? (view.sort.startsWith("-") ? key : `-${key}`) : `-${key}`;
    apply();
  };
  th.addEventListener("click", toggle);
  th.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); toggle(); } });
}

function apply() {
  notice.hidden = true; // it was about the view the page opened with
  writeUrl();
  syncForm();
  load();
  loadStats();
}

// -- the grid ---------------------------------------------------------------------------------

function ownerCell(owner) {
  if (!owner) return h("span", { class: "muted" }, "unassigned");
  const mine = owner.toLowerCase() === (me.address || me.name).toLowerCase();
  return h("span", { class: ["owner", mine ? "mine" : ""], title: owner }, owner);
}

function rowFor(item) {
  const href = `/incidents/${encodeURIComponent(item.id)}`;
  const sources = item.productSources || [];
  const products = sources.slice(0, 3).map((p) => h("span", { class: "chip", title: p }, productLabel(p)));
  if (sources.length > 3) products.push(h("span", { class: "chip chip-muted", title: sources.slice(3).map(productLabel).join(", ") }, `+${sources.length - 3}`));
  const tags = (item.customTags || []).slice(0, 4).map((t) => tagChip(t));
  if ((item.customTags || []).length > 4) tags.push(h("span", { class: "muted" }, `+${item.customTags.length - 4}`));
  let check = null;
  if (EDITABLE) {
    const box = h("input", { type: "checkbox", class: "row-check", "aria-label": `Select ${item.incidentId} ${item.displayName || ""}`.trim(), tabindex: -1 });
    box.checked = checked.has(item.id);
    box.addEventListener("change", () => { box.checked ? checked.add(item.id) : checked.delete(item.id); selectionChanged(); });
    check = h("td", { class: "col-check" }, box);
  }
  const isChecked = EDITABLE && checked.has(item.id);
  const tr = h("tr", { "data-id": item.id, class: [`sev-row-${severityName(item.severity)}`, item.status === "resolved" ? "resolved" : "", isChecked ? "checked" : ""] },
    check,
    h("td", { class: "col-sev" }, severityBadge(item.severity)),
    h("td", { class: "col-id mono" }, h("a", { href, tabindex: -1, title: item.id }, item.incidentId)),
    h("td", { class: "col-title" },
      h("a", { href, class: "title-link" }, item.displayName || "(no title)"),
      (item.tactics || []).length || item.mergedInto ? h("div", { class: "sub muted" },
        item.mergedInto ? h("span", { class: "chip chip-muted", title: `Merged into ${item.mergedInto}` }, `merged into ${item.mergedInto}`) : null,
        (item.tactics || []).map(humanize).join(" · ")) : null),
    h("td", { class: "col-status" }, statusBadge(item.status),
      item.status === "resolved" && item.classification && item.classification !== "unknown"
        ? h("div", { class: "sub muted" }, humanize(item.classification)) : null),
    h("td", { class: "col-owner" }, ownerCell(item.assignedTo)),
    h("td", { class: "col-tenant" }, item.tenant),
    h("td", { class: "col-products" }, products),
    h("td", { class: "col-alerts num" }, String(item.alertCount ?? "")),
    h("td", { class: "col-tags" }, tags),
    h("td", { class: "col-time" }, timeEl(item.createdDateTime)),
    h("td", { class: "col-time" }, timeEl(item.firstActivityDateTime)),
    h("td", { class: "col-time" }, timeEl(item.lastActivityDateTime)),
    h("td", { class: "col-time" }, timeEl(item.lastUpdateDateTime, { style: "ago" })),
    h("td", { class: "col-sync" }, item.syncState && item.syncState !== "synced" ? syncBadge(item.syncState) : h("span", { class: "synced", title: "In step with Defender" }, "✓")),
  );
  tr.addEventListener("click", (event) => {
    if (event.target.closest("a")) return;
    if (event.target.closest(".col-check")) {
      // A click beside the box toggles it too.
      const box = $(".row-check", tr);
      if (event.target !== box) { box.checked = !box.checked; box.dispatchEvent(new Event("change")); }
      return;
    }
    select([...body.querySelectorAll("tr[data-id]")].indexOf(tr));
    pane.open(item.id);
  });
  tr.addEventListener("dblclick", () => location.assign(href));
  return tr;
}

function render(items, append) {
  if (!append) {
    clear(body);
    rows = new Map();
    selected = -1;
    pendingNew.clear();
    touched.clear();
    overflow = false;
    boundary = null;
  }
  if (items.length) boundary = items[items.length - 1];
  for (const item of items) {
    pendingNew.delete(item.id);
    if (rows.has(item.id)) continue;
    const tr = rowFor(item);
    rows.set(item.id, { item, tr });
    body.append(tr);
  }
  if (!append) for (const id of [...checked]) if (!rows.has(id)) checked.delete(id);
  showCount();
  markOrder();
}

function showCount() {
  $(".empty-row", body)?.remove();
  if (!rows.size) {
    body.append(h("tr", { class: "empty-row" }, h("td", { colspan: COLUMNS, class: "muted" }, "No incidents match these filters.")));
  }
  selectionChanged();
  moreButton.hidden = !nextLink;
  statusLine.textContent = `${rows.size}${nextLink ? "+" : ""} incident${rows.size === 1 ? "" : "s"}${describeView()}`;
}

function describeView() {
  const parts = [];
  if (view.status.length) parts.push(view.status.map(statusLabel).join("/"));
  if (view.severity.length) parts.push(view.severity.join("/"));
  if (view.owner) parts.push(view.owner === "me" ? "mine" : view.owner);
  if (view.tenant.length) parts.push(view.tenant.join("/"));
  if (view.product.length) parts.push(view.product.map(productLabel).join("/"));
  if (view.tactic.length) parts.push(view.tactic.map(humanize).join("/"));
  if (view.tag) parts.push(`#${view.tag}`);
  if (view.range) parts.push(`updated in ${view.range}`);
  if (view.search) parts.push(`“${view.search}”`);
  if (view.entity) parts.push(`with ${view.entity.replace(":", " ")}`);
  return parts.length ? ` · ${parts.join(" · ")}` : "";
}

async function load() {
  const ticket = ++loading;
  statusLine.textContent = "Loading…";
  $("#queue").setAttribute("aria-busy", "true");
  try {
    const data = await api(`/api/v1/incidents?${apiParams()}`);
    if (ticket !== loading) return;
    nextLink = data.nextLink;
    render(data.value, false);
    showPending();
    if (rows.size) select(0, false);
  } catch (error) {
    if (ticket !== loading) return;
    statusLine.textContent = `Could not load the queue: ${error.message}`;
  }
  $("#queue").setAttribute("aria-busy", "false");
}

moreButton.addEventListener("click", async () => {
  if (!nextLink) return;
  moreButton.disabled = true;
  try {
    const url = new URL(nextLink, location.origin);
    const data = await api(url.pathname + url.search);
    nextLink = data.nextLink;
    render(data.value, true);
    showPending();
  } catch (error) {
    toast(`Could not load more: ${error.message}`, "error");
  } finally {
    moreButton.disabled = false;
  }
});

function select(index, focus = true) {
  const list = [...body.querySelectorAll("tr[data-id]")];
  if (!list.length) return;
  selected = Math.max(0, Math.min(index, list.length - 1));
  list.forEach((tr, i) => tr.classList.toggle("selected", i === selected));
  if (focus) list[selected].scrollIntoView({ block: "nearest" });
}

function openSelected() {
  const tr = body.querySelectorAll("tr[data-id]")[selected];
  if (tr) location.assign(`/incidents/${encodeURIComponent(tr.dataset.id)}`);
}

const selectedId = () => body.querySelectorAll("tr[data-id]")[selected]?.dataset.id;

// While the pane is open it follows the selection (j/k), once the keys settle.
let followTimer = 0;
function paneFollows() {
  if (!pane.isOpen) return;
  clearTimeout(followTimer);
  followTimer = setTimeout(() => { const id = selectedId(); if (id && id !== pane.id) pane.open(id); }, 180);
}

// -- the side pane and bulk selection ---------------------------------------------------------

const pane = createPane({ onChanged: (id) => refreshRows([id]) });

function selectionChanged() {
  if (!EDITABLE) return;
  for (const { item, tr } of rows.values()) {
    const on = checked.has(item.id);
    tr.classList.toggle("checked", on);
    const box = $(".row-check", tr);
    if (box && box.checked !== on) box.checked = on;
  }
  const n = [...rows.keys()].filter((id) => checked.has(id)).length;
  selectAll.checked = n > 0 && n === rows.size;
  selectAll.indeterminate = n > 0 && n < rows.size;
  bulk.update();
}

const bulk = createBulk({
  selection: () => [...rows.keys()].filter((id) => checked.has(id)),
  clearSelection: () => { checked.clear(); selectionChanged(); },
  onDone: (ids) => refreshRows(ids),
  shown: (id) => rows.get(id)?.item,
});

selectAll?.addEventListener("change", () => {
  if (selectAll.checked) for (const id of rows.keys()) checked.add(id);
  else checked.clear();
  selectionChanged();
});

/** The `a` key: assign the selected incident to me, as the pane's button does (through the
 * pane when it shows that incident, so it follows the edit to confirmed), with what the row
 * showed as `seen`. Nothing is sent for an incident already mine, or merged away (Defender
 * refuses its edits), or when my user has no address. */
async function assignSelectedToMe() {
  const id = selectedId();
  const item = id && rows.get(id)?.item;
  if (!item) return;
  const problem = assignMeProblem();
  if (problem) { toast(problem, "error", 6000); return; }
  if (item.mergedInto) { toast(`${item.incidentId} was merged into ${item.mergedInto}: assign that one`, "error", 6000); return; }
  if ((item.assignedTo || "").toLowerCase() === me.address.toLowerCase()) { toast(`${item.incidentId} is already yours`); return; }
  if (pane.isOpen && pane.id === id && pane.assignToMe()) return;
  try {
    const answer = await api(`/api/v1/incidents/${encodeURIComponent(id)}`, {
      method: "PATCH", body: { assignedTo: me.address, seen: seenOf(item) },
    });
    toast((answer.edits || []).length ? `Queued: assign ${item.incidentId} to me` : `Nothing to change: ${item.incidentId}`);
    refreshRows([id]);
  } catch (error) {
    toast(`Assign ${item.incidentId} to me: ${error.message}`, "error", 9000);
  }
}

function toggleChecked() {
  const id = selectedId();
  if (!EDITABLE || !id) return;
  checked.has(id) ? checked.delete(id) : checked.add(id);
  selectionChanged();
}

/** Redraw the rows of these incidents in place, from the queue as it now is (an edit from
 * the pane or the bulk bar, or a live update). */
async function refreshRows(ids) {
  try {
    await refreshIds(ids);
  } catch {
    return; // the live poll tries again
  }
  loadStats();
}

/** Ask for these incidents only, by id, with the view's filters: a loaded row is redrawn in
 * place wherever it is (the first page or the tenth), a loaded one the filters no longer hold
 * is redrawn from its own data and dimmed (it stays until the list is loaded or re-sorted),
 * and one not loaded that matches and that the sort puts among the loaded rows counts as new.
 * The queue itself is never listed again: the requests grow with the changes, not the rows. */
async function refreshIds(ids, { background = false } = {}) {
  const ticket = loading;
  const loaded = [...new Set(ids)].filter((id) => rows.has(id));
  let unloaded = [...new Set(ids)].filter((id) => !rows.has(id));
  if (unloaded.length > MAX_UNLOADED) {
    overflow = true;
    unloaded = [];
  }
  const matched = await byId([...loaded, ...unloaded], true, background);
  if (ticket !== loading) return; // the list was loaded again meanwhile
  for (const id of loaded) {
    const known = rows.get(id);
    const item = matched.get(id);
    if (known && item) replaceRow(known, item);
  }
  for (const id of unloaded) {
    const item = matched.get(id);
    if (item && !rows.has(id) && withinLoaded(item)) pendingNew.set(id, item);
    else pendingNew.delete(id);
  }
  const left = loaded.filter((id) => !matched.has(id));
  const own = await byId(left, false, background);
  if (ticket !== loading) return;
  for (const id of left) {
    const known = rows.get(id);
    const item = own.get(id);
    if (known && item) replaceRow(known, item, { left: true });
  }
  markOrder();
  showPending();
}

/** These incidents (id → item), asked for by id: with the view's filters, or without. */
async function byId(ids, filtered, background = false) {
  const found = new Map();
  for (let i = 0; i < ids.length; i += BY_ID) {
    const q = filtered ? apiParams() : new URLSearchParams();
    q.set("top", String(BY_ID));
    for (const id of ids.slice(i, i + BY_ID)) q.append("id", id);
    const data = await api(`/api/v1/incidents?${q}`, { background });
    for (const item of data.value) found.set(item.id, item);
  }
  return found;
}

function replaceRow(known, item, { left = false } = {}) {
  const tr = rowFor(item);
  tr.classList.add("flash");
  if (known.tr.classList.contains("selected")) tr.classList.add("selected");
  if (left) {
    tr.classList.add("left-view");
    tr.title = "No longer matches the filters (it stays until the list is loaded or re-sorted)";
  }
  known.tr.replaceWith(tr);
  rows.set(item.id, { item, tr });
  touched.add(item.id);
}

// -- the order of the loaded rows ---------------------------------------------------------------

/** A time as text that sorts as the time does ("…T10:00:00.500000" after "…T10:00:00"). */
function timeKey(text) {
  if (!text) return null;
  const bare = String(text).replace(/Z$/, "");
  return bare.includes(".") ? bare.padEnd(26, "0") : `${bare}.000000`;
}

function sortValue(item, field) {
  if (field === "severity") return severityRank(item.severity);
  if (field === "alertCount") return item.alertCount ?? 0;
  return timeKey(item[field]);
}

/** -1, 0 or 1; a missing value is the smallest of all, as the server has it. */
function compare(x, y) {
  if (x === y) return 0;
  if (x === null || x === undefined) return -1;
  if (y === null || y === undefined) return 1;
  return x < y ? -1 : 1;
}

/** Below zero when `a` comes before `b` in the view's sort: the server's order, ties going
 * by tenant id, then incident id. */
function order(a, b) {
  const descending = view.sort.startsWith("-");
  const fields = SORT_FIELDS[view.sort.replace(/^-/, "")] || SORT_FIELDS.lastUpdate;
  let c = 0;
  for (const field of fields) {
    c = compare(sortValue(a, field), sortValue(b, field));
    if (c) break;
  }
  if (!c) c = compare(a.tenantId, b.tenantId) || compare(a.incidentId, b.incidentId);
  return descending ? -c : c;
}

/** Whether the sort puts this item among the loaded rows (the next page starts after them). */
const withinLoaded = (item) => !nextLink || !boundary || order(item, boundary) <= 0;

const inView = (tr) => !tr.classList.contains("left-view");

/** Mark the rows that live updates left where the sort no longer puts them: ↑ or ↓ beside
 * the severity, and the indicator offers a re-sort. */
function markOrder() {
  const shown = [...body.querySelectorAll("tr[data-id]")].filter(inView);
  shown.forEach((tr, i) => {
    const item = rows.get(tr.dataset.id)?.item;
    let direction = "";
    if (item && touched.has(item.id)) {
      const before = shown[i - 1] && rows.get(shown[i - 1].dataset.id)?.item;
      const after = shown[i + 1] && rows.get(shown[i + 1].dataset.id)?.item;
      if (before && order(before, item) > 0) direction = "up";
      else if ((after && order(item, after) > 0) || !withinLoaded(item)) direction = "down";
    }
    const mark = $(".moved-mark", tr);
    tr.classList.toggle("moved", !!direction);
    if (!direction) { mark?.remove(); return; }
    const text = direction === "up" ? "↑" : "↓";
    const title = direction === "up"
      ? "Changed: the sort now puts it higher — re-sort to move it"
      : "Changed: the sort now puts it lower — re-sort to move it";
    if (mark && mark.textContent === text) return;
    mark?.remove();
    $(".col-sev", tr).prepend(h("span", { class: "moved-mark", title, "aria-label": title }, text));
  });
}

/** Put the loaded rows where the sort puts them now, with the new ones in their places; rows
 * that left the filters go, and so do rows the sort now puts after the loaded ones (the next
 * page brings them where they belong). The selection stays on its incident. Asks the server
 * nothing. */
function resort() {
  if (overflow) {
    load();
    window.scrollTo({ top: 0 });
    return;
  }
  const keep = selectedId();
  const was = selected;
  for (const [id, item] of pendingNew) {
    if (rows.has(id)) continue;
    const tr = rowFor(item);
    tr.classList.add("flash");
    rows.set(id, { item, tr });
  }
  pendingNew.clear();
  const kept = [];
  for (const [id, entry] of [...rows]) {
    if (inView(entry.tr) && withinLoaded(entry.item)) kept.push(entry);
    else {
      entry.tr.remove();
      rows.delete(id);
      checked.delete(id);
    }
  }
  kept.sort((a, b) => order(a.item, b.item));
  rows = new Map(kept.map((entry) => [entry.item.id, entry]));
  for (const { tr } of kept) body.append(tr); // appending a row that is there moves it
  touched.clear();
  markOrder();
  const list = [...body.querySelectorAll("tr[data-id]")];
  const at = list.findIndex((tr) => tr.dataset.id === keep);
  list.forEach((tr) => tr.classList.remove("selected"));
  selected = -1;
  if (list.length) select(at >= 0 ? at : Math.max(was, 0), false);
  showCount();
  showPending();
}

/** Whether a key event lands on something that handles Enter/Space itself. */
const onControl = (event) => event.target instanceof Element && !!event.target.closest("button, a, summary, [role=button], th[data-sort]");

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (typing(event)) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  if (event.key === "Escape") {
    if (pane.isOpen) {
      event.preventDefault();
      if (pane.contains(document.activeElement)) document.activeElement.blur();
      pane.close();
    }
    return;
  }
  if (event.key === "/") { event.preventDefault(); $("#q").focus(); $("#q").select(); }
  else if (event.key === "j" || event.key === "ArrowDown") { event.preventDefault(); select(selected + 1); paneFollows(); }
  else if (event.key === "k" || event.key === "ArrowUp") { event.preventDefault(); select(selected - 1); paneFollows(); }
  else if (event.key === "Enter" || event.key === "o") { if (selected >= 0 && !onControl(event)) { event.preventDefault(); openSelected(); } }
  else if (event.key === " " || event.key === "p") {
    if (selected < 0 || (event.key === " " && onControl(event))) return;
    event.preventDefault();
    const id = selectedId();
    if (pane.isOpen && pane.id === id) pane.close();
    else if (id) pane.open(id);
  }
  else if (event.key === "x") { if (selected >= 0 && EDITABLE) { event.preventDefault(); toggleChecked(); } }
  else if (event.key === "a") { if (selected >= 0 && EDITABLE) { event.preventDefault(); assignSelectedToMe(); } }
  else if (event.key === "r") { event.preventDefault(); apply(); }
});

// -- counts and the chart ---------------------------------------------------------------------

function countChip(label, value, cls, onClick, active) {
  const chip = h("button", { type: "button", class: ["count", cls, active ? "active" : ""], title: `Show ${label.toLowerCase()}` },
    h("span", { class: "count-n" }, String(value ?? 0)), h("span", { class: "count-l" }, label));
  chip.addEventListener("click", onClick);
  return chip;
}

function toggleFilter(name, value) {
  view[name] = view[name].length === 1 && view[name][0] === value ? [] : [value];
  apply();
}

// Defender's open statuses (it has no "new": Sentinel's New is Defender's active).
const OPEN = ["active", "inProgress", "awaitingAction"];
const ALWAYS_SHOWN = ["active", "inProgress"];
const isOpenOnly = (statuses) => statuses.length === OPEN.length && OPEN.every((st) => statuses.includes(st));

/** A click on an "open by severity" chip shows what it counted: that severity among the open
 * incidents; a second click goes back (and drops the open statuses the first one added). */
function toggleOpenSeverity(sev, openOnly) {
  const on = view.severity.length === 1 && view.severity[0] === sev;
  if (on) {
    view.severity = [];
    if (openOnly && isOpenOnly(view.status)) view.status = [];
  } else {
    view.severity = [sev];
    if (openOnly) view.status = [...OPEN];
  }
  apply();
}

async function loadStats({ background = false } = {}) {
  let stats;
  let open;
  try {
    const all = apiParams(false);
    if (view.status.length) {
      stats = await api(`/api/v1/incidents/stats?${all}`, { background });
      open = stats;
    } else {
      const openOnly = apiParams(false);
      for (const st of OPEN) openOnly.append("status", st);
      [stats, open] = await Promise.all([api(`/api/v1/incidents/stats?${all}`, { background }), api(`/api/v1/incidents/stats?${openOnly}`, { background })]);
    }
  } catch (error) {
    $("#overtime-note").textContent = `(unavailable: ${error.message})`;
    return;
  }
  const byStatus = stats.byStatus || {};
  const bySeverity = open.bySeverity || {};
  const statusBox = $("#count-status");
  clear(statusBox).append(h("span", { class: "count-label" }, "By status"));
  for (const st of [...OPEN, "resolved"]) {
    if (byStatus[st] == null && !ALWAYS_SHOWN.includes(st)) continue;
    statusBox.append(countChip(statusLabel(st), byStatus[st], `st-${st}`, () => toggleFilter("status", st), view.status.length === 1 && view.status[0] === st));
  }
  const sevBox = $("#count-severity");
  const openTotal = open.total ?? 0;
  // Without a status filter the chips count open incidents only (or, once a chip applied
  // them, exactly the open statuses): a click filters on the same.
  const openOnly = !view.status.length || isOpenOnly(view.status);
  clear(sevBox).append(h("span", { class: "count-label" }, openOnly ? "Open by severity" : "By severity"));
  for (const sev of SEVERITIES) {
    if (!bySeverity[sev] && (sev === "unknown" || sev === "informational")) continue;
    sevBox.append(countChip(humanize(sev), bySeverity[sev], `sev-${sev}`, () => toggleOpenSeverity(sev, openOnly), view.severity.length === 1 && view.severity[0] === sev));
  }
  const over = stats.overTime || {};
  const points = (over.points || []).map((b) => ({ at: b.start, count: b.count ?? 0 }));
  const total = stats.total;
  $("#overtime-note").textContent = [
    total != null ? `${total} in view` : "",
    !view.status.length ? `${openTotal} open` : "",
    over.bucket ? `per ${over.bucket === "day" ? "UTC day" : over.bucket}, by last update` : "",
  ].filter(Boolean).join(" · ");
  timeColumns($("#overtime"), points, { height: 104, bucket: over.bucket });
}

// -- live updates -----------------------------------------------------------------------------

/** The indicator: how many new incidents the loaded rows miss and how many rows the sort
 * puts elsewhere now; one click re-sorts (or, after more changes than a tick checks, loads). */
function showPending() {
  const moved = body.querySelectorAll("tr.moved").length;
  const parts = [];
  if (overflow) parts.push("Many incidents changed");
  else {
    if (pendingNew.size) parts.push(`${pendingNew.size} new`);
    if (moved) parts.push(`${moved} out of order`);
  }
  newButton.hidden = !parts.length;
  newButton.textContent = `${parts.join(" · ")} — ${overflow ? "reload" : "re-sort"}`;
  newButton.title = overflow
    ? "Load the list again"
    : "Put the loaded rows where the sort puts them now, with the new incidents in their places";
}
newButton.addEventListener("click", resort);

// The live poll and what it refreshes are the page's own requests, not the analyst's: they
// do not keep the session from idling out (X-Xdrsync-Background, docs/security.md).
const BG = { background: true };

async function poll() {
  const live = $("#live");
  try {
    if (seq === null) {
      seq = (await api("/api/v1/changes?after=0", BG)).seq;
      live.classList.remove("off");
      return;
    }
    const changed = await api(`/api/v1/changes?after=${seq}`, BG);
    live.classList.remove("off");
    const ids = changed.incidents || [];
    if (ids.length) {
      await refreshIds(ids, BG);
      if (pane.isOpen && ids.includes(pane.id)) pane.refresh(BG);
      loadStats(BG);
    }
    seq = changed.seq; // only once the rows show the changes (a failed tick asks again)
  } catch (error) {
    live.classList.add("off");
    live.title = `Live updates paused: ${error.message}`;
  }
}

let resizeTimer = 0;
window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(loadStats, 250); });

syncForm();
load();
loadStats();
poll();
every(POLL_MS, poll);
