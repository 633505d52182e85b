// The job page follows its job until it ends, then previews the result: GeoJSON on a Leaflet
// map over a bundled Natural Earth land outline (result_map.js), or JSON as text.
(() => {
  "use strict";
  const FINAL = ["successful", "failed", "dismissed"];
  const body = document.body;
  const statusUrl = body.dataset.statusUrl;
  const shownStatus = body.dataset.status;
  const refreshMs = parseInt(body.dataset.refreshMs, 10) || 2000;

  function show(info) {
    const status = document.getElementById("job-status");
    status.textContent = info.status;
    status.className = "status status-" + info.status;
    document.getElementById("job-message").textContent = info.message || "";
    if (typeof info.progress === "number") {
      document.getElementById("job-progress").value = info.progress;
      document.getElementById("job-progress-text").textContent = info.progress;
    }
    document.getElementById("job-started").textContent = info.started || "–";
    document.getElementById("job-finished").textContent = info.finished || "–";
  }

  function poll() {
    fetch(statusUrl, { headers: { Accept: "application/json" } })
      .then((response) => response.json())
      .then((info) => {
        show(info);
        if (FINAL.includes(info.status)) {
          // The page is rendered again with the download link and the map.
          if (info.status !== shownStatus) window.location.reload();
        } else {
          setTimeout(poll, refreshMs);
        }
      })
      .catch(() => setTimeout(poll, refreshMs * 2));
  }

  function showJson(element) {
    fetch(element.dataset.resultsUrl, { headers: { Accept: "application/json" } })
      .then((response) => response.text())
      .then((textBody) => {
        element.textContent = textBody;
        element.dataset.ready = "true";
      });
  }

  if (!FINAL.includes(shownStatus)) setTimeout(poll, refreshMs);
  const mapElement = document.getElementById("map");
  if (mapElement) {
    window.geotasksDrawResult(mapElement, mapElement.dataset.resultsUrl, document.getElementById("map-note"));
  }
  const jsonElement = document.getElementById("result-json");
  if (jsonElement) showJson(jsonElement);
})();
