// The scheduling dialog (templates/pipeline/_demo_dialog.html): asks for a demo's time, length, place and host.
// board.js calls MeanderDemoDialog.ask before it posts a move into the column with data-dialog="demo-dialog";
// «Flytt demoen» buttons in card menus (data-demo-url) open it here and post the reschedule themselves.
(function () {
  "use strict";

  function dialogParts() {
    return {
      dialog: document.getElementById("demo-dialog"),
      form: document.getElementById("demo-dialog-form"),
      title: document.getElementById("demo-dialog-title"),
      lead: document.getElementById("demo-dialog-lead"),
      at: document.getElementById("demo-dialog-at"),
      minutes: document.getElementById("demo-dialog-minutes"),
      location: document.getElementById("demo-dialog-location"),
      host: document.getElementById("demo-dialog-host"),
    };
  }

  function localNow() {
    var now = new Date();
    now.setSeconds(0, 0);
    return new Date(now.getTime() - now.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  }

  // ask(card, onConfirm, onCancel[, current]): onConfirm gets {demo_at, demo_minutes, demo_location, demo_host}.
  // `current` prefills a reschedule: {at, minutes, location, host}.
  function ask(card, onConfirm, onCancel, current) {
    var parts = dialogParts();
    if (!parts.dialog) return false;
    current = current || {};
    parts.title.textContent = current.at ? parts.title.dataset.moveTitle : parts.title.dataset.scheduleTitle;
    parts.lead.textContent = (card && card.dataset.organization) || "";
    parts.at.min = localNow();
    parts.at.value = current.at || "";
    parts.minutes.value = current.minutes || parts.minutes.dataset.default;
    parts.location.value = current.location || "";
    var host = current.host || (card && card.dataset.ownerId) || parts.host.dataset.me;
    if (parts.host.querySelector('option[value="' + host + '"]')) parts.host.value = host;

    function onClose() {
      parts.dialog.removeEventListener("close", onClose);
      if (parts.dialog.returnValue === "confirm") {
        onConfirm({
          demo_at: parts.at.value,
          demo_minutes: parts.minutes.value,
          demo_location: parts.location.value,
          demo_host: parts.host.value,
        });
      } else if (onCancel) {
        onCancel();
      }
    }
    parts.dialog.addEventListener("close", onClose);
    parts.dialog.returnValue = "";
    parts.dialog.showModal();
    parts.at.focus();
    return true;
  }

  window.MeanderDemoDialog = { ask: ask };

  // «Flytt demoen» in a card menu (a link to the lead page's demo section without JavaScript): ask, then post to the lead's demo URL; the answer carries the changed card.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-demo-url]") : null;
    if (!button || !document.getElementById("demo-dialog")) return;
    event.preventDefault();
    var card = button.closest(".lead-card");
    var menu = button.closest("details");
    if (menu) menu.open = false;
    ask(card, function (values) {
      // The demo as this card showed it: someone else's move in the meantime makes the server answer 409.
      values.demo_sequence = button.dataset.demoSequence;
      htmx.ajax("POST", button.dataset.demoUrl, {
        source: card || button,
        target: "#board-messages",
        swap: "innerHTML",
        values: values,
      });
    }, function () {
      var summary = menu && menu.querySelector("summary");
      if (summary) summary.focus();
    }, {
      at: button.dataset.demoAt,
      minutes: button.dataset.demoMinutes,
      location: button.dataset.demoLocation,
      host: button.dataset.demoHost,
    });
  });
})();
