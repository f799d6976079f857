/* Refresh the figures every second without reloading; the page is complete without this. */
(function () {
  var box = document.getElementById("progress");
  var bar = document.getElementById("progress-bar");
  var note = document.getElementById("progress-note");
  var done = ["sent", "cancelled", "draft"];
  var headings = {draft: "Not sent yet:", scheduled: "Scheduled:", sending: "Sending", paused: "Paused:", sent: "Sent", cancelled: "Cancelled:"};
  function set(name, value) {
    var el = box.querySelector('[data-field="' + name + '"]');
    if (el) { el.textContent = value; }
  }
  function tick() {
    fetch(box.dataset.url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (p) {
        if (p.status !== box.dataset.status) {
          window.location.reload();  /* a new state: its own heading, controls and no stale message */
          return;
        }
        ["sent", "total", "failed", "skipped", "cancelled", "in_flight", "status_display", "stopping"].forEach(function (k) { set(k, p[k]); });
        set("pending", p.pending + (p.deferred ? " (" + p.deferred + " for a retry)" : ""));
        document.getElementById("skipped-reasons").textContent = p.skipped_reasons.length
          ? " (" + p.skipped_reasons.map(function (r) { return r.count + ": " + r.reason; }).join("; ") + ")" : "";
        document.getElementById("preparing").hidden = p.ledger_written;
        document.getElementById("stopping").hidden = !p.stopping;
        document.querySelector('h1 [data-field="heading"]').textContent = p.stopping ? "Stopping:" : (headings[p.status] || "Sending");
        var controls = document.getElementById("controls");
        controls.hidden = p.status !== "sending" && p.status !== "paused";
        controls.querySelectorAll("form[data-when]").forEach(function (f) { f.hidden = f.dataset.when !== p.status; });
        set("percent", Number(p.percent || 0).toFixed(1));
        set("rate", p.rate_per_second == null ? "—" : Number(p.rate_per_second).toFixed(1) + " messages a second");
        set("eta", p.eta_text ? "about " + p.eta_text : "—");
        bar.value = p.percent || 0;
        bar.textContent = Number(p.percent || 0).toFixed(1) + "%";
        box.dataset.status = p.status;
        note.textContent = "Updated every second.";
        if (done.indexOf(p.status) === -1 || p.stopping) { setTimeout(tick, 1000); } else { note.textContent = "Finished."; }
      })
      .catch(function () { note.textContent = "Could not refresh; retrying."; setTimeout(tick, 5000); });
  }
  setTimeout(tick, 1000);
})();
