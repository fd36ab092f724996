// Users and API tokens: admins of every tenant manage users and everyone's tokens (/users);
// everyone manages their own tokens (/tokens). A new token is shown once, then only its prefix.
import { $, $$, api, clear, h, me, timeEl, toast } from "./common.js";

const root = $("#admin");
const manage = root?.dataset.manage === "yes";

// -- a confirm step in place ----------------------------------------------------------------

/** Replace ``cell``'s content with a question and Yes/Cancel; ``action`` runs on Yes. */
function confirmIn(cell, question, yesLabel, action) {
  const before = [...cell.childNodes];
  const restore = () => { clear(cell); cell.append(...before); before.find((n) => n instanceof HTMLButtonElement)?.focus(); };
  const yes = h("button", { type: "button", class: "btn btn-small btn-danger confirm-yes" }, yesLabel);
  const no = h("button", { type: "button", class: "btn btn-small confirm-no" }, "Cancel");
  no.addEventListener("click", restore);
  yes.addEventListener("click", async () => {
    yes.disabled = true;
    no.disabled = true;
    try {
      await action();
    } catch (error) {
      toast(error.message, "error");
      restore();
    }
  });
  clear(cell);
  cell.append(h("span", { class: "confirm" }, h("span", { class: "confirm-q" }, question), " ", yes, " ", no));
  no.focus();
}

function showError(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}

// -- users ----------------------------------------------------------------------------------

let users = [];
let widenAsked = null; // the user whose widening to every tenant was pointed out once

/** The tenants by their current names; one that left the config gives no access and says so
 * (never "every tenant": a user scoped only to such tenants sees none). */
function tenantsText(user) {
  const former = (user.formerTenants || []).map((name) => `${name} (no longer in the config: no access)`);
  const all = [...user.tenants, ...former];
  return all.length ? all.join(", ") : h("span", { class: "muted" }, "every tenant");
}

function userRow(user) {
  const actions = h("td", { class: "nowrap row-actions" });
  const edit = h("button", { type: "button", class: "btn btn-small", "data-edit": user.name, title: `Change ${user.name}` }, "Edit");
  edit.addEventListener("click", () => fillForm(user));
  actions.append(edit);
  if (user.name !== me.name) {
    const del = h("button", { type: "button", class: "btn btn-small btn-danger", "data-delete": user.name, title: `Delete ${user.name}` }, "Delete");
    del.addEventListener("click", () => confirmIn(actions, `Delete ${user.name} and their tokens?`, "Yes, delete", async () => {
      await api(`/api/v1/users/${encodeURIComponent(user.name)}`, { method: "DELETE" });
      toast(`Deleted ${user.name}`, "ok");
      await Promise.all([loadUsers(), loadTokens()]);
    }));
    actions.append(" ", del);
  }
  return h("tr", { "data-user": user.name },
    h("td", { class: "mono" }, user.name),
    h("td", {}, h("span", { class: ["role", `role-${user.role}`] }, user.role)),
    h("td", {}, tenantsText(user)),
    h("td", {}, user.email || h("span", { class: "muted" }, "—")),
    actions,
  );
}

async function loadUsers() {
  const status = $("#users-status");
  try {
    const data = await api("/api/v1/users");
    users = data.value;
    const tbody = clear($("#users tbody"));
    for (const user of users) tbody.append(userRow(user));
    status.textContent = `${users.length} user${users.length === 1 ? "" : "s"}`;
    fillUserChoice();
  } catch (error) {
    status.textContent = `Could not load the users: ${error.message}`;
  }
}

function fillForm(user) {
  const form = $("#user-form");
  form.elements.name.value = user.name;
  form.elements.role.value = user.role;
  for (const box of $$('input[name="tenant"]', form)) box.checked = user.tenants.includes(box.value);
  form.elements.email.value = user.email || "";
  form.elements.password.value = "";
  form.elements.current.value = "";
  showCurrent();
  showError($("#user-form-error"), "");
  form.elements.name.focus();
}

