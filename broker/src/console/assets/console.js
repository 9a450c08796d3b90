// twilio-broker console: light enhancement only (served from the binary;
// the Content-Security-Policy allows no inline script). Every view works
// without it.
"use strict";

// The audit view: prepend events from the live stream (server-sent events)
// with the page's own filters. Text only: nothing is parsed as HTML.
(function liveAudit() {
  const table = document.getElementById("audit-events");
  if (!table || typeof EventSource === "undefined") {
    return;
  }
  const body = table.tBodies[0];
  const columns = ["time", "rpc", "caller", "transport", "decision", "status", "credential", "message"];
  const status = document.getElementById("live-status");
  const source = new EventSource("/audit/events" + window.location.search);
  source.addEventListener("open", function () {
    table.dataset.live = "on";
    if (status) {
      status.textContent = "Newest first; live: new events appear at the top.";
    }
  });
  source.addEventListener("message", function (message) {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch (_) {
      return;
    }
    const row = document.createElement("tr");
    if (event.decision === "deny") {
      row.className = "deny";
    }
    for (const column of columns) {
      const cell = document.createElement("td");
      cell.textContent = typeof event[column] === "string" ? event[column] : "";
      row.appendChild(cell);
    }
    body.insertBefore(row, body.firstChild);
    while (body.rows.length > 200) {
      body.deleteRow(body.rows.length - 1);
    }
  });
  source.addEventListener("error", function () {
    if (status) {
      status.textContent = "Newest first; the live stream is reconnecting.";
    }
  });
})();
