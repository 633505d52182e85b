// The dashboard draws its jobs-per-minute chart with uPlot and refreshes itself by fetching the
// page again (sending the bearer token the user pasted, kept in sessionStorage) and swapping in
// its tables: the server renders them once, for the first load and every refresh alike.
(() => {
  "use strict";
  const TOKEN_KEY = "geotasks-token";
  const body = document.body;
  const pageUrl = body.dataset.dashboardUrl;
  const refreshMs = parseInt(body.dataset.refreshMs, 10) || 5000;
  const tokenForm = document.getElementById("token-form");
  const COLORS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#bcbd22"];
  const FAILED_COLOR = "#d62728";
  let plot = null;

  function drawChart() {
    const holder = document.getElementById("chart");
    if (!holder) return;
    const data = JSON.parse(holder.dataset.series);
    const columns = [data.minutes.map((minute) => Date.parse(minute) / 1000)];
    const series = [{}];
    data.series.forEach((actor, index) => {
      const color = COLORS[index % COLORS.length];
      series.push({ label: actor.actor + " finished", stroke: color, width: 2, points: { show: false } });
      columns.push(actor.finished);
      series.push({ label: actor.actor + " failed", stroke: FAILED_COLOR, dash: [6, 4], width: 2, points: { show: false } });
      columns.push(actor.failed);
    });
    if (data.series.length === 0) {
      series.push({ label: "no job finished", stroke: "#999", width: 1 });
      columns.push(columns[0].map(() => 0));
    }
    if (plot) plot.destroy();
    holder.replaceChildren();
    const options = {
      width: Math.max(320, holder.clientWidth || 800),
      height: 260,
      series,
      scales: { x: { time: true } },
      axes: [{}, { label: "jobs per minute" }],
    };
    plot = new uPlot(options, columns, holder);
    holder.dataset.seriesDrawn = String(series.length - 1);
    holder.dataset.ready = "true";
  }

  function refresh() {
    const headers = { Accept: "text/html" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    fetch(pageUrl, { headers })
      .then((response) => {
        if (response.status === 401) {
          tokenForm.hidden = false;
          return null;
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then((html) => {
        if (html === null) return;
        const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("dashboard");
        if (fresh === null || fresh.children.length === 0) {
          tokenForm.hidden = false;
          return;
        }
        tokenForm.hidden = true;
        document.getElementById("dashboard").replaceWith(document.adoptNode(fresh));
        drawChart();
      })
      .catch((error) => {
        const updated = document.getElementById("dashboard-updated");
        if (updated) updated.textContent = "Could not refresh: " + error.message;
      })
      .finally(() => setTimeout(refresh, refreshMs));
  }

  document.getElementById("token-save").addEventListener("click", () => {
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
    refresh();
  });
  drawChart();
  setTimeout(refresh, tokenForm.hidden ? refreshMs : 0);
})();
