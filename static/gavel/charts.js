// Draw each dashboard chart from the figure JSON the page carries; a click opens the search
// URL the server put in the point's customdata.
document.addEventListener("DOMContentLoaded", () => {
  for (const element of document.querySelectorAll(".chart[data-figure]")) {
    const figure = JSON.parse(document.getElementById(element.dataset.figure).textContent);
    Plotly.newPlot(element, figure.data, figure.layout, { displaylogo: false, responsive: true });
    element.on("plotly_click", (event) => {
      const url = event.points[0] && event.points[0].customdata;
      if (url) window.location.assign(url);
    });
  }
});