/** What of this change needs your own current password, or "" for nothing: creating a user,
 * setting a password (yours or anyone's), making an admin or widening an admin's tenants. A
 * stolen session does not know it, so it cannot make itself a lasting way in. */
function needsPassword(form) {
  const name = form.elements.name.value.trim();
  if (!name) return "";
  const before = users.find((u) => u.name === name);
  if (!before) return "to add a user";
  if (form.elements.password.value !== "") return name === me.name ? "to change your own password" : "to set a password";
  if (form.elements.role.value !== "admin") return "";
  const tenants = $$('input[name="tenant"]:checked', form).map((box) => box.value);
  const scoped = before.tenants.length > 0 || (before.formerTenants || []).length > 0;
  const widens = scoped && (!tenants.length || tenants.some((t) => !before.tenants.includes(t)));
  return before.role !== "admin" || widens ? "to make an admin" : "";
}

function showCurrent() {
  const form = $("#user-form");
  const row = $("#uf-current-row");
  if (!form || !row) return;
  const why = needsPassword(form);
  row.hidden = !why;
  form.elements.current.required = !row.hidden;
  $("#uf-current-why").textContent = why ? `(${why})` : "";
}

async function saveUser(event) {
  event.preventDefault();
  const form = event.target;
  const error = $("#user-form-error");
  const name = form.elements.name.value.trim();
  const password = form.elements.password.value;
  const exists = users.some((u) => u.name === name);
  if (!name) return showError(error, "A user name is needed.");
  if (!exists && !password) return showError(error, "A new user needs a password (at least 12 characters).");
  const body = {
    role: form.elements.role.value,
    tenants: $$('input[name="tenant"]:checked', form).map((box) => box.value),
    email: form.elements.email.value.trim() || null,
  };
  // A user whose tenants all left the config sees none; no box ticked would give them every
  // tenant. Say so once before doing it (a second Save does).
  const before = users.find((u) => u.name === name);
  if (before && !before.tenants.length && (before.formerTenants || []).length && !body.tenants.length && widenAsked !== name) {
    widenAsked = name;
    return showError(error, `${name}'s tenants have left the config, so they see none. With no tenant ticked they would see every tenant: tick theirs, or Save again to give every tenant.`);
  }
  widenAsked = null;
  if (password) body.password = password;
  const why = needsPassword(form);
  if (why) {
    const current = form.elements.current.value;
    if (!current) return showError(error, `Your current password is needed ${why}.`);
    body.currentPassword = current;
  }
  const save = $("#uf-save");
  save.disabled = true;
  try {
    await api(`/api/v1/users/${encodeURIComponent(name)}`, { method: "PUT", body });
    showError(error, "");
    form.reset();
    showCurrent();
    toast(exists ? `Changed ${name}` : `Added ${name}`, "ok");
    if (name === me.name && password) {
      location.assign("/login?next=/users"); // a new password ends your own sessions too
      return;
    }
    await loadUsers();
  } catch (failure) {
    showError(error, failure.message);
  } finally {
    save.disabled = false;
  }
}

// -- tokens ---------------------------------------------------------------------------------

function fillUserChoice() {
  const select = $("#tf-user");
  if (!select) return;
  const chosen = select.value || me.name;
  clear(select);
  for (const user of users) select.append(h("option", { value: user.name }, user.name));
  select.value = users.some((u) => u.name === chosen) ? chosen : me.name;
}

const STATE_TITLES = {
  active: "Works until revoked or expired",
  expired: "Past its expiry: no longer works",
  revoked: "Revoked: no longer works",
};

