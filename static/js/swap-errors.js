/* Forms marked data-swap-errors re-render with their errors: htmx 2 does not swap 400 responses by
   default, and Goalpost answers invalid forms with 400 and the form partial. No dependencies. */
(function () {
  "use strict";
  document.addEventListener("htmx:beforeSwap", function (event) {
    var source = event.detail.requestConfig && event.detail.requestConfig.elt;
    if (event.detail.xhr.status === 400 && source && source.closest("[data-swap-errors]")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
