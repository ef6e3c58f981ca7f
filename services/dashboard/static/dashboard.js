// Draws each panel's figure, given as JSON beside its chart, with the Plotly build served locally.
document.querySelectorAll("script.figure").forEach(function (node) {
  var figure = JSON.parse(node.textContent);
  var target = document.getElementById(node.dataset.chart);
  Plotly.newPlot(target, figure.data, figure.layout, {displaylogo: false, responsive: true})
    .then(function () { target.dataset.drawn = "true"; });
});
