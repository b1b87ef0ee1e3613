//! The Judge0 CE 1.13.1 API, at `/judge0` on the REST listener: Judge0's clients (its Python
//! SDK, judges and IDE plugins written against it) work with only their base URL changed.
//! An adapter like REST itself: it parses Judge0's requests, calls the application layer,
//! and answers in Judge0's shapes and error bodies (`{"error": "..."}`, and
//! `{"field": ["message"]}` for a refused submission).
//!
//! - [`submission`]: a submission checked and turned into a request (its fields kept as the
//!   record's echo).
//! - [`render`]: a record as a Judge0 submission, with the fields asked for.
//! - [`status`]: Judge0's statuses and how a record maps onto them.
//! - [`files`]: `additional_files`, a zip unpacked within the caps.
//! - [`info`]: languages, statuses, `/about`, `/config_info`, `/system_info`, `/workers`.

mod files;
pub mod info;
mod render;
mod status;
mod submission;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

use super::guard::Guard;
use super::routes::{at, Judge0, Route};
use crate::app::{AppError, Executions, RequestId};
use crate::model::ExecutionRecord;
use render::NotUtf8;
use submission::Context;

type Routes = warp::filters::BoxedFilter<(Response,)>;

/// Judge0's answer when an output is not UTF-8 and the client did not ask for base64.
const NOT_UTF8: &str = "some attributes for this submission cannot be converted to UTF-8, use \
                        base64_encoded=true query parameter";
const NOT_UTF8_BATCH: &str = "some attributes for one or more submissions cannot be converted \
                              to UTF-8, use base64_encoded=true query parameter";

/// Every Judge0 route, behind the same guard as the REST API's (which takes Judge0's
/// `X-Auth-Token` as an API key).
pub fn routes(guard: Arc<Guard>, app: Executions, max_body: u64) -> Routes {
    let shared = Arc::new(Shared {
        guard: guard.clone(),
        app,
    });
    let with = warp::any().map(move || shared.clone());
    let query = warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .map(|raw: String| Query::parse(&raw));
    let endpoint = |e: Judge0| at(Route::Judge0(e)).and(guard.clone().filter());
    let body = warp::body::content_length_limit(max_body).and(warp::body::bytes());
    let request_id = warp::ext::get::<RequestId>();
    let authorized = warp::header::optional::<String>("x-auth-user");

    let create = endpoint(Judge0::Create)
        .and(query)
        .and(body)
        .and(request_id)
        .and(with.clone())
        .then(|_, q, b, id, s: Arc<Shared>| async move { answer(s.create(q, b, id).await) });
    let batch_create = endpoint(Judge0::BatchCreate)
        .and(query)
        .and(body)
        .and(request_id)
        .and(with.clone())
        .then(|_, q, b, id, s: Arc<Shared>| async move { answer(s.batch_create(q, b, id).await) });
    // Judge0 takes the tokens from a `tokens` header first, then from the query.
    let batch_show = endpoint(Judge0::BatchShow)
        .and(query)
        .and(warp::header::optional::<String>("tokens"))
        .and(with.clone())
        .then(
            |_, mut q: Query, header: Option<String>, s: Arc<Shared>| async move {
                q.tokens = header.or(q.tokens);
                answer(s.batch_show(q).await)
            },
        );
    let show = endpoint(Judge0::Show)
        .and(query)
        .and(with.clone())
        .then(|p: Vec<String>, q, s: Arc<Shared>| async move { answer(s.show(&p[0], q).await) });
    let index = endpoint(Judge0::Index)
        .and(authorized)
        .and(with.clone())
        .map(|_, user: Option<String>, s: Arc<Shared>| s.authorized(user, index));
    let delete = endpoint(Judge0::Delete)
        .and(authorized)
        .and(with.clone())
        .map(|_, user: Option<String>, s: Arc<Shared>| s.authorized(user, delete));
    let authorize = endpoint(Judge0::Authorize)
        .and(authorized)
        .and(with.clone())
        .map(|_, user: Option<String>, s: Arc<Shared>| {
            s.authorized(user, || json_with(&json!({}), StatusCode::OK))
        });
    let info = endpoint(Judge0::Languages)
        .or(endpoint(Judge0::AllLanguages))
        .unify()
        .or(endpoint(Judge0::Language))
        .unify()
        .or(endpoint(Judge0::Statuses))
        .unify()
        .or(endpoint(Judge0::SystemInfo))
        .unify()
        .or(endpoint(Judge0::ConfigInfo))
        .unify()
        .or(endpoint(Judge0::About))
        .unify()
        .or(endpoint(Judge0::Version))
        .unify()
        .or(endpoint(Judge0::Authenticate))
        .unify()
        .and(warp::ext::get::<super::routes::Lookup>())
        .and(with.clone())
        .map(|params: Vec<String>, lookup, s: Arc<Shared>| s.info(lookup, &params));
    let workers = endpoint(Judge0::Workers)
        .and(with)
        .then(|_, s: Arc<Shared>| async move { answer(s.workers().await) });
    create
        .or(batch_create)
        .unify()
        .or(batch_show)
        .unify()
        .or(show)
        .unify()
        .or(index)
        .unify()
        .or(delete)
        .unify()
        .or(authorize)
        .unify()
        .or(info)
        .unify()
        .or(workers)
        .unify()
        .boxed()
}

