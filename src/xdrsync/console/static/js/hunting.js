// Hunting: a KQL editor (Ctrl+Enter runs), example queries, typed results, CSV/JSON
// downloads built in the browser, a chart when the query renders one, errors at line:column.
import { $, api, clear, h, toast, typing } from "./common.js";
import { renderResultChart } from "./chart.js";

const editor = $("#kql");
const gutter = $("#gutter");
const runButton = $("#run");
const state = $("#run-state");
const errorBox = $("#query-error");
const table = $("#results");
const chartCard = $("#chart");
const STORE = "xdrsync.hunting.query";
let last = null;
let errorLine = null;

function drawGutter() {
  const lines = editor.value.split("\n").length;
  clear(gutter);
  for (let i = 1; i <= lines; i++) {
    gutter.append(h("span", { class: i === errorLine ? "err-line" : "" }, String(i)), "\n");
  }
  gutter.scrollTop = editor.scrollTop;
}
editor.addEventListener("input", () => { errorLine = null; drawGutter(); try { localStorage.setItem(STORE, editor.value); } catch { /* private mode */ } });
editor.addEventListener("scroll", () => { gutter.scrollTop = editor.scrollTop; });
editor.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
    event.preventDefault();
    run();
  } else if (event.key === "Tab" && !event.shiftKey) {
    event.preventDefault();
    const { selectionStart: a, selectionEnd: b, value } = editor;
    editor.value = `${value.slice(0, a)}    ${value.slice(b)}`;
    editor.selectionStart = editor.selectionEnd = a + 4;
    drawGutter();
  }
});
document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || typing(event) || event.ctrlKey || event.metaKey) return;
  if (event.key === "/") { event.preventDefault(); editor.focus(); }
});
runButton.addEventListener("click", run);

const params = new URLSearchParams(location.search);
editor.value = params.get("q") || (() => { try { return localStorage.getItem(STORE) || ""; } catch { return ""; } })()
  || "SecurityIncident\n| summarize Incidents = count() by bin(CreatedTime, 1d)\n| render columnchart";
drawGutter();

async function loadExamples() {
  const select = $("#examples");
  try {
    const data = await api("/api/v1/query/examples");
    const examples = data.value || [];
    if (!examples.length) return;
    for (const [i, example] of examples.entries()) {
      select.append(h("option", { value: String(i), title: example.description }, example.name));
    }
    select.hidden = false;
    select.addEventListener("change", () => {
      const chosen = examples[Number(select.value)];
      if (!chosen) return;
      editor.value = chosen.query;
      errorLine = null;
      drawGutter();
      select.value = "";
      editor.focus();
      run();
    });
  } catch { /* no examples: the select stays hidden */ }
}

function cellText(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function renderTable(result) {
  const thead = clear(table.tHead);
  const tbody = clear(table.tBodies[0]);
  const columns = result.columns || [];
  thead.append(h("tr", {}, columns.map((c) => h("th", { class: ["int", "long", "real", "decimal"].includes(c.type) ? "num" : "" }, c.name, h("span", { class: "coltype" }, c.type)))));
  const frag = document.createDocumentFragment();
  for (const row of result.rows || []) {
    frag.append(h("tr", {}, row.map((value, i) => {
      const type = columns[i]?.type || "";
      const numeric = ["int", "long", "real", "decimal"].includes(type);
      const text = cellText(value);
      return h("td", { class: [`t-${type}`, numeric ? "num" : "", value == null ? "null" : ""], title: text.length > 60 ? text.slice(0, 2000) : undefined }, value == null ? "null" : text.length > 400 ? `${text.slice(0, 400)}…` : text);
    })));
  }
  tbody.append(frag);
  if (!(result.rows || []).length) tbody.append(h("tr", {}, h("td", { colspan: Math.max(columns.length, 1), class: "muted" }, "No rows.")));
}

function showError(error) {
  errorLine = error.line ?? null;
  drawGutter();
  clear(errorBox);
  const where = error.line ? `line ${error.line}${error.column ? `, column ${error.column}` : ""}` : null;
  errorBox.append(where ? h("span", { class: "where" }, `${where}:`) : null, `${error.code ? `[${error.code}] ` : ""}${error.message || "query failed"}`);
  errorBox.hidden = false;
  if (error.line) {
    const lines = editor.value.split("\n");
    let offset = 0;
    for (let i = 0; i < error.line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
    offset += Math.max((error.column || 1) - 1, 0);
    editor.focus();
    editor.setSelectionRange(offset, offset + 1);
  }
}

async function run() {
  const query = editor.value.trim();
  if (!query) return;
  runButton.disabled = true;
  errorBox.hidden = true;
  state.textContent = "Running…";
  const started = performance.now();
  try {
    const result = await api("/api/v1/query", { method: "POST", body: { query } });
    last = result;
    errorLine = null;
    drawGutter();
    renderTable(result);
    const ms = result.elapsedMs ?? Math.round(performance.now() - started);
    state.textContent = `${result.rowCount ?? result.rows.length} row${(result.rowCount ?? result.rows.length) === 1 ? "" : "s"} · ${ms} ms${result.truncated ? " · truncated (query.max_rows)" : ""}`;
    $("#dl-csv").disabled = $("#dl-json").disabled = false;
    if (result.chart) {
      chartCard.hidden = false;
      $("#chart-title").textContent = `${result.chart.kind}${result.chart.x ? ` · ${result.chart.series.join(", ")} by ${result.chart.x}` : ""}${result.chart.splitBy ? ` per ${result.chart.splitBy}` : ""}`;
      renderResultChart($("#chart-box"), result, result.chart);
    } else {
      chartCard.hidden = true;
    }
    const url = new URL(location.href);
    url.searchParams.set("q", query);
    if (url.href.length < 6000) history.replaceState(null, "", url);
  } catch (error) {
    state.textContent = "";
    const body = error.data && error.data.error;
    showError(body && typeof body === "object" ? body : { message: error.message });
  } finally {
    runButton.disabled = false;
  }
}

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h("a", { href: "#", download: name });
  link.href = url;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

const FORMULA = /^[=+\-@\t\r]/;
function csvCell(value, type) {
  if (value === null || value === undefined) return "";
  let text = typeof value === "object" ? JSON.stringify(value) : typeof value === "boolean" ? String(value) : String(value);
  const numeric = ["int", "long", "real", "decimal"].includes(type) && typeof value === "number";
  if (!numeric && FORMULA.test(text)) text = `'${text}`; // a spreadsheet would run it
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function stamp() {
  return new Date().toISOString().replace(/[:]/g, "").replace(/\..*/, "");
}

$("#dl-csv").addEventListener("click", () => {
  if (!last) return;
  const cols = last.columns;
  const lines = [cols.map((c) => csvCell(c.name, "string")).join(",")];
  for (const row of last.rows) lines.push(row.map((v, i) => csvCell(v, cols[i].type)).join(","));
  download(`xdrsync-query-${stamp()}.csv`, "text/csv", `${lines.join("\r\n")}\r\n`);
});
$("#dl-json").addEventListener("click", () => {
  if (!last) return;
  const names = last.columns.map((c) => c.name);
  const records = last.rows.map((row) => Object.fromEntries(names.map((n, i) => [n, row[i]])));
  download(`xdrsync-query-${stamp()}.json`, "application/json", `${JSON.stringify(records, null, 2)}\n`);
  toast("JSON downloaded");
});

let resizeTimer = 0;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { if (last?.chart) renderResultChart($("#chart-box"), last, last.chart); }, 200);
});

loadExamples();
if (params.get("run") === "1") run();
