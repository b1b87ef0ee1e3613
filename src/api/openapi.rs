//! The OpenAPI 3.1 document (`GET /openapi.json`), generated from the request and response
//! types and the handlers' `#[utoipa::path]` annotations, and the interactive docs at
//! `GET /docs`: Swagger UI, vendored from npm by `scripts/vendor.sh` and built into the
//! binary, so that the page works on a closed network.
//!
//! The errors every operation shares (a bad key, the rate limit, a body too large, the queue
//! away) are added to each operation here, from the route's nature, rather than repeated on
//! every handler.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, PartialSchema};
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use crate::app::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "CodeBeaker",
        description = "Runs untrusted code in hardened sandboxes. Every error answers \
            `{\"error\": {\"code\", \"message\", \"field\"}}`."
    ),
    paths(
        super::execute,
        super::execute_async,
        super::session::execute_ws,
        super::get_execution,
        super::execution_events,
        super::cancel_execution,
        super::submit_batch,
        super::get_batch,
        super::languages,
        super::workers,
        super::recent_executions,
        super::queue,
        super::health,
        super::ready,
        super::metrics
    ),
    modifiers(&SharedErrors),
    security((), ("api_key" = [])),
    tags(
        (name = "executions", description = "Run code and read its records"),
        (name = "node", description = "The node and its cluster")
    )
)]
struct Document;

/// The document as served, built once.
pub fn document() -> &'static str {
    static JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    JSON.get_or_init(|| {
        Document::openapi()
            .to_pretty_json()
            .expect("the document serialises")
    })
}

struct SharedErrors;

impl Modify for SharedErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, operation) in [
                ("get", &mut item.get),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
            ] {
                if let Some(operation) = operation {
                    add_errors(operation, &errors_of(method, path));
                }
            }
        }
    }
}

/// The shared errors an operation can answer.
fn errors_of(method: &str, path: &str) -> Vec<(u16, &'static str)> {
    let mut errors = vec![(503, "The node cannot serve this now (queue, supervisor)")];
    let node_route = ["/health", "/ready", "/metrics"].contains(&path);
    if !node_route {
        errors.push((401, "No valid API key (when keys are configured)"));
        errors.push((429, "Over the rate limit; see Retry-After"));
    }
    if method == "post" {
        errors.push((
            400,
            "The body is not valid JSON for this endpoint, or names an unknown language",
        ));
        errors.push((411, "The body came without a Content-Length"));
        errors.push((413, "The body, or a field of it, is too large"));
        errors.push((422, "A field is out of range or not allowed"));
    }
    if path.contains('{') {
        errors.push((400, "The id is not a UUID"));
        errors.push((404, "No such execution or batch"));
    }
    errors
}

fn add_errors(operation: &mut Operation, errors: &[(u16, &str)]) {
    for (status, description) in errors {
        let response = ResponseBuilder::new()
            .description(*description)
            .content("application/json", Content::new(Some(ErrorBody::schema())))
            .build();
        let slot = operation.responses.responses.entry(status.to_string());
        slot.or_insert_with(|| RefOr::T(response));
    }
}

/// `GET /openapi.json`.
pub fn serve_document() -> Response {
    warp::reply::with_header(document(), "content-type", "application/json").into_response()
}

/// `GET /docs` and its assets, with the caching a browser may use: the page revalidates, the
/// vendored files (fixed for a build) keep for a day. An unknown asset is the router's 404.
pub fn serve_docs(asset: Option<String>) -> Result<Response, warp::Rejection> {
    let name = asset.as_deref().unwrap_or("index.html");
    let (bytes, content_type) = asset_named(name).ok_or_else(warp::reject::not_found)?;
    let cache = match asset {
        None => "no-cache",
        Some(_) => "public, max-age=86400",
    };
    let response = warp::reply::with_header(bytes, "content-type", content_type);
    let response = warp::reply::with_header(response, "cache-control", cache);
    Ok(warp::reply::with_status(response, StatusCode::OK).into_response())
}

fn asset_named(name: &str) -> Option<(&'static [u8], &'static str)> {
    Some(match name {
        "index.html" => (
            include_bytes!("../../assets/docs/index.html").as_slice(),
            "text/html; charset=utf-8",
        ),
        "init.js" => (
            include_bytes!("../../assets/docs/init.js").as_slice(),
            "text/javascript; charset=utf-8",
        ),
        "swagger-ui-bundle.js" => (
            include_bytes!("../../assets/vendor/swagger-ui-dist/swagger-ui-bundle.js").as_slice(),
            "text/javascript; charset=utf-8",
        ),
        "swagger-ui.css" => (
            include_bytes!("../../assets/vendor/swagger-ui-dist/swagger-ui.css").as_slice(),
            "text/css; charset=utf-8",
        ),
        "favicon-32x32.png" => (
            include_bytes!("../../assets/vendor/swagger-ui-dist/favicon-32x32.png").as_slice(),
            "image/png",
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::routes::{Route, TABLE};

    #[test]
    fn the_document_describes_every_route_of_the_table() {
        let document: serde_json::Value = serde_json::from_str(document()).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        let paths = document["paths"].as_object().unwrap();
        // The document, the docs page and the console use the API; they are not part of it. The
        // Judge0 and Piston APIs are theirs, described by their own documents; MCP describes
        // itself (`tools/list`).
        let described = |route: Route| {
            !matches!(
                route,
                Route::OpenApi
                    | Route::Docs
                    | Route::DocsAsset
                    | Route::Playground
                    | Route::Console
                    | Route::ConsoleAsset
                    | Route::Judge0(_)
                    | Route::Piston(_)
                    | Route::Mcp
            )
        };
        for entry in TABLE.iter().filter(|e| described(e.route)) {
            let method = entry.method.as_str().to_ascii_lowercase();
            assert!(
                paths[entry.template][&method].is_object(),
                "{method} {} is missing from the document",
                entry.template
            );
        }
        let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(
            operations,
            TABLE.iter().filter(|e| described(e.route)).count(),
            "the document has a route the table lacks"
        );
    }

    #[test]
    fn every_operation_documents_its_errors() {
        let document: serde_json::Value = serde_json::from_str(document()).unwrap();
        let post = &document["paths"]["/execute"]["post"]["responses"];
        for status in [
            "200", "202", "400", "401", "411", "413", "422", "429", "503",
        ] {
            assert!(post[status].is_object(), "POST /execute lacks {status}");
        }
        let get = &document["paths"]["/execution/{id}"]["get"]["responses"];
        assert!(get["404"].is_object() && get["400"].is_object());
    }

    #[test]
    fn the_docs_page_needs_nothing_from_the_internet() {
        let (page, _) = asset_named("index.html").unwrap();
        let page = std::str::from_utf8(page).unwrap();
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "{page}"
        );
        for src in [
            "/docs/swagger-ui-bundle.js",
            "/docs/swagger-ui.css",
            "/docs/init.js",
        ] {
            assert!(page.contains(src));
            assert!(asset_named(src.trim_start_matches("/docs/")).is_some());
        }
        assert!(asset_named("../Cargo.toml").is_none());
    }
}
