// 12345 console: the one script. Refreshes panels marked data-poll (the supervisor's live alerts)
// without reloading the page, and marks alerts that were not there before.
(function () {
  "use strict";
  function poll(box) {
    var url = box.getAttribute("data-poll");
    var every = parseInt(box.getAttribute("data-every") || "5000", 10);
    var seen = {};
    box.querySelectorAll("[data-key]").forEach(function (el) { seen[el.getAttribute("data-key")] = true; });
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (r.redirected && r.url.indexOf("/login") >= 0) {  // the session ended: log in again, come back here
            window.location.href = "/login?next=" + encodeURIComponent(window.location.pathname + window.location.search);
            return Promise.reject(401);
          }
          return r.ok ? r.text() : Promise.reject(r.status);
        })
        .then(function (html) {
          box.innerHTML = html;
          box.querySelectorAll("[data-key]").forEach(function (el) {
            var key = el.getAttribute("data-key");
            if (!seen[key]) { el.classList.add("fresh"); seen[key] = true; }
          });
        })
        .catch(function () { /* keep the last list; the next tick tries again */ })
        .then(function () { setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(poll);
  });
})();
