// The pipeline board: drag and drop (mouse, touch), the card menu (keyboard, screen readers), arrow keys between
// cards, the 30 s poll and the column switcher on phones. Every rule comes from the markup the server renders:
// which columns a card may enter (data-allowed), the move URL, which moves ask for details. The server decides.
(function () {
  "use strict";

  var pendingMoves = {}; // lead id -> { origin, focusAfter }
  var refusedTarget = null; // the column a dragged card was last held over and may not enter

  function board() {
    return document.getElementById("board");
  }

  function columnOf(element) {
    return element ? element.closest(".column[data-status]") : null;
  }

  function columnLabel(status) {
    var column = document.getElementById("column-" + status);
    return column ? column.dataset.label : status;
  }

  function filterArgs() {
    try {
      return board() ? JSON.parse(board().dataset.filterArgs || "{}") : {};
    } catch (error) {
      return {};
    }
  }

  function columnElement(status) {
    return document.getElementById("column-" + status);
  }

  // A move into a column with data-dialog-title asks for details first; data-requires-reason makes the reason required.
  function needsDetails(status) {
    var column = columnElement(status);
    return Boolean(column && column.dataset.dialogTitle);
  }

  // The board's sentences live in its markup (data-message-*), with {placeholders} filled in here.
  function message(name, values) {
    var text = board() ? board().dataset["message" + name] || "" : "";
    return text.replace(/\{(\w+)\}/g, function (_, key) {
      return values && key in values ? values[key] : "";
    });
  }

  function announce(text, kind) {
    var region = document.getElementById("board-messages");
    if (!region) return;
    var paragraph = document.createElement("p");
    paragraph.className = "board-message board-message--" + (kind || "info");
    paragraph.textContent = text;
    region.replaceChildren(paragraph);
  }

  function menuButton(card) {
    return card ? card.querySelector(".card-menu-button") : null;
  }

  function snapBack(card, origin) {
    if (!origin) return;
    card.remove();
    origin.list.insertBefore(card, origin.list.children[origin.index] || null);
  }

  // --- placing cards the server sent (moves, menu actions, the poll) ---------------------------------------

  function firstCardSlot(list) {
    return list.querySelector(":scope > .lead-card") || list.querySelector(":scope > .load-more");
  }

  function placeCards(container) {
    container.querySelectorAll("template[data-lead-id]").forEach(function (template) {
      var fresh = template.content.firstElementChild.cloneNode(true);
      var leadId = template.dataset.leadId;
      var existing = document.getElementById("card-" + leadId);
      var list = document.getElementById("cards-" + template.dataset.status);
      template.remove();
      if (existing && existing.dataset.status === template.dataset.status) {
        existing.replaceWith(fresh);
      } else if (list && (existing || "changed" in template.dataset || "arrived" in template.dataset)) {
        if (existing) existing.remove();
        list.insertBefore(fresh, firstCardSlot(list));
      } else {
        if (existing) existing.remove();
        return; // a card this page never loaded (beyond "Vis flere"): the counts say it is there
      }
      htmx.process(fresh);
      if ("arrived" in template.dataset && !existing) {
        fresh.classList.add("lead-card--new");
        announce(message("NewLead", { organization: fresh.dataset.organization, column: columnLabel(fresh.dataset.status) }));
      }
      var pending = pendingMoves[leadId];
      if (pending) {
        delete pendingMoves[leadId];
        if (pending.focusAfter) menuButton(fresh).focus();
      }
    });
    container.querySelectorAll("template[data-clock-for]").forEach(function (template) {
      var card = document.getElementById("card-" + template.dataset.clockFor);
      var clock = card && card.querySelector("time[data-clock]");
      if (clock) clock.textContent = template.content.textContent;
      template.remove();
    });
    updateSwitcherCounts();
  }

  // --- moves ---------------------------------------------------------------------------------------------

  function postMove(card, status, details, origin, focusAfter) {
    var leadId = card.dataset.leadId;
    pendingMoves[leadId] = { origin: origin, focusAfter: focusAfter };
    card.classList.add("is-saving");
    card.setAttribute("aria-busy", "true");
    htmx.ajax("POST", card.dataset.moveUrl, {
      source: card,
      target: "#board-messages",
      swap: "innerHTML",
      values: Object.assign({ status: status }, details || {}, filterArgs()),
    });
  }

  function cancelMove(card, origin, focusAfter) {
    snapBack(card, origin);
    announce(message("Cancelled"), "info");
    if (focusAfter) menuButton(card).focus();
  }

  function requestMove(card, status, origin, focusAfter) {
    var column = columnElement(status);
    // A column with data-dialog names the dialog that asks for the move's details (demo_dialog.js: the demo's time).
    if (column && column.dataset.dialog === "demo-dialog" && window.MeanderDemoDialog) {
      window.MeanderDemoDialog.ask(card, function (demo) {
        postMove(card, status, demo, origin, focusAfter);
      }, function () {
        cancelMove(card, origin, focusAfter);
      });
      return;
    }
    if (!needsDetails(status)) {
      postMove(card, status, {}, origin, focusAfter);
      return;
    }
    askForDetails(card, status, function (details) {
      postMove(card, status, details, origin, focusAfter);
    }, function () {
      cancelMove(card, origin, focusAfter);
    });
  }

  // Moves that need details ask in one native <dialog> (focus handled by the browser).
  function askForDetails(card, status, onConfirm, onCancel) {
    var dialog = document.getElementById("move-dialog");
    var form = document.getElementById("move-dialog-form");
    var reason = document.getElementById("move-reason");
    var note = document.getElementById("move-note");
    var reasonError = document.getElementById("move-reason-error");
    var reasonField = form.querySelector("[data-for=reason]");
    var column = columnElement(status);
    var needsReason = column.dataset.requiresReason === "true";
    // data-requires-value: the agreed annual value; its rule is the server's (a refusal is a 422 that keeps the card).
    var needsValue = column.dataset.requiresValue === "true";
    var value = document.getElementById("move-deal-value");
    var valueError = document.getElementById("move-deal-value-error");
    form.querySelector("[data-for=deal_value]").hidden = !needsValue;
    value.required = needsValue;
    value.value = "";
    valueError.hidden = true;
    document.getElementById("move-dialog-title").textContent = column.dataset.dialogTitle;
    document.getElementById("move-dialog-lead").textContent = card.dataset.organization || "";
    reasonField.hidden = !needsReason;
    // A lost lead's booked demo is cancelled, and the prospect is told: the dialog says so (the text is the server's).
    document.getElementById("move-dialog-demo").hidden = !(needsReason && card.hasAttribute("data-has-demo"));
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
      } else if (confirmed && needsValue && !value.value.trim()) {
        event.preventDefault();
        valueError.hidden = false;
        value.setAttribute("aria-invalid", "true");
        value.setAttribute("aria-describedby", "move-deal-value-hint move-deal-value-error");
        value.focus();
      }
    }
    function onClose() {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("close", onClose);
      reason.removeAttribute("aria-invalid");
      value.removeAttribute("aria-invalid");
      if (dialog.returnValue === "confirm") {
        var details = { reason: needsReason ? reason.value : "", note: note.value };
        if (needsValue) details.deal_value = value.value;
        onConfirm(details);
      } else {
        onCancel();
      }
    }
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("close", onClose);
    dialog.returnValue = "";
    dialog.showModal();
    (needsReason ? reason : needsValue ? value : note).focus();
  }

  // --- drag and drop ---------------------------------------------------------------------------------------

  function allowedFor(card) {
    return (card.dataset.allowed || "").split(" ").filter(Boolean);
  }

  function markColumns(card) {
    var allowed = allowedFor(card);
    var from = card.dataset.status;
    document.querySelectorAll(".column[data-status]").forEach(function (column) {
      var status = column.dataset.status;
      var refused = allowed.indexOf(status) === -1 && status !== from;
      column.classList.toggle("column--allowed", allowed.indexOf(status) !== -1);
      column.classList.toggle("column--forbidden", refused);
      column.setAttribute("aria-disabled", String(refused));
    });
  }

  function clearColumns() {
    document.querySelectorAll(".column[data-status]").forEach(function (column) {
      column.classList.remove("column--allowed", "column--forbidden");
      column.removeAttribute("aria-disabled");
    });
  }

  function trackRefusedTarget(event) {
    var column = columnOf(document.elementFromPoint(event.clientX, event.clientY));
    refusedTarget = column && column.classList.contains("column--forbidden") ? column : null;
  }

  function initSortable(list) {
    if (list.dataset.sortableReady) return;
    list.dataset.sortableReady = "true";
    Sortable.create(list, {
      group: {
        name: "board",
        // A column the card may not enter refuses it here: no drop, no request, no dialog.
        put: function (to, from, dragged) {
          return allowedFor(dragged).indexOf(to.el.dataset.status) !== -1;
        },
      },
      animation: 150,
      draggable: ".lead-card:not([data-final])",
      filter: ".is-saving, .load-more, .card-menu, select, button, input, textarea",
      preventOnFilter: false,
      delayOnTouchOnly: true,
      delay: 150,
      onStart: function (event) {
        document.body.classList.add("is-dragging");
        refusedTarget = null;
        document.addEventListener("dragover", trackRefusedTarget);
        document.addEventListener("pointermove", trackRefusedTarget);
        markColumns(event.item);
      },
      onEnd: function (event) {
        document.body.classList.remove("is-dragging");
        document.removeEventListener("dragover", trackRefusedTarget);
        document.removeEventListener("pointermove", trackRefusedTarget);
        clearColumns();
        var origin = { list: event.from, index: event.oldIndex };
        if (event.from === event.to) {
          snapBack(event.item, origin); // a column's order is the server's (due date or age), not by hand
          if (refusedTarget) {
            announce(message("Refused", { column: columnLabel(refusedTarget.dataset.status) }), "error");
          }
          return;
        }
        requestMove(event.item, event.to.dataset.status, origin, false);
      },
    });
  }

  // --- the card menu -------------------------------------------------------------------------------------

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var card = form.closest ? form.closest(".lead-card") : null;
    if (!card || !board()) return;
    event.preventDefault();
    var menu = form.closest("details");
    if (form.classList.contains("move-form")) {
      var status = event.submitter ? event.submitter.value : "";
      if (menu) menu.open = false;
      requestMove(card, status, null, true);
      return;
    }
    // Owner and next step: the answer carries the changed card, and focus returns to its menu.
    pendingMoves[card.dataset.leadId] = { origin: null, focusAfter: true };
    var values = Object.fromEntries(new FormData(form).entries());
    htmx.ajax("POST", form.action, { source: card, target: "#board-messages", swap: "innerHTML", values: values });
  });

  // Escape closes an open card menu and puts focus back on its button.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var menu = event.target.closest ? event.target.closest("details.card-menu[open]") : null;
    if (!menu) return;
    menu.open = false;
    menu.querySelector("summary").focus();
  });

  // --- arrow keys between cards and columns -------------------------------------------------------------

  function cardsIn(column) {
    return column ? Array.prototype.slice.call(column.querySelectorAll(".cards > .lead-card")) : [];
  }

  function visibleColumns() {
    return Array.prototype.slice.call(document.querySelectorAll(".column[data-status]")).filter(function (column) {
      return column.offsetParent !== null && cardsIn(column).length > 0;
    });
  }

  document.addEventListener("keydown", function (event) {
    var keys = { ArrowUp: 1, ArrowDown: 1, ArrowLeft: 1, ArrowRight: 1, Home: 1, End: 1 };
    if (!keys[event.key] || !event.target.matches || !event.target.matches(".card-menu-button")) return;
    var card = event.target.closest(".lead-card");
    var column = columnOf(card);
    var cards = cardsIn(column);
    var index = cards.indexOf(card);
    var target = null;
    if (event.key === "ArrowDown") target = cards[index + 1];
    if (event.key === "ArrowUp") target = cards[index - 1];
    if (event.key === "Home") target = cards[0];
    if (event.key === "End") target = cards[cards.length - 1];
    if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      var columns = visibleColumns();
      var next = columns[columns.indexOf(column) + (event.key === "ArrowRight" ? 1 : -1)];
      var there = cardsIn(next);
      target = there[Math.min(index, there.length - 1)];
    }
    if (!target) return;
    event.preventDefault();
    menuButton(target).focus();
    target.scrollIntoView({ block: "nearest", inline: "nearest" });
  });

  // --- "Vis flere": focus goes to the first card it brought ----------------------------------------------

  var loadingMore = null; // { list, count }
  document.addEventListener("htmx:beforeRequest", function (event) {
    var item = event.detail.elt.closest ? event.detail.elt.closest(".load-more") : null;
    if (item) loadingMore = { list: item.parentElement, count: cardsIn(columnOf(item)).length };
  });

  // --- the phone's column switcher ------------------------------------------------------------------------

  function updateSwitcherCounts() {
    document.querySelectorAll("[data-count-of]").forEach(function (badge) {
      var count = document.getElementById("count-" + badge.dataset.countOf);
      if (count) badge.textContent = count.dataset.count;
    });
  }

  function showColumn(status) {
    var element = board();
    if (!element) return;
    element.dataset.activeColumn = status;
    document.querySelectorAll(".column-switch").forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.dataset.column === status));
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest(".column-switch") : null;
    if (button) showColumn(button.dataset.column);
  });

  // --- after every swap ------------------------------------------------------------------------------------

  htmx.onLoad(function (root) {
    if (root.matches && root.matches("ol.cards")) initSortable(root);
    if (root.querySelectorAll) root.querySelectorAll("ol.cards").forEach(initSortable);
    if (root.id === "board" || (root.querySelector && root.querySelector("#board"))) {
      var pressed = document.querySelector(".column-switch[aria-pressed=true]") || document.querySelector(".column-switch");
      if (pressed) showColumn(pressed.dataset.column);
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && (target.id === "board-messages" || target.id === "board-inbox")) placeCards(target);
    if (loadingMore && loadingMore.list.isConnected) {
      var cards = loadingMore.list.querySelectorAll(":scope > .lead-card");
      var first = cards[loadingMore.count];
      loadingMore = null;
      if (first) menuButton(first).focus();
    }
    updateSwitcherCounts();
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var card = event.detail.elt;
    if (!card || !card.dataset || !pendingMoves[card.dataset.leadId]) return;
    // Refusals (409, 422) are swapped into the message region, so htmx counts them as successful: read the status.
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (status >= 200 && status < 300) return; // the changed card arrives in the answer; placeCards finishes
    var pending = pendingMoves[card.dataset.leadId];
    delete pendingMoves[card.dataset.leadId];
    card.classList.remove("is-saving");
    card.removeAttribute("aria-busy");
    snapBack(card, pending.origin);
    if (!status) announce(message("Offline"), "error");
    if (pending.focusAfter) menuButton(card).focus();
  });

  // The poll never lands in the middle of a drag, a dialog, an open menu or a move.
  function boardIsBusy() {
    return document.body.classList.contains("is-dragging") || document.querySelector("dialog[open]") !== null ||
      document.querySelector("details.card-menu[open]") !== null || Object.keys(pendingMoves).length > 0;
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt.id === "board-poll" && boardIsBusy()) event.preventDefault();
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.elt.id === "board-poll" && boardIsBusy()) event.detail.shouldSwap = false;
  });

  // A column's order is part of the filter form (form="board-filters"), but lives outside it.
  document.addEventListener("change", function (event) {
    if (!event.target.matches || !event.target.matches(".column-sort")) return;
    htmx.trigger(document.getElementById("board-filters"), "submit");
  });
})();
