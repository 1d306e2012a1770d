// The console's only script: live parts of a page re-rendered by the server, and confirmations.
// An element with data-live="URL" data-every="SECONDS" has its content replaced by the HTML fragment
// at URL every so often (the server escapes every value, as in the page). Without script the pages
// work the same; they only stop refreshing.
"use strict";
(function () {
  function refresh(el) {
    var every = Math.max(1, parseInt(el.getAttribute("data-every") || "5", 10)) * 1000;
    function tick() {
      if (!document.body.contains(el) || !el.hasAttribute("data-live")) { return; }
      if (document.hidden) { setTimeout(tick, every); return; }
      fetch(el.getAttribute("data-live"), {credentials: "same-origin", headers: {"Accept": "text/html"}})
        .then(function (r) {
          if (r.status === 401) { window.location.assign("/console/sign-in"); return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== undefined) {
            el.innerHTML = html;
            if (el.querySelector("[data-finished]")) { el.removeAttribute("data-live"); }
          }
        })
        .catch(function () {})
        .then(function () { setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(refresh);
  });
  document.addEventListener("submit", function (e) {
    var form = e.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { e.preventDefault(); }
  });
})();
