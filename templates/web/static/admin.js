/* Newsletter admin: small progressive enhancements over plain forms (every page works without).
 *
 *  - form[data-confirm]   asks before submitting
 *  - form[data-live]      in the issue editor: submits in the background, swaps in the server's
 *                         new #live fragment, keeps focus, and reloads the preview frames
 *  - form[data-autosave]  also submits (as above) a moment after typing stops
 *  - input[data-picker]   search as you type (server-rendered results)
 *  - [data-preview-tab]   the preview's tabs (desktop, mobile, dark, plain text, inbox): one
 *                         frame at a time, sized to the email, entered with Enter
 *  - [data-progress-url]  polls a campaign's progress every second
 *  - [data-job-url]       polls a background job (an import) every second; reloads when it ends
 *  - [data-reorder]       in the issue editor: drag sections and items by their handles; the
 *                         whole new order is saved at once (the arrow buttons stay for keys)
 */
(function () {
  "use strict";

  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  function announce(text) {
    var region = document.getElementById("live-status");
    if (region) { region.textContent = ""; window.setTimeout(function () { region.textContent = text; }, 50); }
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      var args = arguments;
      window.clearTimeout(timer);
      timer = window.setTimeout(function () { fn.apply(null, args); }, ms);
    };
  }

  /* --- confirmations -------------------------------------------------------------------- */
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches("form[data-confirm]") && !window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  /* --- previews -------------------------------------------------------------------------- */
  /* One frame at a time, as ARIA tabs.  A frame loads when its tab is first shown (a hidden
   * frame has no layout to measure), is sized to the whole email, and stays out of the Tab
   * order until its panel is entered with Enter; Escape (or tabbing out) leaves it. */
  function frameDocument(frame) {
    try { return frame.contentDocument; } catch (error) { return null; }
  }

  function fitFrame(frame) {
    var doc = frameDocument(frame);
    if (!doc || !doc.documentElement) { return; }
    frame.style.height = "0";  // measure the email, not the frame's last height
    frame.style.height = Math.max(doc.documentElement.scrollHeight, 200) + "px";
    doc.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { leaveFrame(frame, true); }
    });
  }

  function loadFrame(frame) {
    var base = frame.getAttribute("data-src") || frame.getAttribute("src");
    var url = base + (base.indexOf("?") === -1 ? "?" : "&") + "v=" + Date.now();
    frame.removeAttribute("data-stale");
    frame.setAttribute("data-src", base);
    frame.setAttribute("src", url);
  }

  function refreshPreviews() {
    document.querySelectorAll("iframe[data-preview]").forEach(function (frame) {
      if (frame.closest("[hidden]")) { frame.setAttribute("data-stale", ""); } else { loadFrame(frame); }
    });
  }

  function enterFrame(frame) {
    frame.tabIndex = 0;
    frame.focus();
    var doc = frameDocument(frame);
    var first = doc && doc.querySelector("a[href]");
    if (first) { first.focus(); }
  }

  function leaveFrame(frame, back) {
    frame.tabIndex = -1;
    if (back) { frame.closest("[role=tabpanel]").focus(); }
  }

  function showPreview(which, focus) {
    var tabs = document.querySelectorAll("[data-preview-tab]");
    tabs.forEach(function (tab) {
      var on = tab.getAttribute("data-preview-tab") === which;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      if (on && focus) { tab.focus(); }
    });
    document.querySelectorAll("[data-panel]").forEach(function (panel) {
      panel.hidden = panel.getAttribute("data-panel") !== which;
      var frame = panel.querySelector("iframe[data-preview]");
      if (!panel.hidden && frame && (frame.hasAttribute("data-stale") || !frame.getAttribute("src"))) {
        loadFrame(frame);
      }
    });
  }

  document.querySelectorAll("iframe[data-preview]").forEach(function (frame) {
    frame.addEventListener("load", function () { fitFrame(frame); });
    frame.addEventListener("blur", function () { leaveFrame(frame, false); });
    if (frame.getAttribute("src")) { fitFrame(frame); }  // loaded before this script ran
  });

  document.addEventListener("click", function (event) {
    var tab = event.target.closest("[data-preview-tab]");
    if (tab) { showPreview(tab.getAttribute("data-preview-tab"), false); }
  });

  document.addEventListener("keydown", function (event) {
    var tab = event.target.closest && event.target.closest("[data-preview-tab]");
    if (tab) {
      var all = Array.prototype.slice.call(document.querySelectorAll("[data-preview-tab]"));
      var at = all.indexOf(tab);
      var next = {ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: all.length - 1}[event.key];
      if (next === undefined) { return; }
      event.preventDefault();
      showPreview(all[(next + all.length) % all.length].getAttribute("data-preview-tab"), true);
      return;
    }
    var panel = event.target.matches && event.target.matches("[role=tabpanel]") ? event.target : null;
    var frame = panel && panel.querySelector("iframe[data-preview]");
    if (frame && event.key === "Enter") { event.preventDefault(); enterFrame(frame); }
  });

  /* --- the picker ------------------------------------------------------------------------ */
  var picker = document.querySelector("input[data-picker]");
  var pickerRequest = 0;

  function runPicker() {
    if (!picker) { return; }
    var mine = ++pickerRequest;
    var url = picker.getAttribute("data-picker") + "?q=" + encodeURIComponent(picker.value);
    fetch(url, { credentials: "same-origin", headers: { "X-Admin-Fragment": "1" } })
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); throw new Error("signed out"); }
        return response.text();
      })
      .then(function (html) {
        if (mine !== pickerRequest) { return; }  // a newer search already answered
        document.getElementById("picker-results").innerHTML = html;
        var count = document.querySelector("#picker-results [data-picker-count]");
        if (count) { announce(count.textContent); }
      });
  }

  if (picker) {
    picker.addEventListener("input", debounce(runPicker, 250));
    picker.form.addEventListener("submit", function (event) { event.preventDefault(); runPicker(); });
  }

  /* --- live forms ------------------------------------------------------------------------ */
  function formBody(form, submitter) {
    var body = new FormData(form);
    if (submitter && submitter.name) { body.append(submitter.name, submitter.value); }
    return body;
  }

  function restoreFocus(id) {
    var target = id && document.getElementById(id);
    if (target && !target.disabled) { target.focus(); return; }
    var heading = document.getElementById("sections-h");
    if (heading && id) { heading.setAttribute("tabindex", "-1"); heading.focus(); }
  }

  function sendForm(form, body) {
    return sendLive(form, null, true, body);
  }

  function sendLive(form, submitter, quiet, given) {
    var live = document.getElementById("live");
    var status = form.querySelector("[data-save-status]");
    var active = document.activeElement;
    // Enter in a field submits the form: the focus comes back to the field (the next heading
    // can be typed at once), otherwise to the button that was pressed.
    var typing = active && form.contains(active) && active.matches("input[type=text], input[type=search], input:not([type])");
    var focusId = quiet ? null : typing ? active.id : (submitter && submitter.id) || (active && active.id);
    if (status) { status.textContent = "Saving…"; }
    return fetch(form.action, {
      method: "POST", body: given || formBody(form, submitter), credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "X-Admin-Fragment": "1" }
    }).then(function (response) {
      if ((response.headers.get("content-type") || "").indexOf("application/json") !== -1) {
        return refused(response, status);  // not an answer from the editor: keep the page
      }
      return response.text().then(function (html) {
        live.innerHTML = html;
        var inbox = document.getElementById("inbox-preview");
        var next = document.getElementById("inbox-next");
        if (inbox && next) { inbox.replaceChildren(next.content.cloneNode(true)); }
        document.querySelectorAll("main > .alert").forEach(function (old) { old.remove(); });
        if (status) { status.textContent = response.ok ? "Saved" : "Not saved"; }
        var alert = live.querySelector(".alert");
        announce(alert ? alert.textContent.trim() : (response.ok ? "Saved" : "Not saved"));
        if (!quiet) { restoreFocus(focusId); }
        refreshPreviews();
        runPicker();
      });
    }).catch(function () {
      if (status) { status.textContent = "Not saved: the server did not answer"; }
      announce("Not saved: the server did not answer");
    });
  }

  function refused(response, status) {
    if (response.status === 401) { window.location.reload(); return null; }  // to the login
    return response.json().then(function (data) {
      var message = "Not saved: " + (data.detail || response.statusText);
      if (status) { status.textContent = message; }
      var alert = document.createElement("div");
      alert.className = "alert alert-error";
      alert.setAttribute("role", "alert");
      alert.textContent = message;
      document.querySelectorAll("#live > .alert").forEach(function (old) { old.remove(); });
      document.getElementById("live").prepend(alert);
      announce(message);
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("form[data-live]") || !document.getElementById("live")) { return; }
    event.preventDefault();
    sendLive(form, event.submitter, false);
  });

  document.querySelectorAll("form[data-autosave]").forEach(function (form) {
    var save = debounce(function () { sendLive(form, null, true); }, 900);
    form.addEventListener("input", function () {
      var status = form.querySelector("[data-save-status]");
      if (status) { status.textContent = "Editing…"; }
      save();
    });
  });

  /* --- drag and drop ---------------------------------------------------------------------- */
  /* A handle starts the drag; while it moves, the dragged section or item is placed before or
   * after whatever is under the pointer (an item can go into another section's list); on drop
   * the order of every section and item is posted, and the server's fragment replaces #live. */
  var dragged = null;

  function orderOf(list) {
    return Array.prototype.map.call(list.querySelectorAll("[data-section-id]"), function (section) {
      var items = section.querySelectorAll("[data-item-id]");
      return { section: Number(section.getAttribute("data-section-id")),
               items: Array.prototype.map.call(items, function (li) { return Number(li.getAttribute("data-item-id")); }) };
    });
  }

  function saveOrder(list) {
    var body = new FormData();
    body.append("order", JSON.stringify(orderOf(list)));
    var form = document.createElement("form");
    form.action = list.getAttribute("data-reorder");
    sendForm(form, body);
  }

  function placeAt(event) {
    if (!dragged) { return; }
    var kind = dragged.hasAttribute("data-section-id") ? "[data-section-id]" : "[data-item-id]";
    var over = event.target.closest && event.target.closest(kind);
    if (!over && kind === "[data-item-id]") {
      var section = event.target.closest && event.target.closest("[data-section-id]");
      var list = section && section.querySelector("[data-items]");
      if (list && !list.contains(dragged)) { event.preventDefault(); list.appendChild(dragged); }
      return;
    }
    if (!over || over === dragged || over.contains(dragged)) { if (over) { event.preventDefault(); } return; }
    event.preventDefault();
    var box = over.getBoundingClientRect();
    var after = event.clientY > box.top + box.height / 2;
    over.parentNode.insertBefore(dragged, after ? over.nextSibling : over);
  }

  document.addEventListener("dragstart", function (event) {
    var handle = event.target.closest && event.target.closest("[data-drag]");
    if (!handle) { return; }
    dragged = handle.closest(handle.getAttribute("data-drag") === "section" ? "[data-section-id]" : "[data-item-id]");
    dragged.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", dragged.id);
    event.dataTransfer.setDragImage(dragged, 10, 10);
  });
  document.addEventListener("dragover", placeAt);
  document.addEventListener("drop", function (event) {
    if (!dragged) { return; }
    event.preventDefault();
  });
  document.addEventListener("dragend", function () {
    if (!dragged) { return; }
    var list = dragged.closest("[data-reorder]");
    dragged.classList.remove("dragging");
    dragged = null;
    if (list) { saveOrder(list); }
  });

  /* --- campaign progress ----------------------------------------------------------------- */
  var progress = document.querySelector("[data-progress-url]");
  var ACTIVE = ["sending", "paused", "scheduled"];

  function setText(selector, value) {
    var node = progress.querySelector(selector);
    if (node) { node.textContent = value; }
  }

  function withoutNotice() {
    var url = new URL(window.location.href);
    url.searchParams.delete("done");  // the notice was about the previous state
    return url.toString();
  }

  /* JSON from an admin API; signed out means back to the login page. */
  function getJson(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (response) {
      if (response.status === 401) { window.location.reload(); throw new Error("signed out"); }
      return response.json();
    });
  }

  function showBar(bar, done, total, percent) {
    bar.max = total || 1;
    bar.value = total ? done : 0;
    bar.textContent = Number(percent).toFixed(1) + "%";
  }

  function poll() {
    getJson(progress.getAttribute("data-progress-url"))
      .then(function (data) {
        showBar(progress.querySelector("progress"), data.done, data.total, data.percent);
        setText("[data-progress-done]", data.done);
        setText("[data-progress-total]", data.total);
        setText("[data-progress-percent]", Number(data.percent).toFixed(1));
        document.querySelectorAll("[data-count]").forEach(function (cell) {
          cell.textContent = data.counts[cell.getAttribute("data-count")] || 0;
        });
        setText("[data-progress-status]", data.status);
        if (data.status !== progress.getAttribute("data-status")) {
          announce("Campaign " + data.status);
          window.location.replace(withoutNotice());  // new actions and final numbers
          return;
        }
        window.setTimeout(poll, data.status === "sending" ? 1000 : 5000);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }

  if (progress && ACTIVE.indexOf(progress.getAttribute("data-status")) !== -1) {
    window.setTimeout(poll, 1000);
  }

  /* --- background jobs (imports) ----------------------------------------------------------- */
  var job = document.querySelector("[data-job-url]");

  function pollJob() {
    getJson(job.getAttribute("data-job-url"))
      .then(function (data) {
        showBar(job.querySelector("progress"), data.done, data.total, data.percent);
        job.querySelector("[data-job-done]").textContent = data.done;
        job.querySelector("[data-job-total]").textContent = data.total === null ? "…" : data.total;
        job.querySelector("[data-job-percent]").textContent = Number(data.percent).toFixed(1);
        var checking = data.state === "running" && data.total === null;
        job.querySelector("[data-job-state]").textContent = checking ? "checking the file" : data.state;
        if (data.finished) {
          announce("Import " + data.state);
          window.location.reload();  // the server renders the report
          return;
        }
        window.setTimeout(pollJob, 1000);
      })
      .catch(function () { window.setTimeout(pollJob, 3000); });
  }

  if (job && ["queued", "running"].indexOf(job.getAttribute("data-state")) !== -1) {
    window.setTimeout(pollJob, 1000);
  }
}());
