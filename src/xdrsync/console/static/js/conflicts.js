// Conflicts: edits made here and in Defender at once, waiting for a person to choose.
import { $, api, can, clear, h, humanize, timeEl, toast, every } from "./common.js";

const tbody = $("#conflicts tbody");
const status = $("#conflicts-status");

function value(v) {
  if (v === null || v === undefined || v === "") return h("span", { class: "muted" }, "(empty)");
  return h("span", { class: "mono" }, typeof v === "object" ? JSON.stringify(v) : String(v));
}

function theirs(row) {
  const t = row.theirs;
  if (t && typeof t === "object" && !Array.isArray(t) && row.field in t) return t[row.field];
  return t;
}

async function resolve(row, take, buttons) {
  for (const b of buttons) b.disabled = true;
  try {
    await api(`/api/v1/conflicts/${encodeURIComponent(row.id)}/resolve`, { method: "POST", body: { take } });
    toast(take === "workspace" ? "Kept the workspace's edit: it goes to Defender again" : "Kept Defender's value", "ok");
    load();
  } catch (error) {
    toast(`Could not resolve: ${error.message}`, "error");
    for (const b of buttons) b.disabled = false;
  }
}

function rowFor(row) {
  const [tenant] = String(row.target).split("~");
  const cells = [
    h("td", {}, row.entityType === "alert" ? h("span", { class: "mono" }, row.target)
      : h("a", { href: `/incidents/${encodeURIComponent(row.target)}`, class: "mono" }, row.target)),
    h("td", {}, tenant),
    h("td", {}, humanize(row.field)),
    h("td", {}, value(row.wanted)),
    h("td", {}, value(theirs(row))),
    h("td", {}, row.author, h("div", { class: "sub muted" }, row.origin)),
    h("td", { class: "col-time" }, timeEl(row.createdAt)),
    h("td", { class: "muted small" }, row.outcome || ""),
  ];
  if (can("responder")) {
    const mine = h("button", { type: "button", class: "btn btn-small", title: "Send the workspace's value to Defender again" }, "Keep workspace");
    const defender = h("button", { type: "button", class: "btn btn-small", title: "Keep what Defender has" }, "Keep Defender");
    mine.addEventListener("click", () => resolve(row, "workspace", [mine, defender]));
    defender.addEventListener("click", () => resolve(row, "defender", [mine, defender]));
    cells.push(h("td", { class: "nowrap" }, mine, " ", defender));
  }
  return h("tr", { "data-id": row.id }, cells);
}

async function load({ background = false } = {}) {
  try {
    const data = await api("/api/v1/conflicts", { background });
    clear(tbody);
    for (const row of data.value) tbody.append(rowFor(row));
    status.textContent = data.value.length ? `${data.value.length} conflict${data.value.length === 1 ? "" : "s"} waiting` : "No conflicts: every edit is in step with Defender.";
  } catch (error) {
    status.textContent = `Could not load conflicts: ${error.message}`;
  }
}

load();
every(10000, load);
