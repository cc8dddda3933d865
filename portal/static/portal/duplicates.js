/* "All on this page" on the duplicates report: ticks or clears every pair's box. The boxes
   and the buttons work without it; with JavaScript off the switch stays hidden. */
(function () {
  "use strict";
  var all = document.getElementById("select-all");
  if (!all) { return; }
  var boxes = document.querySelectorAll("input.select-pair");
  all.parentNode.hidden = false;
  all.addEventListener("change", function () {
    Array.prototype.forEach.call(boxes, function (box) { box.checked = all.checked; });
  });
  // Ticking or clearing one by one keeps the switch telling the truth.
  Array.prototype.forEach.call(boxes, function (box) {
    box.addEventListener("change", function () {
      var ticked = Array.prototype.filter.call(boxes, function (b) { return b.checked; });
      all.checked = ticked.length === boxes.length;
      all.indeterminate = ticked.length > 0 && ticked.length < boxes.length;
    });
  });
})();
