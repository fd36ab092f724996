// Connectors: each configured tenant's live health next to its settings.
import { $$, api, clear, every, fmtSeconds, h } from "./common.js";

async function load({ background = false } = {}) {
  let data;
  try {
    data = await api("/api/v1/health", { background });
  } catch {
    return;
  }
  const byName = new Map((data.tenants || []).map((t) => [t.tenant, t]));
  for (const badge of $$("[data-health]")) {
    const t = byName.get(badge.dataset.health);
    const worst = !t ? "never" : t.streams.some((s) => s.outcome === "error") ? "error" : t.streams.some((s) => s.outcome === "waiting") ? "waiting" : t.streams.every((s) => s.outcome === "never") ? "never" : "ok";
    badge.textContent = worst === "ok" ? "healthy" : worst;
    badge.className = `badge conn-health outcome-${worst}`;
  }
  for (const box of $$("[data-streams]")) {
    const t = byName.get(box.dataset.streams);
    clear(box);
    if (!t) continue;
    for (const s of t.streams) {
      box.append(h("div", {}, `${s.stream}: ${s.outcome}, lag ${fmtSeconds(s.lagSeconds)}${s.lastError ? ` — ${s.lastError}` : ""}`));
    }
    box.append(h("div", {}, `write-backs: ${t.writeBacks?.writes ?? "—"}; ${t.records?.incidents ?? 0} incidents, ${t.records?.alerts ?? 0} alerts`));
  }
}

// "Check": sign in as the tenant's app, read its permissions, one read of incidents and alerts.
async function check(button) {
  const name = button.dataset.check;
  const box = document.querySelector(`[data-check-result="${CSS.escape(name)}"]`);
  button.disabled = true;
  clear(box).append(h("div", { class: "muted" }, "checking…"));
  try {
    const r = await api(`/api/v1/connectors/${encodeURIComponent(name)}/check`, { method: "POST" });
    clear(box);
    box.append(h("div", { class: r.ok ? "ok" : "bad" }, r.ok ? "Everything works." : `Missing: ${r.missing.join(", ") || "see below"}`));
    box.append(h("div", {}, `Sign-in: ${r.token.ok ? "ok" : r.token.error}`));
    for (const p of r.permissions) box.append(h("div", { class: "mono" }, `${p.name}: ${p.state}${p.needed ? "" : " (not needed)"}`));
    for (const [label, call] of [["incidents", r.incidents], ["alerts_v2", r.alerts]]) {
      box.append(h("div", {}, `Read ${label}: ${call.state}${call.error ? ` — ${call.error}` : ""}`));
    }
    for (const note of r.notes) box.append(h("div", { class: "muted" }, note));
  } catch (error) {
    clear(box).append(h("div", { class: "bad" }, `Check failed: ${error.message}`));
  } finally {
    button.disabled = false;
  }
}

for (const button of $$("[data-check]")) button.addEventListener("click", () => check(button));
load();
every(10000, load);
