// Every page: keyboard shortcuts (g i, g h, g c, g s, ?), the help dialog, the user menu.
import { beginSignOut, csrfToken, typing } from "./common.js";

const help = document.getElementById("help");
document.getElementById("help-open")?.addEventListener("click", () => help?.showModal());

const GO = { i: "/", h: "/hunting", c: "/conflicts", s: "/health" };
let pendingG = 0;

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || typing(event)) return;
  if (event.key === "?") {
    event.preventDefault();
    help?.open ? help.close() : help?.showModal();
    return;
  }
  if (event.key === "g") {
    pendingG = Date.now();
    return;
  }
  if (pendingG && Date.now() - pendingG < 1200 && GO[event.key]) {
    event.preventDefault();
    pendingG = 0;
    location.assign(GO[event.key]);
    return;
  }
  pendingG = 0;
});

const menu = document.querySelector(".usermenu");
document.addEventListener("click", (event) => {
  if (menu?.open && !menu.contains(event.target)) menu.open = false;
});

// Sign out with a script request: with `Referrer-Policy: no-referrer` Chromium sends
// `Origin: null` on a form POST, which the server rightly refuses as cross-site; a fetch
// carries the CSRF header and no such Origin. The plain form stays as the fallback.
const logout = document.querySelector(".logout-form");
logout?.addEventListener("submit", async (event) => {
  event.preventDefault();
  beginSignOut();
  try {
    await fetch("/logout", {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrfToken() },
      redirect: "manual",
    });
  } finally {
    location.assign("/login");
  }
});
