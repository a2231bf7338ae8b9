// Progressive enhancement for the dashboard. Every page works without this file (a page with live work
// refreshes itself through <noscript>); with it, live work follows its SSE stream:
//  - a job (RCA, canary): the progress bar and status line move; when it is over the page reloads;
//  - an incident: each workflow step is appended as it happens; a change of status reloads the page.
"use strict";

const OVER = new Set(["done", "failed", "cancelled", "crashed", "resolved", "escalated"]);

function reloadTo(refresh) {
  const target = new URL(refresh, window.location.href);
  if (target.pathname + target.search === window.location.pathname + window.location.search) {
    window.location.reload();
  } else {
    window.location.replace(target.href);
  }
}

function follow(section) {
  const stream = section.dataset.stream;
  const refresh = section.dataset.refresh;
  if (!stream || !refresh || section.dataset.following) return;
  section.dataset.following = "1";
  const seen = Number(section.dataset.seen || 0);
  const shown = section.dataset.status;
  const bar = section.querySelector("progress");
  const line = section.querySelector("[role=status]");
  const state = section.querySelector(".rca-status");
  const steps = section.querySelector("[data-steps]");
  const source = new EventSource(stream);
  source.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (steps && data.node !== undefined) {
      if (Number(event.lastEventId) > seen) {
        const li = document.createElement("li");
        const node = document.createElement("span");
        node.className = "node";
        node.textContent = data.node;
        li.append(node, " ", data.message);
        steps.append(li);
      }
      if (shown && data.status && data.status !== shown) {
        source.close();
        reloadTo(refresh);
      }
      return;
    }
    if (bar && typeof data.pct === "number") bar.value = data.pct;
    if (line) line.textContent = `${data.step || ""} ${data.message || ""}`.trim();
    if (state) state.textContent = data.status;
    if (OVER.has(data.status)) {
      source.close();
      reloadTo(refresh);
    }
  };
}

// Following an evidence link moves focus to the timeline item, so keyboard users land on it.
function focusTarget() {
  const id = decodeURIComponent(window.location.hash.slice(1));
  const el = id && document.getElementById(id);
  if (el && el.tabIndex === -1) el.focus();
}

function init(root) {
  root.querySelectorAll("[data-stream]").forEach(follow);
}

document.addEventListener("DOMContentLoaded", () => {
  init(document);
  focusTarget();
});
window.addEventListener("hashchange", focusTarget);
document.addEventListener("htmx:afterSwap", (e) => init(e.target));
