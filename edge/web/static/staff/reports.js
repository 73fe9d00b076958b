// Branch report charts: draws the wait distribution and the SLA trend with the vendored Chart.js over the numbers
// the page already shows as tables (read from the #report-data JSON block; no inline script, CSP script-src 'self').
(function () {
  "use strict";
  function draw() {
    var holder = document.getElementById("report-data");
    if (!holder || typeof window.Chart === "undefined") { return; }  // no chart library: the tables stay
    var data = JSON.parse(holder.textContent);
    var brand = "#1d5fb8", ok = "#1a7a47";
    var common = { animation: false, responsive: true, plugins: { legend: { display: false } } };
    var wait = document.getElementById("chart-wait");
    if (wait && data.wait) {
      new window.Chart(wait, {
        type: "bar",
        data: { labels: data.wait.labels, datasets: [{ label: wait.dataset.label, data: data.wait.counts, backgroundColor: brand }] },
        options: Object.assign({ scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }, common)
      });
    }
    var sla = document.getElementById("chart-sla");
    if (sla && data.sla) {
      new window.Chart(sla, {
        type: "line",
        data: {
          labels: data.sla.map(function (r) { return r.day; }),
          datasets: [{ label: sla.dataset.label, data: data.sla.map(function (r) { return r.sla_met_pct; }),
                       borderColor: ok, backgroundColor: ok, spanGaps: true, tension: 0.2 }]
        },
        options: Object.assign({ scales: { y: { min: 0, max: 100 } } }, common)
      });
    }
    document.querySelectorAll("details.chart-table").forEach(function (d) { d.removeAttribute("open"); });
    document.body.setAttribute("data-charts", "drawn");
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
}());
