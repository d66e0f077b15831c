// The pipeline board: drag and drop (mouse, touch) and the keyboard "Flytt til…" control both end in
// one POST per move. The server decides; a refused card snaps back to where it was.
(function () {
  "use strict";

  // The rules come from the markup the server renders: each card's move URL, and on each column whether a
  // move there asks for details first (data-dialog-title) and needs a reason (data-requires-reason).
  var pendingMoves = {}; // lead id -> { origin, byKeyboard }

  function columnStatus(element) {
    var column = element.closest("[data-status]");
    return column ? column.dataset.status : null;
  }

  function columnFor(status) {
    return document.querySelector('.column[data-status="' + CSS.escape(status) + '"]');
  }

  function filterArgs() {
    var board = document.getElementById("board");
    try {
      return board ? JSON.parse(board.dataset.filterArgs || "{}") : {};
    } catch (error) {
      return {};
    }
  }

  function announce(text, kind) {
    var region = document.getElementById("board-messages");
    if (!region) return;
    var paragraph = document.createElement("p");
    paragraph.className = "board-message board-message--" + (kind || "info");
    paragraph.textContent = text;
    region.replaceChildren(paragraph);
  }

  function snapBack(card, origin) {
    if (!origin) return;
    card.remove();
    origin.list.insertBefore(card, origin.list.children[origin.index] || null);
  }

  function markColumns(card) {
    var allowed = (card.dataset.allowed || "").split(" ");
    var from = columnStatus(card);
    document.querySelectorAll(".column[data-status]").forEach(function (column) {
      var status = column.dataset.status;
      var isAllowed = allowed.indexOf(status) !== -1;
      column.classList.toggle("column--allowed", isAllowed);
      column.classList.toggle("column--forbidden", !isAllowed && status !== from);
      column.setAttribute("aria-disabled", String(!isAllowed && status !== from));
    });
  }

  function clearColumns() {
    document.querySelectorAll(".column[data-status]").forEach(function (column) {
      column.classList.remove("column--allowed", "column--forbidden");
      column.removeAttribute("aria-disabled");
    });
  }

  function postMove(card, status, details, origin, byKeyboard) {
    var leadId = card.dataset.leadId;
    pendingMoves[leadId] = { origin: origin, byKeyboard: byKeyboard };
    card.classList.add("is-saving");
    card.setAttribute("aria-busy", "true");
    var values = Object.assign({ status: status }, details || {}, filterArgs());
    htmx.ajax("POST", card.dataset.moveUrl, {
      source: card,
      target: "#board-messages",
      swap: "innerHTML",
      values: values,
    });
  }

  function requestMove(card, status, origin, byKeyboard) {
    var column = columnFor(status);
    if (!column || !column.dataset.dialogTitle) {
      postMove(card, status, {}, origin, byKeyboard);
      return;
    }
    askForDetails(card, column, function (details) {
      postMove(card, status, details, origin, byKeyboard);
    }, function () {
      snapBack(card, origin);
      announce("Flyttingen er avbrutt. Kortet står der det sto.", "info");
    });
  }

  // A reason where the column requires one, and an optional note: asked in one native <dialog> (focus handled
  // by the browser).
  function askForDetails(card, column, onConfirm, onCancel) {
    var dialog = document.getElementById("move-dialog");
    var form = document.getElementById("move-dialog-form");
    var reason = document.getElementById("move-reason");
    var note = document.getElementById("move-note");
    var reasonError = document.getElementById("move-reason-error");
    var needsReason = column.dataset.requiresReason === "true";
    document.getElementById("move-dialog-title").textContent = column.dataset.dialogTitle;
    document.getElementById("move-dialog-lead").textContent = card.dataset.organization || "";
    form.querySelector("[data-for=reason]").hidden = !needsReason;
    reason.required = needsReason;
    reason.value = "";
    note.value = "";
    reasonError.hidden = true;

    function onSubmit(event) {
      var confirmed = event.submitter && event.submitter.value === "confirm";
      if (confirmed && needsReason && !reason.value) {
        event.preventDefault();
        reasonError.hidden = false;
        reason.setAttribute("aria-invalid", "true");
        reason.setAttribute("aria-describedby", "move-reason-error");
        reason.focus();
      }
    }
    function onClose() {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("close", onClose);
      reason.removeAttribute("aria-invalid");
      if (dialog.returnValue === "confirm") {
        onConfirm({ reason: needsReason ? reason.value : "", note: note.value });
      } else {
        onCancel();
      }
    }
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("close", onClose);
    dialog.returnValue = "";
    dialog.showModal();
    (needsReason ? reason : note).focus();
  }

  function initSortable(list) {
    if (list.dataset.sortableReady) return;
    list.dataset.sortableReady = "true";
    Sortable.create(list, {
      group: "board",
      animation: 150,
      draggable: ".lead-card",
      filter: ".is-saving, .load-more, select, button, input, textarea",
      preventOnFilter: false,
      delayOnTouchOnly: true,
      delay: 150,
      onStart: function (event) {
        document.body.classList.add("is-dragging");
        markColumns(event.item);
      },
      onEnd: function (event) {
        document.body.classList.remove("is-dragging");
        clearColumns();
        var origin = { list: event.from, index: event.oldIndex };
        if (event.from === event.to) {
          snapBack(event.item, origin); // order within a column is by date, not by hand
          return;
        }
        requestMove(event.item, columnStatus(event.to), origin, false);
      },
    });
  }

  htmx.onLoad(function (root) {
    if (root.matches && root.matches("ol.cards")) initSortable(root);
    if (root.querySelectorAll) root.querySelectorAll("ol.cards").forEach(initSortable);
    var card = root.closest ? root.closest(".lead-card") : null;
    var pending = card && pendingMoves[card.dataset.leadId];
    if (pending) {
      delete pendingMoves[card.dataset.leadId];
      if (pending.byKeyboard) {
        var link = card.querySelector(".lead-card-title a");
        if (link) link.focus();
      }
    }
  });

  // The keyboard and screen-reader path: the card's own "Flytt til…" form.
  document.addEventListener("submit", function (event) {
    var form = event.target.closest(".move-form");
    if (!form) return;
    event.preventDefault();
    var card = form.closest(".lead-card");
    requestMove(card, form.elements.status.value, null, true);
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var card = event.detail.elt;
    if (!card || !card.dataset || !pendingMoves[card.dataset.leadId]) return;
    // Refusals (409, 422) are swapped into the message region, so htmx counts them as successful: read the status.
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (status >= 200 && status < 300) return; // the new card arrives out of band; onLoad finishes the move
    var pending = pendingMoves[card.dataset.leadId];
    delete pendingMoves[card.dataset.leadId];
    card.classList.remove("is-saving");
    card.removeAttribute("aria-busy");
    snapBack(card, pending.origin);
    if (!status) {
      announce("Fikk ikke kontakt med serveren. Kortet står der det sto; prøv igjen.", "error");
    }
    if (pending.byKeyboard) {
      var select = card.querySelector(".move-form select");
      if (select) select.focus();
    }
  });

  // New bookings arrive every 30 s, but never in the middle of a drag, a dialog or a move.
  function boardIsBusy() {
    var dialog = document.getElementById("move-dialog");
    return document.body.classList.contains("is-dragging") || (dialog && dialog.open) ||
      Object.keys(pendingMoves).length > 0;
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt.id === "board-poll" && boardIsBusy()) event.preventDefault();
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.elt.id === "board-poll" && boardIsBusy()) event.detail.shouldSwap = false;
  });
})();
