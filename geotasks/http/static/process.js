// The process page's form executes the process as a program would: a JSON execute request,
// with the bearer token the user gave (kept in sessionStorage, shared with the jobs page, gone
// with the tab), then opens the new job's page, which follows it to its map.
(() => {
  "use strict";
  const TOKEN_KEY = "geotasks-token";
  const form = document.getElementById("execute-form");
  if (!form) return;
  const status = document.getElementById("execute-status");
  const errors = document.getElementById("execute-errors");
  const token = document.getElementById("token");
  const submit = document.getElementById("execute");
  token.value = sessionStorage.getItem(TOKEN_KEY) || "";

  // An empty field is an input not given: the process uses its default.
  function valueOf(element) {
    const raw = element.value.trim();
    if (raw === "") return undefined;
    if (element.dataset.kind === "number") return Number(raw);
    if (element.dataset.kind === "boolean") return raw === "true";
    if (element.dataset.kind === "json") return JSON.parse(raw);
    return raw;
  }

  function showError(input, message) {
    const item = document.createElement("li");
    item.textContent = input ? input + ": " + message : message;
    errors.appendChild(item);
    const element = input && form.elements.namedItem(input);
    if (element) element.setAttribute("aria-invalid", "true");
  }

  function showTokenField() {
    for (const element of form.querySelectorAll(".token-field")) element.hidden = false;
    token.focus();
  }

  function execute(event) {
    event.preventDefault();
    errors.replaceChildren();
    const inputs = {};
    for (const element of form.querySelectorAll("[data-kind]")) {
      element.removeAttribute("aria-invalid");
      try {
        const value = valueOf(element);
        if (value !== undefined) inputs[element.name] = value;
      } catch (error) {
        showError(element.name, "not valid JSON (" + error.message + ")");
      }
    }
    if (errors.children.length) return;
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    const bearer = token.value.trim();
    if (bearer) {
      sessionStorage.setItem(TOKEN_KEY, bearer);
      headers.Authorization = "Bearer " + bearer;
    }
    status.textContent = "Submitting…";
    submit.disabled = true;
    fetch(form.dataset.executeUrl, {
      method: "POST",
      headers,
      body: JSON.stringify({ inputs }),
      credentials: "omit",
    })
      .then((response) => response.json().then((body) => [response, body]))
      .then(([response, body]) => {
        if (response.status === 201) {
          const page = (body.links || []).find((link) => link.rel === "alternate" && link.type === "text/html");
          status.textContent = "Job " + body.jobID + " created; opening it…";
          window.location.assign(page ? page.href : response.headers.get("Location") + "?f=html");
          return;
        }
        if (response.status === 401) showTokenField();
        status.textContent = body.title || "HTTP " + response.status;
        if (Array.isArray(body.errors) && body.errors.length) {
          for (const error of body.errors) showError(error.input, error.message);
        } else {
          showError(null, body.detail || "the request was refused");
        }
      })
      .catch((error) => {
        status.textContent = "Could not submit: " + error.message;
      })
      .finally(() => {
        submit.disabled = false;
      });
  }

  form.addEventListener("submit", execute);
})();
