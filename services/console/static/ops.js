// dealreg console, owner and manager screens: live countdowns, "select all", and showing
// only the resolution fields of the chosen outcome. No framework; htmx does the polling.
(function () {
  "use strict";

  function span(ms) {
    var minutes = Math.floor(Math.abs(ms) / 60000);
    var days = Math.floor(minutes / 1440), hours = Math.floor((minutes % 1440) / 60);
    var mins = minutes % 60, secs = Math.floor(Math.abs(ms) / 1000) % 60;
    function two(n) { return (n < 10 ? "0" : "") + n; }
    if (days) { return days + "d " + hours + "h"; }
    if (hours) { return hours + "h " + two(mins) + "m"; }
    return mins + "m " + two(secs) + "s";
  }

  // <span class="countdown" data-due="ISO">: time left, or overdue (red) once it passed.
  function tick() {
    var now = Date.now();
    document.querySelectorAll(".countdown[data-due]").forEach(function (el) {
      var due = Date.parse(el.getAttribute("data-due"));
      if (isNaN(due)) { return; }
      var left = due - now;
      el.textContent = left > 0 ? span(left) + " left" : "overdue by " + span(-left);
      el.classList.toggle("overdue", left <= 0);
      var working = el.parentNode && el.parentNode.querySelector(".working");
      if (working && left <= 0) { working.hidden = true; }
      var row = el.closest("tr");
      if (row) { row.classList.toggle("overdue", left <= 0); }
    });
  }

  // The "select all" box of the bulk-acknowledge table.
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target && target.id === "pick-all") {
      document.querySelectorAll("input.pick").forEach(function (box) { box.checked = target.checked; });
    }
    if (target && target.name === "outcome") { outcomeFields(); }
  });

  // The resolve form shows the fields of the chosen outcome only.
  function outcomeFields() {
    var chosen = document.querySelector("input[name=outcome]:checked");
    document.querySelectorAll("fieldset[data-outcome]").forEach(function (set) {
      set.hidden = !chosen || set.getAttribute("data-outcome") !== chosen.value;
    });
  }

  // The ownership look-up form shows the fields of the chosen key.
  function lookupFields() {
    var chosen = document.querySelector("input[name=by]:checked");
    document.querySelectorAll("[data-by]").forEach(function (el) {
      el.hidden = !!chosen && el.getAttribute("data-by").split(" ").indexOf(chosen.value) < 0;
    });
  }
  document.addEventListener("change", function (event) {
    if (event.target && event.target.name === "by") { lookupFields(); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    tick(); outcomeFields(); lookupFields();
    window.setInterval(tick, 1000);
  });
  document.addEventListener("htmx:afterSettle", tick);
})();
