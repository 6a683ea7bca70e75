// dealreg console: small progressive enhancements (no framework; htmx is vendored).
(function () {
  "use strict";
  var format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    timeZoneName: "short"
  });

  // <time datetime="...Z" title="... UTC">: show the viewer's local time, keep UTC on hover.
  function localTimes(root) {
    root.querySelectorAll("time[datetime]:not([data-local])").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime()) || el.getAttribute("datetime").length <= 10) { return; }
      el.textContent = format.format(when);
      el.setAttribute("data-local", "1");
    });
  }

  // <form data-confirm="...">: ask before an irreversible action.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  // An error summary or confirmation takes the focus, so keyboard and screen-reader users
  // land on what happened.
  function focusNotice(root) {
    var notice = root.querySelector("[data-focus]");
    if (notice) { notice.setAttribute("tabindex", "-1"); notice.focus(); }
  }

  // <input data-viewer-tz>: the viewer's timezone, so that dates typed in a form are read
  // as days where the viewer is (the server falls back to UTC without it).
  function viewerZone(root) {
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    root.querySelectorAll("input[data-viewer-tz]").forEach(function (el) {
      if (!el.value) { el.value = zone; }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    viewerZone(document);
    localTimes(document);
    focusNotice(document);
  });
  document.addEventListener("htmx:afterSettle", function (event) { localTimes(event.target); });
  window.dealregConsole = { localTimes: localTimes };
})();