/// The query parameters Judge0 reads.
#[derive(Debug, Clone, Default)]
struct Query {
    base64: bool,
    wait: bool,
    fields: Option<String>,
    tokens: Option<String>,
}

impl Query {
    fn parse(raw: &str) -> Query {
        let mut query = Query::default();
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            match key.as_ref() {
                "base64_encoded" => query.base64 = value == "true",
                "wait" => query.wait = value == "true",
                "fields" => query.fields = Some(value.into_owned()),
                "tokens" => query.tokens = Some(value.into_owned()),
                _ => {}
            }
        }
        query
    }

    /// The fields to answer with, or Judge0's 400 naming the unknown ones.
    fn fields(&self) -> Result<Vec<&'static str>, Refusal> {
        render::requested(self.fields.as_deref()).map_err(|unknown| {
            Refusal::bad_request(format!("invalid fields: [{}]", unknown.join(", ")))
        })
    }
}

/// What the Judge0 API answers instead, in Judge0's bodies; turned into a response in one
/// place ([`Refusal::response`]).
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// `{"error": "..."}` with its status.
    #[error("{message}")]
    Plain { status: StatusCode, message: String },
    /// A refused submission: `{"field": ["message"]}`, 422.
    #[error("the submission is refused: {0}")]
    Fields(Value),
}

