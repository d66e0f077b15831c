// A one-time link from a mail carries its secret in the URL's fragment, which the browser never sends to any server
// (no access log, proxy or Referer sees it). Take it from there, drop it from the address bar and history, and post
// it; the server answers with a redirect to the same page without it.
(function () {
  "use strict";

  function postSecret() {
    var form = document.querySelector("form[data-one-time-link]");
    var secret = window.location.hash.slice(1);
    if (!form || !secret) {
      return;
    }
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
    form.elements.secret.value = secret;
    form.submit();
  }

  document.addEventListener("DOMContentLoaded", postSecret);
  // The link opened in a tab already showing this page only changes the fragment: no new page loads.
  window.addEventListener("hashchange", postSecret);
})();
