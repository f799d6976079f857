/* Refresh the figures every second without reloading; the page is complete without this. */
(function () {
  var box = document.getElementById("progress");
  var bar = document.getElementById("progress-bar");
  var note = document.getElementById("progress-note");
  var done = ["sent", "cancelled", "draft"];
  function set(name, value) {
    var el = box.querySelector('[data-field="' + name + '"]');
    if (el) { el.textContent = value; }
  }
  function tick() {
    fetch(box.dataset.url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (p) {
        ["sent", "total", "pending", "failed", "skipped", "status_display"].forEach(function (k) { set(k, p[k]); });
        document.getElementById("ledger-note").hidden = p.ledger_written;
        var controls = document.getElementById("controls");
        controls.hidden = p.status !== "sending" && p.status !== "paused";
        controls.querySelectorAll("form[data-when]").forEach(function (f) { f.hidden = f.dataset.when !== p.status; });
        set("percent", Number(p.percent || 0).toFixed(1));
        set("rate_per_second", Number(p.rate_per_second || 0).toFixed(1));
        set("eta", p.eta_seconds == null ? "—" : "about " + Math.round(p.eta_seconds) + " seconds");
        bar.value = p.percent || 0;
        bar.textContent = Number(p.percent || 0).toFixed(1) + "%";
        note.textContent = "Updated every second.";
        if (done.indexOf(p.status) === -1) { setTimeout(tick, 1000); } else { note.textContent = "Finished."; }
      })
      .catch(function () { note.textContent = "Could not refresh; retrying."; setTimeout(tick, 5000); });
  }
  setTimeout(tick, 1000);
})();
