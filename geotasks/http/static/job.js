// The job page follows its job until it ends, then previews the result: GeoJSON on a Leaflet
// map over a bundled Natural Earth land outline (no tiles, nothing from the network), or JSON
// as text.
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

  function propertiesTable(properties) {
    const table = document.createElement("table");
    for (const [key, value] of Object.entries(properties || {})) {
      const tr = table.insertRow();
      tr.insertCell().textContent = key;
      tr.insertCell().textContent = typeof value === "object" ? JSON.stringify(value) : String(value);
    }
    return table;
  }

  function drawMap(element) {
    // Fractional zoom lets fitBounds fill the map with the result: with whole zoom levels a
    // world dataset was drawn at the level below the one that fits (a quarter of the map).
    const map = L.map(element, { worldCopyJump: true, zoomSnap: 0.1 }).setView([20, 0], 2);
    map.attributionControl.addAttribution("Land: Natural Earth");
    const land = fetch(element.dataset.landUrl)
      .then((response) => response.json())
      .then((outline) => {
        L.geoJSON(outline, {
          interactive: false,
          className: "geotasks-land",
          style: { color: "#8fa3ad", weight: 1, fillColor: "#eef0e8", fillOpacity: 1 },
        }).addTo(map);
      });
    const result = fetch(element.dataset.resultsUrl, { headers: { Accept: "application/geo+json" } })
      .then((response) => {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      });
    Promise.all([land, result])
      .then(([, data]) => {
        let drawn = 0;
        const layer = L.geoJSON(data, {
          className: "geotasks-result",
          style: { color: "#c0392b", weight: 2, fillOpacity: 0.35 },
          pointToLayer: (feature, latlng) => L.circleMarker(latlng, { radius: 5, className: "geotasks-result" }),
          onEachFeature: (feature, featureLayer) => {
            drawn += 1;
            featureLayer.bindPopup(() => propertiesTable(feature.properties));
          },
        }).addTo(map);
        const bounds = layer.getBounds();
        if (bounds.isValid()) map.fitBounds(bounds, { padding: [10, 10], maxZoom: 12, animate: false });
        element.dataset.featuresDrawn = String(drawn);
        element.dataset.ready = "true";
      })
      .catch((error) => {
        document.getElementById("map-note").textContent = "Could not draw the result: " + error.message;
        element.dataset.ready = "error";
      });
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
  if (mapElement) drawMap(mapElement);
  const jsonElement = document.getElementById("result-json");
  if (jsonElement) showJson(jsonElement);
})();
