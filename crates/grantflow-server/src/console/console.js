// grantflow console: the little the pages need beyond HTML.
// - A refusal shown in a form is scrolled into view and focused.
// - Pages that follow the log (body[data-live]) listen to /live (Server-Sent Events) and,
//   when an event touches their streams, fetch the page again and swap each part marked
//   data-live-part, with a visible mark saying what changed. Forms are left alone, so what
//   a user is typing stays. EventSource reconnects by itself after a server restart.
"use strict";

(function () {
  const refusal = document.querySelector("form [role=alert]");
  if (refusal) {
    refusal.scrollIntoView({ block: "center" });
    refusal.focus();
  }

  const live = document.body.dataset.live;
  const status = document.getElementById("live-status");
  if (!live || !window.EventSource || !status) return;
  const streams = live.split(" ");
  const touches = (stream) => streams.includes("*") || streams.includes(stream);

  let refreshing = false;
  let pending = null;

  function mark(text, state) {
    status.textContent = text;
    status.dataset.state = state;
  }

  async function refresh(change) {
    if (refreshing) {
      pending = change;
      return;
    }
    refreshing = true;
    try {
      const response = await fetch(window.location.href, {
        credentials: "same-origin",
        // A refresh leaves the one-time notice of a submitted form to the page it leads to,
        // and names the event it follows: the server answers once its figures hold it.
        headers: { Accept: "text/html", "Grantflow-Refresh": String(change.position) },
      });
      if (!response.ok) {
        mark("Could not refresh the figures (" + response.status + "); reload the page.", "error");
        return;
      }
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const part of document.querySelectorAll("[data-live-part]")) {
        const next = part.id && fresh.getElementById(part.id);
        if (next && next.innerHTML !== part.innerHTML) {
          part.replaceWith(next);
          next.classList.add("updated");
        }
      }
      mark("Updated: " + change.type + " at log position " + change.position + ".", "updated");
      document.body.dataset.livePosition = String(change.position);
    } catch (error) {
      mark("Could not refresh the figures; reload the page.", "error");
    } finally {
      refreshing = false;
      if (pending) {
        const next = pending;
        pending = null;
        refresh(next);
      }
    }
  }

  const source = new EventSource("/live");
  source.addEventListener("open", () => {
    document.body.dataset.liveConnected = "true";
    if (status.dataset.state === "offline") mark("Following the log again.", "connected");
  });
  source.addEventListener("error", () => {
    document.body.dataset.liveConnected = "false";
    mark("Not following the log right now (reconnecting).", "offline");
  });
  source.addEventListener("change", (event) => {
    let change;
    try {
      change = JSON.parse(event.data);
    } catch (error) {
      return;
    }
    if (touches(change.stream)) refresh(change);
  });
})();
