/* The console's only script of its own: draw the plotly figures a page or an htmx swap
   brings (JSON in <script type="application/json">, never executed), and mark busy forms. */
(function () {
  "use strict";
  function drawPlots(root) {
    if (typeof Plotly === "undefined" || !root.querySelectorAll) return;
    root.querySelectorAll("[data-plot]").forEach(function (el) {
      if (el.dataset.drawn) return;
      var source = document.getElementById(el.dataset.plot);
      if (!source) return;
      var fig = JSON.parse(source.textContent);
      el.dataset.drawn = "1";
      Plotly.newPlot(el, fig.data, fig.layout, {displaylogo: false, responsive: true})
        .then(function () { el.dataset.ready = "1"; });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { drawPlots(document); });
  document.addEventListener("htmx:afterSettle", function (event) {
    drawPlots(event.detail && event.detail.elt ? event.detail.elt : document);
  });
})();