impl Refusal {
    fn bad_request(message: String) -> Refusal {
        Refusal::Plain {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }

    fn body(&self) -> Value {
        match self {
            Refusal::Plain { message, .. } => json!({ "error": message }),
            Refusal::Fields(fields) => fields.clone(),
        }
    }

    fn response(&self) -> Response {
        let status = match self {
            Refusal::Plain { status, .. } => *status,
            Refusal::Fields(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        json_with(&self.body(), status)
    }
}

/// An application error as Judge0 would say it: a refused field in Judge0's shape (named as
/// Judge0 names it), anything else as `{"error": "..."}` with its status.
impl From<AppError> for Refusal {
    fn from(e: AppError) -> Refusal {
        match e.parts() {
            (_, _, Some(field)) => Refusal::Fields(json!({ judge0_field(field): [e.to_string()] })),
            (status, _, None) => Refusal::Plain {
                status,
                message: e.to_string(),
            },
        }
    }
}

fn answer(result: Result<Response, Refusal>) -> Response {
    result.unwrap_or_else(|refusal| refusal.response())
}

struct Shared {
    guard: Arc<Guard>,
    app: Executions,
}

impl Shared {
    fn context(&self, base64: bool) -> Context<'_> {
        Context {
            base64,
            languages: self.app.language_table(),
            limits: &self.app.config().limits,
        }
    }

    /// `POST /submissions`: 201 with the token at once, or with the record (`wait=true`).
    async fn create(&self, query: Query, body: Bytes, id: RequestId) -> Result<Response, Refusal> {
        let fields = query.fields()?;
        let body = parse_body(&body)?;
        let request = submission::read(&body, &self.context(query.base64))
            .map_err(|errors| Refusal::Fields(Value::Object(errors)))?;
        let record = match query.wait {
            true => self.app.run(request, &id).await?,
            false => self.app.submit(request, &id).await?,
        };
        let created = |body: Value| json_with(&body, StatusCode::CREATED);
        if !query.wait {
            return Ok(created(json!({"token": record.execution_id})));
        }
        Ok(match self.render(&record, &fields, query.base64) {
            Ok(rendered) => created(rendered),
            Err(NotUtf8) => created(json!({"error": NOT_UTF8, "token": record.execution_id})),
        })
    }

    /// `POST /submissions/batch`: each submission on its own, as Judge0 does: the valid ones
    /// run, the others answer with their errors in their place.
    async fn batch_create(
        &self,
        query: Query,
        body: Bytes,
        id: RequestId,
    ) -> Result<Response, Refusal> {
        let body = parse_body(&body)?;
        let list = body
            .get("submissions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        self.batch_size(list.len())?;
        let cx = self.context(query.base64);
        let answers = futures::future::join_all(list.iter().map(|item| async {
            let request = submission::read(item, &cx).map_err(Value::Object)?;
            match self.app.submit(request, &id).await {
                Ok(record) => Ok(json!({"token": record.execution_id})),
                Err(e) => Err(Refusal::from(e).body()),
            }
        }))
        .await;
        let status = match answers.iter().any(Result::is_ok) {
            true => StatusCode::CREATED,
            false => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let body: Vec<Value> = answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|e| e))
            .collect();
        Ok(json_with(&body, status))
    }

    fn batch_size(&self, n: usize) -> Result<(), Refusal> {
        let max = self.app.config().limits.max_batch;
        match n {
            0 => Err(Refusal::bad_request(
                "there should be at least one submission in a batch".into(),
            )),
            n if n > max => Err(Refusal::bad_request(format!(
                "number of submissions in a batch should be less than or equal to {max}"
            ))),
            _ => Ok(()),
        }
    }

    /// `GET /submissions/batch?tokens=a,b`: each in its place, `null` for an unknown token.
    async fn batch_show(&self, query: Query) -> Result<Response, Refusal> {
        let fields = query.fields()?;
        let tokens: Vec<&str> = query
            .tokens
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        self.batch_size(tokens.len())?;
        let found = futures::future::join_all(tokens.iter().map(|t| self.app.get(t))).await;
        let mut submissions = Vec::with_capacity(found.len());
        for record in found {
            let rendered = match record {
                Ok(record) => self.render(&record, &fields, query.base64),
                Err(AppError::NotFound { .. } | AppError::BadId { .. }) => Ok(Value::Null),
                Err(e) => return Err(e.into()),
            };
            submissions
                .push(rendered.map_err(|NotUtf8| Refusal::bad_request(NOT_UTF8_BATCH.into()))?);
        }
        Ok(json_with(
            &json!({ "submissions": submissions }),
            StatusCode::OK,
        ))
    }

    /// `GET /submissions/{token}`.
    async fn show(&self, token: &str, query: Query) -> Result<Response, Refusal> {
        let fields = query.fields()?;
        let record = self.app.get(token).await.map_err(|e| match e {
            AppError::NotFound { .. } | AppError::BadId { .. } => Refusal::Plain {
                status: StatusCode::NOT_FOUND,
                message: format!("no submission with token `{token}`"),
            },
            e => e.into(),
        })?;
        let rendered = self
            .render(&record, &fields, query.base64)
            .map_err(|NotUtf8| Refusal::bad_request(NOT_UTF8.into()))?;
        Ok(json_with(&rendered, StatusCode::OK))
    }

    fn render(
        &self,
        record: &ExecutionRecord,
        fields: &[&str],
        base64: bool,
    ) -> Result<Value, NotUtf8> {
        render::submission(record, self.app.language_table(), fields, base64)
    }

    /// Judge0's authorization (`X-Auth-User`), for the endpoints it guards: an API key.
    fn authorized(&self, user: Option<String>, then: impl FnOnce() -> Response) -> Response {
        match self.guard.is_key(user.as_deref()) {
            true => then(),
            false => error(
                StatusCode::FORBIDDEN,
                "send an API key of this server as `X-Auth-User`".into(),
            ),
        }
    }

    fn info(&self, lookup: super::routes::Lookup, params: &[String]) -> Response {
        let super::routes::Lookup::Found {
            route: Route::Judge0(endpoint),
            ..
        } = lookup
        else {
            return error(StatusCode::NOT_FOUND, "no such endpoint".into());
        };
        let languages = self.app.language_table();
        let ok = |value: Value| json_with(&value, StatusCode::OK);
        match endpoint {
            Judge0::Languages => ok(info::languages(languages, false)),
            Judge0::AllLanguages => ok(info::languages(languages, true)),
            Judge0::Language => {
                let found = params[0]
                    .parse()
                    .ok()
                    .and_then(|id| info::language(languages, id));
                match found {
                    Some(language) => ok(language),
                    None => error(
                        StatusCode::NOT_FOUND,
                        format!("no language with id `{}`", params[0]),
                    ),
                }
            }
            Judge0::Statuses => ok(info::statuses()),
            Judge0::SystemInfo => ok(info::system_info()),
            Judge0::ConfigInfo => ok(info::config_info(self.app.config())),
            Judge0::About => ok(info::about()),
            Judge0::Version => info::VERSION.into_response(),
            _ => json_with(&json!({}), StatusCode::OK),
        }
    }

    async fn workers(&self) -> Result<Response, Refusal> {
        let nodes = self.app.cluster().await?;
        let backlog = self.app.backlog().await?.iter().map(|(_, n)| n).sum();
        Ok(json_with(&info::workers(&nodes, backlog), StatusCode::OK))
    }
}

/// `GET /submissions`: Judge0 lists every submission to its administrator; here records are
/// read by token only.
fn index() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "listing submissions is not served: read each by its token".into(),
    )
}