function tokenRow(token) {
  const actions = h("td", { class: "nowrap row-actions" });
  if (token.state === "active") {
    const revoke = h("button", { type: "button", class: "btn btn-small btn-danger", "data-revoke": token.id, title: "Stop this token working" }, "Revoke");
    revoke.addEventListener("click", () => confirmIn(actions, `Revoke “${token.label}”?`, "Yes, revoke", async () => {
      await api(`/api/v1/tokens/${encodeURIComponent(token.id)}`, { method: "DELETE" });
      toast(`Revoked ${token.prefix}…`, "ok");
      await loadTokens();
    }));
    actions.append(revoke);
  }
  return h("tr", { "data-token": token.id, class: token.state === "active" ? null : "token-dead" },
    manage ? h("td", { class: "mono" }, token.user) : null,
    h("td", {}, token.label || h("span", { class: "muted" }, "—")),
    h("td", { class: "mono" }, `${token.prefix}…`),
    h("td", { class: "col-time" }, timeEl(token.createdAt)),
    h("td", { class: "col-time" }, token.expiresAt ? timeEl(token.expiresAt) : h("span", { class: "muted" }, "never")),
    h("td", { class: "col-time" }, token.lastUsedAt ? timeEl(token.lastUsedAt, { style: "ago" }) : h("span", { class: "muted" }, "never")),
    h("td", {}, h("span", { class: ["badge", "token-state", `token-${token.state}`], title: STATE_TITLES[token.state] ?? "" }, token.state)),
    actions,
  );
}

async function loadTokens() {
  const status = $("#tokens-status");
  try {
    const data = await api(manage ? "/api/v1/tokens?user=*" : "/api/v1/tokens");
    const tbody = clear($("#tokens tbody"));
    for (const token of data.value) tbody.append(tokenRow(token));
    const live = data.value.filter((t) => t.state === "active").length;
    status.textContent = data.value.length
      ? `${data.value.length} token${data.value.length === 1 ? "" : "s"}, ${live} active`
      : "No tokens yet.";
  } catch (error) {
    status.textContent = `Could not load the tokens: ${error.message}`;
  }
}

async function createToken(event) {
  event.preventDefault();
  const form = event.target;
  const error = $("#token-form-error");
  const body = { label: form.elements.label.value.trim() };
  if (!body.label) return showError(error, "A label says what the token is for.");
  const days = form.elements.days.value.trim();
  if (days) body.days = Number(days);
  if (manage && form.elements.user.value && form.elements.user.value !== me.name) body.user = form.elements.user.value;
  body.currentPassword = form.elements.current.value;
  if (!body.currentPassword) return showError(error, "Your current password is needed to create a token.");
  const create = $("#tf-create");
  create.disabled = true;
  try {
    const made = await api("/api/v1/tokens", { method: "POST", body });
    showError(error, "");
    form.elements.label.value = "";
    form.elements.days.value = "";
    form.elements.current.value = "";
    showOnce(made.token);
    await loadTokens();
  } catch (failure) {
    showError(error, failure.message);
  } finally {
    create.disabled = false;
  }
}

function showOnce(token) {
  const box = $("#token-once");
  const value = $("#token-value");
  value.value = token;
  box.hidden = false;
  value.focus();
  value.select();
}

function hideOnce() {
  $("#token-value").value = "";
  $("#token-once").hidden = true;
}

async function copyToken() {
  const value = $("#token-value");
  try {
    await navigator.clipboard.writeText(value.value);
    toast("Copied the token", "ok");
  } catch {
    value.select(); // no clipboard access (plain http): the text is selected for Ctrl+C
    toast("Press Ctrl+C to copy the selected token", "info");
  }
}

// -- start ----------------------------------------------------------------------------------

$("#token-form")?.addEventListener("submit", createToken);
$("#token-copy")?.addEventListener("click", copyToken);
$("#token-done")?.addEventListener("click", hideOnce);
if (manage) {
  $("#user-form")?.addEventListener("submit", saveUser);
  $("#user-form")?.addEventListener("reset", () => {
    showError($("#user-form-error"), "");
    setTimeout(showCurrent); // after the fields are cleared
  });
  $("#user-form")?.addEventListener("input", showCurrent);
  await loadUsers();
}
await loadTokens();
