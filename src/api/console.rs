//! The web console: the playground at `/` and the live view at `/console`, pages that use the
//! REST API like any client. Their files (ours under `assets/console/`, and the editor and
//! chart libraries bundled by `scripts/vendor.sh` under `assets/vendor/console/`) are built
//! into the binary, so the pages work on a closed network. Like `/docs`, the pages need no
//! key: they hold no data, and every call they make for data is guarded.
//!
//! Caching: each answer carries an `ETag` (a hash of the file) and `Cache-Control: no-cache`,
//! so a browser keeps the files and revalidates them with `If-None-Match` (a 304 with no
//! body), and a new binary's files are never mistaken for the old ones.

use std::collections::HashMap;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

use super::routes::{plain, with_param, Route};

type Routes = warp::filters::BoxedFilter<(Response,)>;

struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            bytes: include_bytes!(concat!("../../assets/", $path)),
            content_type: $type,
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Every file the pages load, by the name under `/console/assets/`.
fn asset(name: &str) -> Option<Asset> {
    Some(match name {
        "api.js" => asset!("console/api.js", JS),
        "playground.js" => asset!("console/playground.js", JS),
        "live.js" => asset!("console/live.js", JS),
        "style.css" => asset!("console/style.css", CSS),
        "vendor.js" => asset!("vendor/console/vendor.js", JS),
        "uPlot.min.css" => asset!("vendor/console/uPlot.min.css", CSS),
        "LICENSES.txt" => asset!("vendor/console/LICENSES.txt", "text/plain; charset=utf-8"),
        _ => return None,
    })
}

pub fn routes() -> Routes {
    let playground = plain(Route::Playground)
        .and(if_none_match())
        .map(|tag| answer("index.html", asset!("console/index.html", HTML), tag));
    let console = plain(Route::Console)
        .and(if_none_match())
        .map(|tag| answer("console.html", asset!("console/console.html", HTML), tag));
    let assets = with_param(Route::ConsoleAsset)
        .and(if_none_match())
        .and_then(|name: String, tag: Option<String>| async move {
            let file = asset(&name).ok_or_else(warp::reject::not_found)?;
            Ok::<_, warp::Rejection>(answer(&name, file, tag))
        });
    playground.or(console).unify().or(assets).unify().boxed()
}

fn if_none_match(
) -> impl Filter<Extract = (Option<String>,), Error = std::convert::Infallible> + Clone {
    warp::header::optional::<String>("if-none-match").or_else(|_| async { Ok((None,)) })
}

/// The file, or 304 when the browser's copy is current.
fn answer(name: &str, file: Asset, if_none_match: Option<String>) -> Response {
    let tag = etag(name, file.bytes);
    let fresh = if_none_match.is_some_and(|given| given.split(',').any(|t| t.trim() == tag));
    let response = match fresh {
        true => {
            warp::reply::with_status(warp::reply::Response::default(), StatusCode::NOT_MODIFIED)
                .into_response()
        }
        false => {
            warp::reply::with_header(file.bytes, "content-type", file.content_type).into_response()
        }
    };
    let response = warp::reply::with_header(response, "etag", tag);
    warp::reply::with_header(response, "cache-control", "no-cache").into_response()
}

/// A strong tag from the file's content, worked out once per file.
fn etag(name: &str, bytes: &[u8]) -> String {
    static TAGS: OnceLock<std::sync::Mutex<HashMap<String, String>>> = OnceLock::new();
    let tags = TAGS.get_or_init(Default::default);
    let mut tags = tags.lock().expect("the tag cache is never poisoned");
    tags.entry(name.to_string())
        .or_insert_with(|| format!("\"{}\"", hex::encode(&Sha256::digest(bytes)[..12])))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_load_only_files_the_binary_serves_and_nothing_from_elsewhere() {
        for page in [
            include_str!("../../assets/console/index.html"),
            include_str!("../../assets/console/console.html"),
        ] {
            for part in page.split("/console/assets/").skip(1) {
                let name: String = part.chars().take_while(|c| !"\"'?".contains(*c)).collect();
                assert!(asset(&name).is_some(), "{name} is not served");
            }
            assert!(!page.contains("http://") && !page.contains("https://"));
        }
        for script in ["api.js", "playground.js", "live.js"] {
            let text = std::str::from_utf8(asset(script).unwrap().bytes).unwrap();
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{script}"
            );
        }
    }

    #[test]
    fn a_current_copy_gets_304() {
        let file = || asset("style.css").unwrap();
        let first = answer("style.css", file(), None);
        assert_eq!(first.status(), StatusCode::OK);
        let tag = first.headers()["etag"].to_str().unwrap().to_string();
        assert_eq!(
            answer("style.css", file(), Some(tag)).status(),
            StatusCode::NOT_MODIFIED
        );
        assert_eq!(
            answer("style.css", file(), Some("\"old\"".into())).status(),
            StatusCode::OK
        );
    }
}
