/* Goalpost "select all" boxes: <input type="checkbox" data-select-all="ids"> ticks every checkbox named
   "ids" on the page. Delegated from the document, so rows that htmx swaps in work too. No dependencies. */
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    var master = event.target.closest("[data-select-all]");
    if (!master) { return; }
    var name = master.getAttribute("data-select-all");
    document.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (box) {
      box.checked = master.checked;
    });
  });
})();
