// The admin's map preview of a job's GeoJSON result: the result over the bundled land outline
// (no tiles, nothing from the network), each feature's properties in a popup.
(() => {
  "use strict";
  const element = document.getElementById("map");
  const note = document.getElementById("map-note");

  function propertiesTable(properties) {
    const table = document.createElement("table");
    for (const [key, value] of Object.entries(properties || {})) {
      const row = table.insertRow();
      row.insertCell().textContent = key;
      row.insertCell().textContent = typeof value === "object" ? JSON.stringify(value) : String(value);
    }
    return table;
  }

  const map = L.map(element, { worldCopyJump: true, zoomSnap: 0.1 }).setView([20, 0], 2);
  map.attributionControl.addAttribution("Land: Natural Earth");
  const load = (url) => fetch(url, { credentials: "same-origin" }).then((response) => {
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  });
  Promise.all([load(element.dataset.landUrl), load(element.dataset.resultUrl)])
    .then(([land, result]) => {
      L.geoJSON(land, {
        interactive: false,
        style: { color: "#8fa3ad", weight: 1, fillColor: "#eef0e8", fillOpacity: 1 },
      }).addTo(map);
      let drawn = 0;
      const layer = L.geoJSON(result, {
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
})();
