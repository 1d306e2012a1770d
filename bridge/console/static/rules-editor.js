// The rules editor (templates/rules_editor.html): CodeMirror 5 on the file's textarea, and the rules API
// under /console/api (bridge.rules.api) for saving, checking as you type, examples, preview and publish.
// Every value from the server is put in the page as text (textContent), never as HTML.
"use strict";
(function () {
  var CHECK_DELAY_MS = 600;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("draft");
    if (!root) { return; }
    var draftId = root.getAttribute("data-draft");
    var csrf = root.getAttribute("data-csrf");
    var file = root.getAttribute("data-file");
    var canEdit = root.getAttribute("data-can-edit") === "yes";
    var base = "/console/api/rules/drafts/" + draftId;
    var textarea = document.getElementById("source");
    var saveState = document.getElementById("save-state");
    var checkState = document.getElementById("check-state");
    var problemList = document.getElementById("problems");
    var noteList = document.getElementById("notes");
    var actionState = document.getElementById("action-state");
    var publishButton = document.getElementById("publish");
    var marks = [];
    var timer = null;
    var generation = 0;  // the newest edit; older answers are dropped
    var checkedOk = false;
    var busy = false;

    var editor = null;
    if (window.CodeMirror) {
      editor = window.CodeMirror.fromTextArea(textarea, {
        mode: "yaml", lineNumbers: true, readOnly: !canEdit, indentUnit: 2, tabSize: 2, lineWrapping: false,
        gutters: ["CodeMirror-linenumbers", "problem-gutter"],
        extraKeys: {Tab: function (cm) { cm.replaceSelection("  "); }}
      });
      editor.setSize(null, "34rem");
    }
    function text() { return editor ? editor.getValue() : textarea.value; }

    function api(method, path, body) {
      var options = {method: method, credentials: "same-origin", headers: {"Accept": "application/json"}};
      if (method !== "GET") {
        options.headers["Content-Type"] = "application/json";
        options.headers["X-CSRF-Token"] = csrf;
        options.body = JSON.stringify(body || {});
      }
      return fetch(path, options).then(function (r) {
        if (r.status === 401) { window.location.assign("/console/sign-in"); throw new Error("signed out"); }
        return r.json().catch(function () { return {error: "the bridge answered " + r.status}; })
          .then(function (data) { return {status: r.status, ok: r.ok, data: data}; });
      });
    }

    function say(message, kind) {
      actionState.textContent = message;
      actionState.className = kind || "";
    }

    function updatePublish() {
      if (publishButton) {
        publishButton.disabled = !checkedOk || busy;
        publishButton.title = checkedOk ? "" : "The draft fails the check: fix each problem first.";
      }
    }

    function clearMarks() {
      marks.forEach(function (m) { m(); });
      marks = [];
    }

    function markLine(problem) {
      if (!editor || problem.file !== file || !problem.line) { return; }
      var line = Math.min(problem.line, editor.lineCount()) - 1;
      var marker = el("span", "problem-marker", "●");
      marker.title = problem.message;
      editor.setGutterMarker(line, "problem-gutter", marker);
      editor.addLineClass(line, "background", "problem-line");
      var widget = el("div", "problem-widget");
      widget.appendChild(el("strong", null, problem.message));
      if (problem.fix) { widget.appendChild(el("span", "fix", " Fix: " + problem.fix)); }
      var handle = editor.addLineWidget(line, widget, {coverGutter: false, noHScroll: true});
      marks.push(function () {
        editor.setGutterMarker(line, "problem-gutter", null);
        editor.removeLineClass(line, "background", "problem-line");
        handle.clear();
      });
    }

    function problemItem(problem, isExample) {
      var item = el("li", isExample ? "example-problem" : "problem");
      item.setAttribute("data-file", problem.file || "");
      item.setAttribute("data-line", String(problem.line || 0));
      var where = (problem.file || "the set") + (problem.line ? ":" + problem.line : "");
      item.appendChild(el("span", "where", where));
      item.appendChild(document.createTextNode(" " + problem.message));
      if (problem.fix) { item.appendChild(el("span", "fix", " Fix: " + problem.fix)); }
      if (problem.file && problem.file !== file) {
        var link = el("a", null, " open");
        link.href = "/console/rules/drafts/" + draftId + "?file=" + encodeURIComponent(problem.file);
        item.appendChild(link);
      } else if (editor && problem.line) {
        item.addEventListener("click", function () {
          editor.setCursor({line: problem.line - 1, ch: Math.max(0, (problem.column || 1) - 1)});
          editor.focus();
        });
      }
      return item;
    }

    function showCheck(result) {
      clearMarks();
      clear(problemList);
      clear(noteList);
      checkedOk = !!result.ok;
      (result.problems || []).forEach(function (p) { problemList.appendChild(problemItem(p, false)); markLine(p); });
      (result.example_problems || []).forEach(function (p) { problemList.appendChild(problemItem(p, true)); markLine(p); });
      var notes = (result.notes || []).concat(result.blocked || []);
      notes.forEach(function (n) { noteList.appendChild(el("li", null, n)); });
      document.getElementById("notes-box").hidden = !notes.length;
      document.getElementById("notes-count").textContent = notes.length + (notes.length === 1 ? " note" : " notes") +
        " (messages this deployment's areas keep from being sent, and the like)";
      if (result.ok) {
        var extra = (result.example_problems || []).length ? ", " + result.example_problems.length +
          " examples do not fit" : "";
        checkState.textContent = "No problem: " + result.rules + " rules in " + result.files + " files" + extra + ".";
        checkState.className = "ok";
      } else {
        checkState.textContent = result.problems.length + (result.problems.length === 1 ? " problem" : " problems") +
          ": the draft cannot be published until each is fixed.";
        checkState.className = "error";
      }
      root.setAttribute("data-checked", result.ok ? "ok" : "problems");
      updatePublish();
    }

    function check() {
      var mine = generation;
      checkState.textContent = "Checking…";
      checkState.className = "muted";
      return api("POST", base + "/check").then(function (answer) {
        if (mine !== generation) { return; }
        if (!answer.ok) { checkState.textContent = answer.data.error || "The check did not run."; return; }
        showCheck(answer.data);
      });
    }

    function save() {
      var mine = ++generation;
      busy = true;
      updatePublish();
      saveState.textContent = "Saving…";
      root.setAttribute("data-checked", "");
      return api("PUT", base + "/files/" + encodeURIComponent(file), {text: text()}).then(function (answer) {
        if (mine !== generation) { return; }
        busy = false;
        if (!answer.ok) {
          saveState.textContent = "Not saved: " + (answer.data.error || answer.status);
          saveState.className = "error";
          checkedOk = false;
          updatePublish();
          return;
        }
        saveState.textContent = "Saved.";
        saveState.className = "muted";
        return check();
      }).catch(function (e) {
        busy = false;
        saveState.textContent = "Not saved: " + e.message;
        saveState.className = "error";
      });
    }

    function changed() {
      checkedOk = false;
      root.setAttribute("data-checked", "");
      updatePublish();
      saveState.textContent = "Editing…";
      clearTimeout(timer);
      timer = setTimeout(save, CHECK_DELAY_MS);
    }

    if (canEdit) {
      if (editor) { editor.on("change", changed); } else { textarea.addEventListener("input", changed); }
    }
    // Changing file: save what is pending first.
    document.querySelectorAll("nav.files a").forEach(function (link) {
      link.addEventListener("click", function (e) {
        if (timer === null || !canEdit) { return; }
        e.preventDefault();
        clearTimeout(timer);
        timer = null;
        save().then(function () { window.location.assign(link.href); });
      });
    });
    if (canEdit) {
      check();
      window.addEventListener("beforeunload", function (e) {
        if (timer !== null && saveState.textContent === "Editing…") { e.preventDefault(); e.returnValue = ""; }
      });
    } else {
      checkState.textContent = "Read only: a rules editor checks and publishes drafts.";
    }

    var examplesButton = document.getElementById("run-examples");
    if (examplesButton) {
      examplesButton.addEventListener("click", function () {
        say("Running the examples…");
        api("POST", base + "/examples", {file: file}).then(function (answer) {
          var section = document.getElementById("examples");
          var list = document.getElementById("example-list");
          clear(list);
          section.hidden = false;
          if (!answer.ok) { say(answer.data.error || "The examples did not run.", "error"); return; }
          (answer.data.problems || []).forEach(function (p) { list.appendChild(problemItem(p, false)); });
          (answer.data.examples || []).forEach(function (run) {
            var item = el("li", run.ok ? "example ok" : "example error");
            item.setAttribute("data-ok", run.ok ? "yes" : "no");
            item.appendChild(el("span", "where", run.file + ":" + run.line));
            item.appendChild(document.createTextNode(" " + (run.name || run.topic) + ": " + (run.ok ? "passes" : "fails")));
            if (!run.ok && run.report) { item.appendChild(el("pre", null, run.report)); }
            list.appendChild(item);
          });
          if (!(answer.data.examples || []).length && !(answer.data.problems || []).length) {
            list.appendChild(el("li", "muted", "This file has no examples."));
          }
          var failed = (answer.data.examples || []).filter(function (r) { return !r.ok; }).length;
          say(failed ? failed + " examples fail." : "Every example passes.", failed ? "error" : "ok");
        });
      });
    }

    function diffBlock(diff) {
      var pre = el("pre", "diff");
      diff.split("\n").forEach(function (line) {
        var kind = line.indexOf("+++") === 0 || line.indexOf("---") === 0 ? "file" : line.charAt(0) === "@" ? "hunk" :
          line.charAt(0) === "+" ? "add" : line.charAt(0) === "-" ? "del" : "same";
        pre.appendChild(el("span", kind, line));
        pre.appendChild(document.createTextNode("\n"));
      });
      return pre;
    }

    function requestsBlock(title, side) {
      var box = el("div", "side");
      box.appendChild(el("h4", null, title + " (" + side.status + ")"));
      (side.errors || []).forEach(function (e) { box.appendChild(el("p", "error", e)); });
      box.appendChild(el("pre", "requests", JSON.stringify(side.requests, null, 2)));
      return box;
    }

    var previewButton = document.getElementById("preview");
    if (previewButton) {
      previewButton.addEventListener("click", function () {
        var limit = parseInt(document.getElementById("preview-limit").value, 10) || 100;
        previewButton.disabled = true;
        say("Mapping the stored events with the running rules and with this draft…");
        var reveal = document.getElementById("preview-reveal");
        api("POST", base + "/preview", {limit: limit, reveal: !!(reveal && reveal.checked)}).then(function (answer) {
          previewButton.disabled = false;
          var section = document.getElementById("preview-result");
          var events = document.getElementById("preview-events");
          clear(events);
          if (!answer.ok) { say(answer.data.error || "The preview did not run.", "error"); return; }
          var s = answer.data.summary;
          section.hidden = false;
          var summary = document.getElementById("preview-summary");
          summary.textContent = s.previewed + " events: " + s.changed + " change, " + s.unchanged + " unchanged, " +
            s.new_errors + " become errors" + (s.not_previewed ? " (" + s.not_previewed + " not previewed in time)" : "") + ".";
          summary.setAttribute("data-changed", String(s.changed));
          say("Preview done.", "ok");
          if (!answer.data.events.length) {
            events.appendChild(el("p", "muted", "No stored event of these topics yet."));
          }
          answer.data.events.forEach(function (item) {
            var box = el("details", "preview-event" + (item.changed ? " changed" : ""));
            box.setAttribute("data-event", String(item.event_id));
            box.setAttribute("data-changed", item.changed ? "yes" : "no");
            if (item.changed) { box.open = true; }
            var label = "Event " + item.event_id + " · " + item.source + " " + item.topic + " · " +
              (item.becomes_error ? "becomes an error" : item.changed ? "changes" : "unchanged");
            box.appendChild(el("summary", null, label));
            if (item.diff) { box.appendChild(diffBlock(item.diff)); }
            var full = el("details", "full");
            full.appendChild(el("summary", null, "The requests in full"));
            var sides = el("div", "sides");
            sides.appendChild(requestsBlock("Running rules", item.before));
            sides.appendChild(requestsBlock("This draft", item.after));
            full.appendChild(sides);
            box.appendChild(full);
            events.appendChild(box);
          });
        }).catch(function () { previewButton.disabled = false; });
      });
    }

    function publish(force) {
      busy = true;
      updatePublish();
      say("Publishing…");
      var message = document.getElementById("publish-message").value;
      api("POST", base + "/publish", {message: message, force: force}).then(function (answer) {
        busy = false;
        updatePublish();
        if (answer.status === 201) {
          window.location.assign("/console/rules?published=" + answer.data.version);
          return;
        }
        if (answer.status === 409 && !force && /published since/.test(answer.data.error || "") &&
            window.confirm("Another version was published since this draft started. Publish this draft anyway, " +
                           "replacing it?")) {
          publish(true);
          return;
        }
        if (answer.data.problems) { showCheck(answer.data); }
        say(answer.data.error || "Not published.", "error");
      });
    }
    if (publishButton) {
      publishButton.addEventListener("click", function () {
        if (!checkedOk) { return; }
        if (window.confirm("Publish this draft? Every instance runs it within a few seconds.")) { publish(false); }
      });
    }
  });
})();
