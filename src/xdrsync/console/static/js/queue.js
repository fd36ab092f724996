// The incident queue: counts, incidents over time, filters kept in the URL, sortable dense
// grid, next pages through nextLink, live updates from /api/v1/changes; a side pane for the
// selected incident (pane.js) and bulk actions on the checked ones (bulk.js).
import {
  $, $$, api, can, clear, every, h, humanize, me, productLabel, severityBadge, statusBadge,
  statusLabel, syncBadge, tagChip, timeEl, toast, typing, SEVERITIES,
} from "./common.js";
import { timeColumns } from "./chart.js";
import { createPane } from "./pane.js";
import { createBulk } from "./bulk.js";

const MULTI = ["status", "severity", "tenant", "product", "tactic"];
const SINGLE = ["owner", "tag", "range", "search", "entity"];
const RANGES = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3, "90d": 90 * 86400e3 };
const DEFAULT_SORT = "-lastUpdate";
const POLL_MS = 2500;

const form = $("#filters");
const body = $("#queue-rows");
const statusLine = $("#queue-status");
const moreButton = $("#load-more");
const newButton = $("#new-indicator");
const selectAll = $("#select-all");
// Responders check rows for bulk actions; readers get no checkbox column at all.
const EDITABLE = can("responder") && !!selectAll;
const COLUMNS = 13 + (EDITABLE ? 1 : 0);

let view = readUrl();
let rows = new Map(); // id → {item, tr}
let nextLink = null;
let selected = -1;
let seq = null;
let newIds = new Set();
let loading = 0;
const checked = new Set(); // ids checked for bulk actions

// -- the URL is the view ----------------------------------------------------------------------

function readUrl() {
  const q = new URLSearchParams(location.search);
  const v = { sort: q.get("sort") || DEFAULT_SORT };
  for (const k of MULTI) v[k] = q.getAll(k).filter(Boolean);
  for (const k of SINGLE) v[k] = q.get(k) || "";
  return v;
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
  const tr = h("tr", { "data-id": item.id, class: [`sev-row-${item.severity || "unknown"}`, item.status === "resolved" ? "resolved" : "", isChecked ? "checked" : ""] },
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
  }
  for (const item of items) {
    if (rows.has(item.id)) continue;
    const tr = rowFor(item);
    rows.set(item.id, { item, tr });
    body.append(tr);
  }
  if (!rows.size) {
    body.append(h("tr", { class: "empty-row" }, h("td", { colspan: COLUMNS, class: "muted" }, "No incidents match these filters.")));
  }
  if (!append) for (const id of [...checked]) if (!rows.has(id)) checked.delete(id);
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
    newIds = new Set();
    showNew();
    render(data.value, false);
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

function toggleChecked() {
  const id = selectedId();
  if (!EDITABLE || !id) return;
  checked.has(id) ? checked.delete(id) : checked.add(id);
  selectionChanged();
}

/** Redraw the rows of these incidents in place, from the queue as it now is. */
async function refreshRows(ids) {
  const wanted = new Set(ids.filter((id) => rows.has(id)));
  if (!wanted.size) return;
  const q = apiParams();
  q.set("top", String(Math.min(Math.max(rows.size, 50), 500)));
  let data;
  try {
    data = await api(`/api/v1/incidents?${q}`);
  } catch {
    return; // the live poll tries again
  }
  const byId = new Map(data.value.map((item) => [item.id, item]));
  for (const id of wanted) {
    const known = rows.get(id);
    const item = byId.get(id);
    if (known && item) replaceRow(known, item);
  }
  try {
    await refreshLeft(wanted, byId);
  } catch {
    // the live poll tries again
  }
  loadStats();
}

function replaceRow(known, item, { left = false } = {}) {
  const tr = rowFor(item);
  tr.classList.add("flash");
  if (known.tr.classList.contains("selected")) tr.classList.add("selected");
  if (left) {
    tr.classList.add("left-view");
    tr.title = "No longer matches the filters (it stays until the list is loaded again)";
  }
  known.tr.replaceWith(tr);
  rows.set(item.id, { item, tr });
}

/** Redraw the shown rows among `ids` that the filtered list no longer holds (an edit or a
 * change in Defender moved them out of the view) from their own data, marked as such: a row
 * is never left showing what it was before the change. */
async function refreshLeft(ids, listed) {
  const unlisted = [...ids].filter((id) => rows.has(id) && !listed.has(id));
  for (let i = 0; i < unlisted.length; i += 50) {
    const part = unlisted.slice(i, i + 50);
    // Beyond the first page, or pushed past it by newer incidents, a row may still match:
    // asked by id with the filters, it comes back; only one that does not has left.
    for (const filtered of [true, false]) {
      const q = filtered ? apiParams(false) : new URLSearchParams();
      q.set("top", "50");
      for (const id of part) q.append("id", id);
      const data = await api(`/api/v1/incidents?${q}`);
      for (const item of data.value) {
        const known = rows.get(item.id);
        if (known && part.includes(item.id)) replaceRow(known, item, { left: !filtered });
      }
      const found = new Set(data.value.map((item) => item.id));
      part.splice(0, part.length, ...part.filter((id) => !found.has(id)));
      if (!part.length) break;
    }
  }
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

async function loadStats() {
  let stats;
  let open;
  try {
    const all = apiParams(false);
    if (view.status.length) {
      stats = await api(`/api/v1/incidents/stats?${all}`);
      open = stats;
    } else {
      const openOnly = apiParams(false);
      for (const st of OPEN) openOnly.append("status", st);
      [stats, open] = await Promise.all([api(`/api/v1/incidents/stats?${all}`), api(`/api/v1/incidents/stats?${openOnly}`)]);
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

function showNew() {
  newButton.hidden = newIds.size === 0;
  newButton.textContent = `${newIds.size} new or moved — show`;
}
newButton.addEventListener("click", () => { load(); window.scrollTo({ top: 0 }); });

async function poll() {
  const live = $("#live");
  try {
    if (seq === null) {
      seq = (await api("/api/v1/changes?after=0")).seq;
      live.classList.remove("off");
      return;
    }
    const changed = await api(`/api/v1/changes?after=${seq}`);
    seq = changed.seq;
    live.classList.remove("off");
    if (!changed.incidents?.length) return;
    const ids = new Set(changed.incidents);
    const top = Math.min(Math.max(rows.size, 50), 500);
    const q = apiParams();
    q.set("top", String(top));
    const data = await api(`/api/v1/incidents?${q}`);
    for (const item of data.value) {
      if (!ids.has(item.id)) continue;
      const known = rows.get(item.id);
      if (known) replaceRow(known, item);
      else newIds.add(item.id);
    }
    await refreshLeft(ids, new Set(data.value.map((item) => item.id)));
    if (pane.isOpen && ids.has(pane.id)) pane.refresh();
    showNew();
    loadStats();
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
