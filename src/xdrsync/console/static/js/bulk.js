// Bulk actions on the incidents checked in the queue (responders): assign, status, close with
// classification (and determination, and an optional comment), add a tag. One PATCH per
// incident, at most 4 at a time; the bar reports progress and each refusal.
import { $, api, clear, fillDeterminations, h, me, seenOf, statusLabel, toast } from "./common.js";
import { assignMeProblem } from "./pane.js";

const PARALLEL = 4;

/**
 * The bar. `selection()` gives the checked ids (in the queue's order), `clearSelection()`
 * unchecks them all, `onDone(ids)` refreshes the rows after a run, and `shown(id)` gives the
 * incident as its row shows it (sent as `seen`, so that a change made in Defender since the
 * row was drawn goes to the field's conflict policy instead of being overwritten).
 */
export function createBulk({ selection, clearSelection, onDone, shown = () => null }) {
  const bar = $("#bulk-bar");
  if (!bar) return { update() {} };
  let running = false;

  const path = (id) => `/api/v1/incidents/${encodeURIComponent(id)}`;

  function update() {
    const n = selection().length;
    $("#bulk-count").textContent = `${n} selected`;
    const reportShown = !$("#bulk-report").hidden;
    bar.hidden = n === 0 && !reportShown && !running;
    for (const control of bar.querySelectorAll(".bulk-row button, .bulk-row input, .bulk-row select")) {
      if (control.id === "bulk-clear") continue;
      control.disabled = running || n === 0;
    }
    $("#bulk-clear").disabled = running || n === 0;
    const problem = assignMeProblem();
    const meButton = $("#bulk-assign-me");
    if (problem) meButton.disabled = true;
    meButton.title = problem || `Assign to ${me.address}`;
    if (!running && n) $("#bulk-determination").disabled = !$("#bulk-classification").value;
  }

  function refusalText(error) {
    if (error.status === 404) return "no longer exists, or is in a tenant you may not see";
    if (error.status === 403) return "refused: you may not edit incidents";
    // A 422 names no field for a refused edit ("body"), so its message starts with ": ".
    const text = (error.message || "").replace(/(^|;\s*):\s*/g, "$1").trim();
    return text || `failed (${error.status ?? "network"})`;
  }

  /** Run `work(id)` for every selected incident, at most PARALLEL at once. */
  async function run(label, work) {
    const ids = selection();
    if (!ids.length || running) return;
    running = true;
    const report = $("#bulk-report");
    const progress = $("#bulk-progress");
    const text = $("#bulk-progress-text");
    const refusals = clear($("#bulk-refusals"));
    report.hidden = false;
    report.dataset.state = "running";
    progress.max = ids.length;
    progress.value = 0;
    update();
    let done = 0;
    let queued = 0;
    const refused = [];
    const show = () => {
      progress.value = done;
      text.textContent = `${label}: ${done} of ${ids.length} done${queued ? ` · ${queued} queued for Defender` : ""}${refused.length ? ` · ${refused.length} refused` : ""}`;
    };
    show();
    const todo = [...ids];
    const worker = async () => {
      while (todo.length) {
        const id = todo.shift();
        try {
          const edits = await work(id);
          if (edits > 0) queued += 1;
        } catch (error) {
          refused.push(id);
          refusals.append(h("li", { "data-id": id },
            h("a", { href: `/incidents/${encodeURIComponent(id)}`, class: "mono" }, id), ": ", refusalText(error)));
        }
        done += 1;
        show();
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, ids.length) }, worker));
    running = false;
    report.dataset.state = refused.length ? "refused" : "done";
    show();
    if (refused.length) toast(`${label}: ${refused.length} of ${ids.length} refused`, "error", 8000);
    else toast(`${label}: queued for ${ids.length} incident${ids.length === 1 ? "" : "s"}`, "ok");
    update();
    await onDone(ids);
  }

  const withSeen = (id, body) => {
    const row = shown(id);
    return row ? { ...body, seen: seenOf(row) } : body;
  };
  const patch = async (id, body) => ((await api(path(id), { method: "PATCH", body: withSeen(id, body) })).edits || []).length;

  $("#bulk-clear").addEventListener("click", () => { clearSelection(); update(); });
  $("#bulk-report-dismiss").addEventListener("click", () => {
    $("#bulk-report").hidden = true;
    clear($("#bulk-refusals"));
    update();
  });
  $("#bulk-assign-me").addEventListener("click", () => run(`Assign to ${me.address}`, (id) => patch(id, { assignedTo: me.address })));
  $("#bulk-assign").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = event.target.elements.assignee;
    const who = input.value.trim();
    run(who ? `Assign to ${who}` : "Unassign", (id) => patch(id, { assignedTo: who })).then(() => { input.value = ""; });
  });
  $("#bulk-status").addEventListener("submit", (event) => {
    event.preventDefault();
    const status = event.target.elements.status.value;
    run(`Status ${statusLabel(status)}`, (id) => patch(id, { status }));
  });
  $("#bulk-tag").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = event.target.elements.tag;
    const tag = input.value.trim();
    if (!tag) { input.focus(); return; }
    // Only this tag is added: tags added elsewhere meanwhile stay.
    run(`Add tag ${tag}`, (id) => patch(id, { addTags: [tag] })).then(() => { input.value = ""; });
  });

  const closeForm = $("#bulk-close");
  const cls = $("#bulk-classification");
  const det = $("#bulk-determination");
  const hideClose = () => { closeForm.hidden = true; $("#bulk-close-open").setAttribute("aria-expanded", "false"); };
  cls.addEventListener("change", () => fillDeterminations(cls.value, det));
  fillDeterminations(cls.value, det);
  $("#bulk-close-open").addEventListener("click", () => {
    if (!closeForm.hidden) { hideClose(); return; }
    closeForm.hidden = false;
    $("#bulk-close-open").setAttribute("aria-expanded", "true");
    cls.focus();
  });
  $("#bulk-close-cancel").addEventListener("click", hideClose);
  closeForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!cls.value) {
      toast("Closing needs a classification.", "error");
      cls.focus();
      return;
    }
    const body = { status: "resolved", classification: cls.value, determination: det.value || undefined };
    const note = $("#bulk-comment").value.trim();
    await run("Close", async (id) => {
      const edits = await patch(id, body);
      if (note) await api(`${path(id)}/comments`, { method: "POST", body: { comment: note } });
      return edits;
    });
    hideClose();
    $("#bulk-comment").value = "";
  });

  update();
  return { update, get running() { return running; } };
}
