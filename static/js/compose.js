/* The compose page: a live preview beside the form, drafts saved every few
   seconds, and a question before leaving with unsaved changes. Without this
   file the page works as a plain form ("Save and preview"). */
(function () {
  "use strict";
  var form = document.getElementById("issue-form");
  var pane = document.getElementById("preview-pane");
  if (!form || !pane || !window.fetch || !window.FormData) { return; }

  var PREVIEW_PAUSE = 700;   // ms after the last keystroke
  var AUTOSAVE_EVERY = 4000; // ms between draft saves while there are changes

  var frame = document.getElementById("preview-frame");
  var subject = document.getElementById("preview-subject");
  var text = document.getElementById("preview-text");
  var previewState = document.getElementById("preview-state");
  var saveState = document.getElementById("save-state");
  var slot = form.dataset.previewSlot;
  var autosaveUrl = form.dataset.autosaveUrl;

  var edits = 0;          // bumped on every change
  var savedEdits = 0;     // the edit count the last successful save covered
  var saving = false;
  var stopped = false;    // the issue can no longer be edited
  var submitting = false;
  var previewTimer = null;
  var previewSeq = 0;

  pane.hidden = false;
  document.getElementById("compose").classList.add("has-preview");

  function say(el, message) { if (el.textContent !== message) { el.textContent = message; } }

  function firstError(errors) {
    var keys = Object.keys(errors || {});
    if (!keys.length) { return "check the form"; }
    var label = keys[0] === "__all__" ? "" : keys[0] + ": ";
    return label + errors[keys[0]][0];
  }

  function post(url, extra) {
    var data = new FormData(form);
    Object.keys(extra || {}).forEach(function (k) { data.set(k, extra[k]); });
    return fetch(url, {
      method: "POST", body: data, credentials: "same-origin",
      headers: {"Accept": "application/json", "X-Requested-With": "fetch"}
    }).then(function (r) {
      var type = r.headers.get("Content-Type") || "";
      if (type.indexOf("application/json") === -1) {
        return Promise.reject(new Error(r.redirected ? "you were logged out: log in again in another tab" : "the server answered " + r.status));
      }
      return r.json().then(function (body) { return {status: r.status, body: body}; });
    });
  }

  /* Live preview ---------------------------------------------------------- */
  function preview() {
    var seq = ++previewSeq;
    say(previewState, "Updating the preview…");
    post(form.dataset.previewUrl, {preview_slot: slot}).then(function (answer) {
      if (seq !== previewSeq) { return; } // a newer one is on its way
      if (answer.status !== 200) { say(previewState, "Preview not updated: " + firstError(answer.body.errors)); return; }
      subject.textContent = answer.body.subject;
      text.textContent = answer.body.text;
      var url = answer.body.html_url + "?v=" + seq;
      try { frame.contentWindow.location.replace(url); } catch (e) { frame.src = url; }
      say(previewState, "Preview up to date.");
    }).catch(function (err) { say(previewState, "Preview not updated: " + err.message + "."); });
  }

  function previewSoon() {
    say(previewState, "The preview updates when you pause…");
    clearTimeout(previewTimer);
    previewTimer = setTimeout(preview, PREVIEW_PAUSE);
  }

  /* Autosave -------------------------------------------------------------- */
  function autosave() {
    if (saving || stopped || submitting || edits === savedEdits) { return; }
    if (!form.elements.title.value.trim()) { say(saveState, "Give the issue a title and it is saved as a draft as you write."); return; }
    saving = true;
    var covering = edits;
    post(autosaveUrl).then(function (answer) {
      if (answer.status === 200) {
        savedEdits = covering;
        if (autosaveUrl !== answer.body.autosave_url) {
          // A new issue now exists: later saves and the form update it.
          autosaveUrl = answer.body.autosave_url;
          form.action = answer.body.edit_url;
          form.dataset.autosaveUrl = autosaveUrl;
          if (window.history && history.replaceState) { history.replaceState(null, "", answer.body.edit_url); }
        }
        say(saveState, "Draft saved at " + answer.body.saved_at_display + (edits === savedEdits ? "." : "; newer changes not yet saved."));
      } else if (answer.status === 409) {
        stopped = true;
        say(saveState, "Not saved: " + firstError(answer.body.errors));
      } else {
        say(saveState, "Not saved yet: " + firstError(answer.body.errors));
      }
    }).catch(function (err) {
      say(saveState, "Not saved yet: " + err.message + ". Trying again in a few seconds.");
    }).then(function () { saving = false; });
  }

  function changed() {
    edits += 1;
    if (saveState.textContent.indexOf("Draft saved") === 0 || !saveState.textContent) { say(saveState, "Unsaved changes."); }
    previewSoon();
  }

  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  form.addEventListener("submit", function () { submitting = true; });
  setInterval(autosave, AUTOSAVE_EVERY);

  window.addEventListener("beforeunload", function (event) {
    if (submitting || stopped || edits === savedEdits) { return undefined; }
    event.preventDefault();
    event.returnValue = "";
    return "";
  });

  /* Tabs: HTML and plain text ------------------------------------------- */
  var tabs = Array.prototype.slice.call(pane.querySelectorAll('[role="tab"]'));
  function select(tab) {
    tabs.forEach(function (t) {
      var on = t === tab;
      t.setAttribute("aria-selected", on ? "true" : "false");
      t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
    });
  }
  tabs.forEach(function (tab, i) {
    tab.addEventListener("click", function () { select(tab); });
    tab.addEventListener("keydown", function (e) {
      var to = null;
      if (e.key === "ArrowRight") { to = tabs[(i + 1) % tabs.length]; }
      if (e.key === "ArrowLeft") { to = tabs[(i - 1 + tabs.length) % tabs.length]; }
      if (e.key === "Home") { to = tabs[0]; }
      if (e.key === "End") { to = tabs[tabs.length - 1]; }
      if (to) { e.preventDefault(); select(to); to.focus(); }
    });
  });

  preview();
})();
