// Live notifications: keeps the bell's count current and shows a toast for each new one.
// Pages work without this file (the next page load shows the count).
(function () {
  "use strict";
  if (!window.EventSource) return;
  var bell = document.querySelector("[data-notification-bell]");
  if (!bell) return;
  var count = bell.querySelector("[data-bell-count]");
  var summary = bell.querySelector("summary");
  var lastId = bell.dataset.newest || "";
  var failures = 0;
  var source = null;
  var timer = null;
  var toasts = null;

  function setCount(n) {
    count.textContent = String(n);
    count.hidden = n <= 0;
    summary.setAttribute("aria-label", "Notifications, " + n + " unread");
  }

  function addToList(note) {
    var list = bell.querySelector(".bell-list");
    if (!list) {
      var empty = bell.querySelector(".bell-empty");
      list = document.createElement("ul");
      list.className = "bell-list";
      if (empty) empty.replaceWith(list);
      else bell.querySelector(".bell-panel").insertBefore(list, bell.querySelector(".bell-all"));
    }
    var item = document.createElement("li");
    item.className = "note note-unread note-" + note.type;
    var main = document.createElement("div");
    main.className = "note-main";
    var title = document.createElement("span");
    title.className = "note-title";
    if (note.link && note.link.charAt(0) === "/" && note.link.charAt(1) !== "/") {
      var a = document.createElement("a");
      a.href = note.link;
      a.textContent = note.title;
      title.appendChild(a);
    } else {
      title.textContent = note.title;
    }
    var message = document.createElement("span");
    message.className = "note-message";
    message.textContent = note.message;
    var time = document.createElement("time");
    time.className = "note-time";
    time.dateTime = note.created_at;
    time.textContent = "just now";
    main.append(title, message, time);
    var dot = document.createElement("span");
    dot.className = "note-dot";
    dot.title = "Unread";
    item.append(dot, main);
    list.insertBefore(item, list.firstChild);
    while (list.children.length > 10) list.removeChild(list.lastChild);
  }

  function toast(note) {
    if (!toasts) {
      toasts = document.createElement("div");
      toasts.className = "toasts";
      toasts.setAttribute("role", "status");
      toasts.setAttribute("aria-live", "polite");
      document.body.appendChild(toasts);
    }
    var el = document.createElement("div");
    el.className = "toast toast-" + note.type;
    el.textContent = note.title;
    toasts.appendChild(el);
    setTimeout(function () { el.remove(); }, 6000);
  }

  function connect() {
    timer = null;
    var url = "/notifications/stream" + (lastId ? "?last_event_id=" + encodeURIComponent(lastId) : "");
    source = new EventSource(url);
    source.onopen = function () { failures = 0; };
    source.addEventListener("notification", function (event) {
      var note;
      try { note = JSON.parse(event.data); } catch (e) { return; }
      lastId = event.lastEventId || note.id;
      setCount(note.unread);
      addToList(note);
      toast(note);
    });
    source.onerror = function () {
      // Reconnect ourselves with exponential back-off (1 s … 60 s, with jitter), resuming
      // after the last notification we saw.
      source.close();
      failures += 1;
      var delay = Math.min(60000, 1000 * Math.pow(2, Math.min(failures - 1, 6)));
      if (!timer) timer = setTimeout(connect, delay / 2 + Math.random() * delay / 2);
    };
  }

  window.addEventListener("pagehide", function () { if (source) source.close(); });
  connect();
})();
