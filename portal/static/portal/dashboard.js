/* Live progress on the dashboard. Asks the server what its rows show now, every second
   while a run goes on or waits in the queue (every 15 s otherwise: a scheduled run starts
   on its own), and puts the HTML it gets in place. Every text comes from the server, already
   translated; with JavaScript off the page is the same, only not live. */
(function () {
  "use strict";
  var root = document.getElementById("profiles");
  if (!root || !window.fetch) { return; }
  var profiles = Array.prototype.map.call(root.querySelectorAll("[data-profile]"),
    function (card) { return "profile=" + encodeURIComponent(card.dataset.profile); });
  if (!profiles.length) { return; }
  var url = root.dataset.statusUrl + "?" + profiles.join("&");
  var busyDelay = parseInt(root.dataset.pollBusy, 10) || 1000;
  var idleDelay = parseInt(root.dataset.pollIdle, 10) || 15000;
  var shown = {};   // what each cell was last given: the browser rewrites innerHTML
  var timer = null;

  function schedule(delay) {
    window.clearTimeout(timer);
    timer = window.setTimeout(poll, delay);
  }

  function update(row) {
    var tr = root.querySelector('tr[data-row="' + row.key + '"]');
    if (!tr) { return; }
    tr.classList.toggle("busy", row.busy);
    Object.keys(row.cells).forEach(function (name) {
      var id = row.key + ":" + name;
      var cell = tr.querySelector('[data-cell="' + name + '"]');
      if (cell && shown[id] !== row.cells[name]) {
        cell.innerHTML = row.cells[name];
        shown[id] = row.cells[name];
      }
    });
  }

  function poll() {
    if (document.hidden) { schedule(idleDelay); return; }   // nobody is looking
    window.fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(function (data) {
        data.rows.forEach(update);
        root.dataset.busy = data.poll === busyDelay ? "1" : "0";
        schedule(data.poll || idleDelay);
      })
      .catch(function () { schedule(idleDelay); });   // offline or signed out: later
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { schedule(0); }
  });
  schedule(root.dataset.busy === "1" ? busyDelay : idleDelay);
}());
