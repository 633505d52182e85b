// The jobs page refreshes its table from the JSON job list, sending the bearer token the
// user pasted (kept in sessionStorage, so it dies with the tab).
(() => {
  "use strict";
  const TOKEN_KEY = "geotasks-token";
  const body = document.body;
  const jobsUrl = body.dataset.jobsUrl;
  const refreshMs = parseInt(body.dataset.refreshMs, 10) || 3000;
  const tbody = document.querySelector("#jobs tbody");
  const tokenForm = document.getElementById("token-form");
  const updated = document.getElementById("jobs-updated");
  const baseUrl = new URL(".", new URL(jobsUrl, document.baseURI)).href;

  const text = (value) => document.createTextNode(value === undefined || value === null ? "" : String(value));

  function row(job) {
    const tr = document.createElement("tr");
    const idCell = document.createElement("td");
    const link = document.createElement("a");
    link.href = baseUrl + "jobs/" + encodeURIComponent(job.jobID) + "?f=html";
    const code = document.createElement("code");
    code.appendChild(text(job.jobID));
    link.appendChild(code);
    idCell.appendChild(link);
    tr.appendChild(idCell);
    const processCell = document.createElement("td");
    processCell.appendChild(text(job.processID));
    tr.appendChild(processCell);
    const statusCell = document.createElement("td");
    const badge = document.createElement("span");
    badge.className = "status status-" + job.status;
    badge.appendChild(text(job.status));
    statusCell.appendChild(badge);
    tr.appendChild(statusCell);
    const progressCell = document.createElement("td");
    if (typeof job.progress === "number") {
      const bar = document.createElement("progress");
      bar.max = 100;
      bar.value = job.progress;
      progressCell.appendChild(bar);
      progressCell.appendChild(text(" " + job.progress + " %"));
    }
    tr.appendChild(progressCell);
    for (const key of ["created", "started", "finished", "message"]) {
      const td = document.createElement("td");
      td.appendChild(text(job[key]));
      tr.appendChild(td);
    }
    return tr;
  }

  function refresh() {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    fetch(jobsUrl, { headers })
      .then((response) => {
        if (response.status === 401) {
          tokenForm.hidden = false;
          return null;
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then((list) => {
        if (list === null) return;
        tokenForm.hidden = true;
        tbody.replaceChildren(...list.jobs.map(row));
        updated.textContent = "Updated " + new Date().toLocaleTimeString() + "; refreshes every " + Math.round(refreshMs / 1000) + " s.";
      })
      .catch((error) => {
        updated.textContent = "Could not refresh: " + error.message;
      })
      .finally(() => setTimeout(refresh, refreshMs));
  }

  document.getElementById("token-save").addEventListener("click", () => {
    sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
    refresh();
  });
  setTimeout(refresh, tokenForm.hidden ? refreshMs : 0);
})();