/// `DELETE /submissions/{token}`: off, as in Judge0's default configuration.
fn delete() -> Response {
    error(StatusCode::BAD_REQUEST, "delete not allowed".into())
}

fn parse_body(body: &[u8]) -> Result<Value, Refusal> {
    serde_json::from_slice(body)
        .map_err(|e| Refusal::bad_request(format!("the body is not JSON: {e}")))
}

/// The Judge0 field behind one of CodeBeaker's.
fn judge0_field(field: &str) -> &str {
    match field {
        "code" => "source_code",
        "language" => "language_id",
        "timeout" => "wall_time_limit",
        "cpu_time" => "cpu_time_limit",
        "pids_limit" => "max_processes_and_or_threads",
        "file_size_limit" => "max_file_size",
        "args" => "command_line_arguments",
        "files" => "additional_files",
        other => other,
    }
}

fn error(status: StatusCode, message: String) -> Response {
    Refusal::Plain { status, message }.response()
}

fn json_with(body: &impl serde::Serialize, status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// How a Judge0 submission goes to its `callback_url`, as Judge0 sends it: PUT, with the
/// default fields and outputs in base64. Records that came in through other APIs are not
/// Judge0's to shape.
pub fn callback(languages: crate::languages::Languages) -> crate::webhooks::Shape {
    Arc::new(move |record: &ExecutionRecord| {
        render::is_judge0(record).then(|| {
            let body = render::submission(record, &languages, render::DEFAULT_FIELDS, true)
                .expect("base64 takes any bytes");
            crate::webhooks::Payload {
                method: warp::http::Method::PUT,
                body: serde_json::to_vec(&body).expect("JSON serialises"),
            }
        })
    })
}
