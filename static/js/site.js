// Site-wide behaviour. No inline script anywhere: everything the pages need lives in static files.
(function () {
  "use strict";

  // A page that comes back with errors (a failed save) starts at its error summary, announced and in view.
  document.addEventListener("DOMContentLoaded", function () {
    var summary = document.querySelector(".error-summary");
    if (summary) {
      summary.focus();
      summary.scrollIntoView({ block: "center" });
    }
  });

  // After htmx swaps in a form with errors or a notice, move focus there so screen readers announce it.
  document.addEventListener("htmx:afterSwap", function () {
    var alert = document.querySelector("form .error-summary, form .notice");
    if (alert) {
      alert.focus();
    }
  });
})();
