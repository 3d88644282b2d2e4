// Keeps the parts of a page marked data-live up to date: each opens the server-sent events
// stream its attribute names, and every update replaces the part's content with the HTML the
// server rendered. Without JavaScript the page is the same, as of its loading.
"use strict";
document.querySelectorAll("[data-live]").forEach(function (part) {
  var source = new EventSource(part.getAttribute("data-live"));
  source.addEventListener("update", function (e) {
    part.innerHTML = e.data;
  });
});
