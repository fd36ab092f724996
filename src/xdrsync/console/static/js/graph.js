// The investigation graph: incident → alerts → entities in columns, entities ordered next to
// the alerts that name them, entities shared by several alerts drawn with their own colour
// so the alerts they connect stand out. Clicking (or Enter on) a node shows its details.
import { clear, s, severityName } from "./common.js";

const NODE_W = { incident: 160, alert: 220, entity: 210 };
const NODE_H = 28;
const GAP = 6;

function short(text, max) {
  const value = String(text ?? "");
  return value.length > max ? `${value.slice(0, max - 1)}…` : value;
}

/**
 * Draw `graph` ({nodes, edges}) into `container`. `describe(node)` gives {kind, title, sub,
 * severity?, verdict?, shared?} for a node; `onPick(node)` is called when one is chosen.
 */
export function drawGraph(container, graph, { describe, onPick }) {
  clear(container);
  const nodes = graph.nodes || [];
  const edges = graph.edges || [];
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const root = nodes.find((n) => n.kind === "incident");
  const alerts = nodes.filter((n) => n.kind === "alert");
  const entities = nodes.filter((n) => n.kind !== "incident" && n.kind !== "alert");
  const alertIndex = new Map(alerts.map((a, i) => [a.id, i]));
  const links = new Map(); // entity id → alert ids
  for (const e of edges) {
    if (byId.get(e.target) && alertIndex.has(e.source)) {
      if (!links.has(e.target)) links.set(e.target, []);
      links.get(e.target).push(e.source);
    }
  }
  // Order entities by the mean position of their alerts (fewer crossings), shared first.
  const center = (id) => {
    const list = links.get(id) || [];
    return list.length ? list.reduce((sum, a) => sum + alertIndex.get(a), 0) / list.length : alerts.length;
  };
  entities.sort((a, b) => center(a.id) - center(b.id) || (links.get(b.id)?.length || 0) - (links.get(a.id)?.length || 0));
  const columns = 1;
  const perColumn = Math.ceil(entities.length / columns);
  const rowH = NODE_H + GAP;
  const entityRows = Math.max(perColumn, 1);
  const alertStep = Math.max(rowH, (entityRows * rowH) / Math.max(alerts.length, 1));
  const height = Math.max(alerts.length * alertStep, entityRows * rowH, 120) + 40;
  const xIncident = 12;
  const xAlert = xIncident + NODE_W.incident + 50;
  const xEntity = xAlert + NODE_W.alert + 90;
  const width = xEntity + NODE_W.entity + 12;
  const pos = new Map();
  if (root) pos.set(root.id, { x: xIncident, y: height / 2 - NODE_H / 2, w: NODE_W.incident });
  alerts.forEach((a, i) => pos.set(a.id, { x: xAlert, y: 30 + i * alertStep + (alertStep - NODE_H) / 2, w: NODE_W.alert }));
  entities.forEach((e, i) => {
    const col = columns === 2 ? i % 2 : 0;
    const row = columns === 2 ? Math.floor(i / 2) : i;
    pos.set(e.id, { x: xEntity + col * (NODE_W.entity + 30), y: 30 + row * rowH, w: NODE_W.entity });
  });
  const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": "Investigation graph" });
  svg.append(
    s("text", { x: xIncident, y: 16, class: "g-colhead" }, "Incident"),
    s("text", { x: xAlert, y: 16, class: "g-colhead" }, `Alerts (${alerts.length})`),
    s("text", { x: xEntity, y: 16, class: "g-colhead" }, `Entities (${entities.length})`),
  );
  const edgeLayer = s("g", {});
  const nodeLayer = s("g", {});
  svg.append(edgeLayer, nodeLayer);
  const edgeEls = [];
  for (const e of edges) {
    const a = pos.get(e.source);
    const b = pos.get(e.target);
    if (!a || !b) continue;
    const x1 = a.x + a.w;
    const y1 = a.y + NODE_H / 2;
    const x2 = b.x;
    const y2 = b.y + NODE_H / 2;
    const mid = (x1 + x2) / 2;
    const shared = (links.get(e.target)?.length || 0) > 1;
    const path = s("path", { d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`, class: ["g-edge", shared ? "shared" : ""] });
    edgeEls.push({ path, source: e.source, target: e.target });
    edgeLayer.append(path);
  }
  const nodeEls = new Map();
  const pick = (node) => {
    for (const [id, el] of nodeEls) el.classList.toggle("picked", id === node.id);
    for (const e of edgeEls) e.path.classList.toggle("hl", e.source === node.id || e.target === node.id);
    onPick?.(node);
  };
  for (const node of [root, ...alerts, ...entities]) {
    if (!node) continue;
    const p = pos.get(node.id);
    const info = describe(node);
    const kindClass = node.kind === "incident" || node.kind === "alert" ? node.kind : "entity";
    const g = s("g", {
      class: ["g-node", kindClass, info.severity ? `sev-${severityName(info.severity)}` : "", info.shared ? "shared" : "", info.verdict || ""],
      transform: `translate(${p.x},${p.y})`, tabindex: 0, role: "button", "data-node": node.id,
      "aria-label": `${info.kind}: ${info.title}`,
    },
    s("title", {}, `${info.kind}: ${info.title}${info.sub ? `\n${info.sub}` : ""}`),
    s("rect", { width: p.w, height: NODE_H, rx: kindClass === "entity" ? 15 : 5 }),
    s("text", { x: 10, y: 11, class: "g-kind" }, short(info.kind, 34)),
    s("text", { x: 10, y: 24 }, short(info.title, Math.floor(p.w / 6.4))));
    g.addEventListener("click", () => pick(node));
    g.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); pick(node); } });
    nodeEls.set(node.id, g);
    nodeLayer.append(g);
  }
  container.append(svg);
  return { pick: (id) => { const node = byId.get(id); if (node) { pick(node); nodeEls.get(id)?.scrollIntoView?.({ block: "nearest", inline: "nearest" }); } } };
}
