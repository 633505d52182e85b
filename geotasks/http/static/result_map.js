// A job's GeoJSON result drawn on a Leaflet map over the bundled Natural Earth land outline (no
// tiles, nothing from the network), each feature's properties in a popup. Shared by the HTTP
// API's job page (job.js) and the Django admin's map page (contrib/django map.js).
// `element` carries data-land-url; once drawn it gets data-features-drawn and data-ready
// ("true", or "error" with the reason in `note`).
window.geotasksDrawResult = (element, resultUrl, note) => {
  "use strict";

  function propertiesTable(properties) {
    const table = document.createElement("table");
    for (const [key, value] of Object.entries(properties || {})) {
      const row = table.insertRow();
      row.insertCell().textContent = key;
      row.insertCell().textContent = typeof value === "object" ? JSON.stringify(value) : String(value);
    }
    return table;
  }

  // Fractional zoom lets fitBounds fill the map with the result: with whole zoom levels a
  // world dataset was drawn at the level below the one that fits (a quarter of the map).
  const map = L.map(element, { worldCopyJump: true, zoomSnap: 0.1 }).setView([20, 0], 2);
  map.attributionControl.addAttribution("Land: Natural Earth");
  const land = fetch(element.dataset.landUrl, { credentials: "same-origin" })
    .then((response) => response.json())
    .then((outline) => {
      L.geoJSON(outline, {
        interactive: false,
        className: "geotasks-land",
        style: { color: "#8fa3ad", weight: 1, fillColor: "#eef0e8", fillOpacity: 1 },
      }).addTo(map);
    });
  const result = fetch(resultUrl, {
    credentials: "same-origin",
    headers: { Accept: "application/geo+json" },
  }).then((response) => {
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
      note.textContent = "Could not draw the result: " + error.message;
      element.dataset.ready = "error";
    });
};
