// Site-wide behaviour. No inline script anywhere: everything the pages need lives in static files.
(function () {
  "use strict";

  // After htmx swaps in a form with errors or a notice, move focus there so screen readers announce it.
  document.addEventListener("htmx:afterSwap", function () {
    var alert = document.querySelector("form .error-summary, form .notice");
    if (alert) {
      alert.focus();
    }
  });
})();
