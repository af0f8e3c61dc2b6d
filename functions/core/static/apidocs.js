// Swagger UI for this function's openapi.json (thumbnails.core.apidocs). A file, not an inline
// script: the page's Content-Security-Policy runs scripts from this origin only.
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({  // eslint-disable-line no-undef
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    validatorUrl: null,  // no badge from validator.swagger.io: nothing from elsewhere
    presets: [SwaggerUIBundle.presets.apis],  // eslint-disable-line no-undef
    layout: "BaseLayout",
  });
});
