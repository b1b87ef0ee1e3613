// The interactive docs, from this server's own /openapi.json. No validator badge: it would
// call validator.swagger.io, and this page must work on a closed network.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#api-docs",
  validatorUrl: null,
  deepLinking: true,
  tryItOutEnabled: true,
});
