//! The Piston v2 API, at `/api/v2` on the REST listener: Piston's clients (piston-client and
//! code written against Piston) work with only their server changed. An adapter like REST: it
//! parses Piston's requests, calls the application layer, and answers in Piston's shapes,
//! errors as 400 `{"message"}`.
//!
//! - [`runtimes`]: languages as Piston's runtimes, and how a request picks one.
//! - [`request`]: an execute request checked and turned into CodeBeaker's.
//! - [`render`]: a record as Piston's result.
//! - [`connect`]: the interactive WebSocket, `/api/v2/connect`.

mod connect;
mod render;
mod request;
mod runtimes;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

use super::guard::Guard;
use super::routes::{plain, Piston, Route};
use crate::app::{AppError, Executions, RequestId};

type Routes = warp::filters::BoxedFilter<(Response,)>;

/// Piston's routes, behind `guard` (the API's own, or one that asks no key: `[piston] open`).
pub fn routes(guard: Arc<Guard>, app: Executions, max_body: u64) -> Routes {
    let with_app = warp::any().map(move || app.clone());
    let runtimes = plain(Route::Piston(Piston::Runtimes))
        .and(guard.clone().filter())
        .and(with_app.clone())
        .map(|app: Executions| {
            let config = app.config();
            json_with(
                &runtimes::list(app.language_table(), &config.limits),
                StatusCode::OK,
            )
        });
    // piston-client labels its JSON `text/plain`: the body is read as JSON whatever it says.
    let execute = plain(Route::Piston(Piston::Execute))
        .and(guard.clone().filter())
        .and(warp::body::content_length_limit(max_body).and(warp::body::bytes()))
        .and(warp::ext::get::<RequestId>())
        .and(with_app.clone())
        .then(execute);
    // Anything but an upgrade is answered 426 by the handler, not rejected by warp.
    let upgrade = warp::ws()
        .map(move |ws: warp::ws::Ws| Some(ws.max_message_size(max_body as usize)))
        .or(warp::any().map(|| None))
        .unify();
    let connect = plain(Route::Piston(Piston::Connect))
        .and(guard.filter())
        .and(upgrade)
        .and(warp::ext::get::<RequestId>())
        .and(with_app)
        .map(move |ws, id, app| connect::connect(ws, id, app, max_body));
    runtimes.or(execute).unify().or(connect).unify().boxed()
}

/// `POST /api/v2/execute`: runs the program and answers Piston's result.
async fn execute(body: Bytes, id: RequestId, app: Executions) -> Response {
    let answer = async {
        let body: Value = serde_json::from_slice(&body).map_err(|e| {
            message(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            )
        })?;
        let config = app.config();
        let (request, runtime) = request::read(&body, app.language_table(), &config.limits)
            .map_err(|refused| message(StatusCode::BAD_REQUEST, refused.0))?;
        let record = app.run(request, &id).await.map_err(app_error)?;
        Ok::<_, Response>(json_with(
            &render::result(&record, &runtime),
            StatusCode::OK,
        ))
    };
    answer.await.unwrap_or_else(|response| response)
}

/// An application error as Piston says it: a refused request is 400, as Piston's are.
fn app_error(e: AppError) -> Response {
    let (status, _, field) = e.parts();
    let status = match field {
        Some(_) => StatusCode::BAD_REQUEST,
        None => status,
    };
    message(status, e.to_string())
}

fn message(status: StatusCode, message: String) -> Response {
    json_with(&json!({ "message": message }), status)
}

fn json_with(body: &impl serde::Serialize, status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}
