// Leave empty filter fields out of htmx requests, so a shared search URL says only what it filters.
document.addEventListener("htmx:configRequest", (event) => {
  const params = event.detail.parameters;
  const names = params instanceof FormData ? [...new Set(params.keys())] : Object.keys(params);
  for (const name of names) {
    const value = params instanceof FormData ? params.get(name) : params[name];
    if (value === "" || value === null) {
      params instanceof FormData ? params.delete(name) : delete params[name];
    }
  }
});

// Print buttons (the summary's print view): no inline handlers, the CSP forbids them.
document.addEventListener("click", (event) => {
  if (event.target.closest("[data-print]")) window.print();
});
