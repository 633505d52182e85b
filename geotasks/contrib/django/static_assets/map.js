// The admin's map preview of a job's GeoJSON result, drawn by the HTTP API's result_map.js.
(() => {
  "use strict";
  const element = document.getElementById("map");
  window.geotasksDrawResult(element, element.dataset.resultUrl, document.getElementById("map-note"));
})();
