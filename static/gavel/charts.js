// Draw each dashboard chart from the figure JSON in its data-figure attribute; a click opens the search
// URL the server put in the point's customdata. Charts htmx swaps in (the auto-refresh of a
// relative time range) are drawn the same way.
(() => {
  const NARROW = 560; // px: below this a time axis gets fewer ticks, so dates do not overlap

  function timeTicks(element, layout) {
    const update = {};
    for (const name of Object.keys(layout)) {
      // The server sets nticks on time axes only; one with a fixed dtick keeps it.
      const axis = layout[name];
      if (name.startsWith("xaxis") && axis && axis.nticks && !axis.dtick) {
        update[`${name}.nticks`] = element.clientWidth < NARROW ? 4 : 8;
      }
    }
    return update;
  }

  function draw(root) {
    for (const element of root.querySelectorAll(".chart[data-figure]")) {
      if (element.dataset.drawn) continue;
      element.dataset.drawn = "1";
      const figure = JSON.parse(element.dataset.figure); // an attribute: htmx swaps drop <script> elements
      const layout = figure.layout;
      for (const [key, value] of Object.entries(timeTicks(element, layout))) layout[key.split(".")[0]].nticks = value;
      Plotly.newPlot(element, figure.data, layout, { displaylogo: false, responsive: true });
      element.on("plotly_click", (event) => {
        const url = event.points[0] && event.points[0].customdata;
        if (url) window.location.assign(url);
      });
    }
  }

  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => {
      for (const element of document.querySelectorAll(".chart[data-drawn]")) {
        const update = timeTicks(element, element.layout || {});
        if (Object.keys(update).length) Plotly.relayout(element, update);
      }
    }, 200);
  });
  document.addEventListener("DOMContentLoaded", () => draw(document));
  document.addEventListener("htmx:load", (event) => draw(event.detail.elt));
})();
