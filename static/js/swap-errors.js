/* Forms marked data-swap-errors re-render with their errors: htmx 2 does not swap 400 responses by
   default, and Goalpost answers invalid forms with 400 and the form partial. No dependencies. */
(function () {
  "use strict";

  function fromErrorForm(event) {
    var source = event.detail.requestConfig && event.detail.requestConfig.elt;
    return event.detail.xhr.status === 400 && source && source.closest("[data-swap-errors]");
  }

  // With DEBUG on, django-htmx's script replaces the whole page with any 400 answer (to show Django's error
  // pages) from a listener on the document. A form's own errors are no such page: stop the event before it
  // gets there (capture phase); htmx goes on with the response all the same.
  document.addEventListener("htmx:beforeOnLoad", function (event) {
    if (fromErrorForm(event)) {
      event.stopPropagation();
    }
  }, true);

  document.addEventListener("htmx:beforeSwap", function (event) {
    if (fromErrorForm(event)) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
