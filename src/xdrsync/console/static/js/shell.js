// Every page: keyboard shortcuts (g i, g h, g c, g s, ?), the help dialog, the user menu.
import { beginSignOut, csrfToken, typing } from "./common.js";

const help = document.getElementById("help");
document.getElementById("help-open")?.addEventListener("click", () => help?.showModal());

const GO = { i: "/", h: "/hunting", c: "/conflicts", s: "/health" };
/** How long after `g` the next key completes the chord. */
const CHORD_MS = 1200;
/** Keys that neither complete nor end a chord (a modifier pressed on its own). */
const MODIFIERS = new Set(["Shift", "Control", "Alt", "Meta", "AltGraph", "CapsLock"]);
/** Keys that end a chord and keep their meaning (focus moves, a dialog or the pane closes). */
const PASSED = new Set(["Tab", "Escape"]);
let pendingG = 0;

// In the capture phase, so it comes before every page's and element's own key handlers: a key
// it consumes (preventDefault and stopPropagation) reaches none of them.
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (typing(event)) { pendingG = 0; return; }
  if (pendingG && MODIFIERS.has(event.key)) return;
  if (pendingG && Date.now() - pendingG < CHORD_MS && !PASSED.has(event.key)) {
    // `g` then a key: a destination, or nothing at all. The key is never passed on to the
    // page (`g` then `a` must not assign the selected incident).
    event.preventDefault();
    event.stopImmediatePropagation();
    pendingG = event.key === "g" ? Date.now() : 0; // `g` again starts the chord again
    if (Object.hasOwn(GO, event.key)) location.assign(GO[event.key]);
    return;
  }
  pendingG = 0;
  if (event.key === "?") {
    event.preventDefault();
    help?.open ? help.close() : help?.showModal();
    return;
  }
  if (event.key === "g") pendingG = Date.now();
}, { capture: true });

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
