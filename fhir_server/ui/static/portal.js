// The portal's script: it only enhances pages that work without it.
// - The error summary takes focus when a page shows errors.
// - Signed in, a warning opens before the session would end for inactivity; "Stay
//   signed in" restarts the server's idle clock without leaving the page.
"use strict";

(function () {
  function focusErrorSummary() {
    var summary = document.querySelector(".error-summary");
    if (summary) {
      summary.focus();
    }
  }

  function idleWarning() {
    var body = document.body;
    var dialog = document.getElementById("idle-warning");
    var idle = parseInt(body.getAttribute("data-idle-seconds") || "", 10);
    var warnBefore = parseInt(body.getAttribute("data-idle-warning") || "", 10);
    if (!dialog || !idle || typeof dialog.showModal !== "function") {
      return;
    }
    var warnTimer = null;
    var endTimer = null;

    function start() {
      window.clearTimeout(warnTimer);
      window.clearTimeout(endTimer);
      warnTimer = window.setTimeout(function () {
        dialog.showModal();
      }, Math.max(idle - warnBefore, 0) * 1000);
      endTimer = window.setTimeout(function () {
        window.location.assign(body.getAttribute("data-signed-out"));
      }, idle * 1000);
    }

    var keepAlive = dialog.querySelector("form.js-keep-alive");
    keepAlive.addEventListener("submit", function (event) {
      event.preventDefault();
      fetch(keepAlive.action, {
        method: "POST",
        body: new FormData(keepAlive),
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      }).then(function (response) {
        if (response.ok) {
          dialog.close();
          start();
        } else {
          keepAlive.submit();
        }
      }, function () {
        keepAlive.submit();
      });
    });
    // Escape keeps the user signed in, as the button does (closing alone would not).
    dialog.addEventListener("cancel", function (event) {
      event.preventDefault();
      keepAlive.requestSubmit();
    });
    start();
  }

  focusErrorSummary();
  idleWarning();
})();
