//! `GET /execute/ws`: one interactive execution over a WebSocket. The client's first text
//! frame is the request, as `POST /execute` takes it; its later frames are stdin, eof and
//! signals ([`ClientInput`]). The server answers `accepted` with the execution id, then sends
//! the execution's events as JSON text frames ([`Event::frame`]) and closes with 1000 after
//! `final`.
//!
//! A session that ends early takes its execution with it: the job is cancelled, so nothing
//! runs on for a client that is gone. A refusal is an `error` frame (the body a REST error
//! has) and then a close whose code is 4000 + the HTTP status the same error gets over REST,
//! or 1003 for a binary frame, 1009 for a frame over the cap, 1011 for our own failure.

use std::time::Duration;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, Stream, StreamExt};
use serde_json::json;
use uuid::Uuid;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::ws::{Message, WebSocket, Ws};

use crate::app::{AppError, ErrorBody, Executions, RequestId};
use crate::live::{ClientInput, Event, Input};
use crate::model::Status;

/// How long a new session may take to send its request.
const REQUEST_PATIENCE: Duration = Duration::from_secs(10);
/// RFC 6455 caps a close frame's reason at 123 bytes.
const MAX_REASON: usize = 123;

#[utoipa::path(get, path = "/execute/ws", tag = "executions",
    responses(
        (status = 101, description = "A WebSocket session: send the request (as `POST /execute` takes it) as the first text frame, then `{\"type\": \"stdin\", \"data\": ...}`, `{\"type\": \"eof\"}` and `{\"type\": \"signal\", \"signal\": \"SIGINT\"}`; the server answers `{\"type\": \"accepted\", \"execution_id\": ...}`, then sends `status`, `stdout`, `stderr` and `usage` frames, then `{\"type\": \"final\", \"record\": ...}`"),
        (status = 426, description = "Not a WebSocket upgrade request", body = ErrorBody),
    ))]
/// `GET /execute/ws`: upgrades to an interactive session; anything else is told to.
pub fn execute_ws(
    ws: Option<Ws>,
    request_id: RequestId,
    app: Executions,
    max_input: u64,
) -> Response {
    let Some(ws) = ws else {
        let body = ErrorBody::new(
            "upgrade_required",
            "GET /execute/ws is a WebSocket: connect with a WebSocket client".into(),
            None,
        );
        return warp::reply::with_status(warp::reply::json(&body), StatusCode::UPGRADE_REQUIRED)
            .into_response();
    };
    ws.on_upgrade(move |socket| session(socket, app, request_id, max_input))
        .into_response()
}

type Sink = SplitSink<WebSocket, Message>;
type Source = SplitStream<WebSocket>;

async fn session(socket: WebSocket, app: Executions, request_id: RequestId, max_input: u64) {
    let (mut sink, mut source) = socket.split();
    let ended = match first_request(&mut source, max_input).await {
        Ok(Some(request)) => {
            run(
                &mut sink,
                &mut source,
                &app,
                request,
                &request_id,
                max_input,
            )
            .await
        }
        // The client left before it asked for anything.
        Ok(None) => return,
        Err(refusal) => Err(refusal),
    };
    let close = match ended {
        Ok(()) => Message::close_with(1000u16, "final"),
        Err(refusal) => {
            let _ = sink.send(Message::text(refusal.frame().to_string())).await;
            Message::close_with(refusal.code, reason(&refusal.body.error.message))
        }
    };
    // The client may be gone already: there is nobody left to tell.
    let _ = sink.send(close).await;
    let _ = sink.close().await;
}

/// Why a session ends before its final record: what to tell the client, and the close code.
#[derive(Debug)]
struct Refusal {
    code: u16,
    body: ErrorBody,
}

impl Refusal {
    fn new(code: u16, error: &str, message: String) -> Refusal {
        Refusal {
            code,
            body: ErrorBody::new(error, message, None),
        }
    }

    fn frame(&self) -> serde_json::Value {
        json!({"type": "error", "error": self.body.error})
    }
}

impl From<AppError> for Refusal {
    fn from(error: AppError) -> Refusal {
        let (status, _, _) = error.parts();
        Refusal {
            code: 4000 + status.as_u16(),
            body: error.body(),
        }
    }
}

/// The request, from the session's first frame; None when the client leaves first.
async fn first_request(
    source: &mut Source,
    max_bytes: u64,
) -> Result<Option<crate::model::ExecuteRequest>, Refusal> {
    let patience = REQUEST_PATIENCE.as_secs();
    let text = tokio::time::timeout(REQUEST_PATIENCE, next_text(source, max_bytes))
        .await
        .map_err(|_| {
            let message = format!("send the request as the first frame within {patience} s");
            Refusal::new(4408, "request_timeout", message)
        })??;
    match text {
        Some(text) => Ok(Some(super::parse(text.as_bytes())?)),
        None => Ok(None),
    }
}

/// The client's next text frame, None once it has closed or gone. Pings are answered by the
/// WebSocket layer itself.
async fn next_text(source: &mut Source, max_bytes: u64) -> Result<Option<String>, Refusal> {
    loop {
        let Some(Ok(message)) = source.next().await else {
            return Ok(None);
        };
        if message.is_close() {
            return Ok(None);
        }
        if message.is_binary() {
            let message = "frames are JSON text; this one is binary".to_string();
            return Err(Refusal::new(1003, "binary_frame", message));
        }
        if let Ok(text) = message.to_str() {
            if text.len() as u64 > max_bytes {
                let message = format!("a frame here is at most {max_bytes} bytes");
                return Err(Refusal::new(1009, "too_large", message));
            }
            return Ok(Some(text.to_string()));
        }
    }
}

/// Submits the job and relays between it and the client until its final record; a session
/// that ends any other way cancels the job.
async fn run(
    sink: &mut Sink,
    source: &mut Source,
    app: &Executions,
    request: crate::model::ExecuteRequest,
    request_id: &RequestId,
    max_input: u64,
) -> Result<(), Refusal> {
    let (record, events) = app.submit_interactive(request, request_id).await?;
    let id = record.execution_id;
    // The id first, so that a client can look the execution up or cancel it from elsewhere.
    let accepted = json!({"type": "accepted", "execution_id": id, "status": record.status});
    let ended = match sink.send(Message::text(accepted.to_string())).await {
        Ok(()) => relay(sink, source, app, id, events, Inbox::new(max_input)).await,
        Err(_) => Ok(End::ClientLeft),
    };
    if !matches!(ended, Ok(End::Final)) {
        if let Err(e) = app.cancel(&id.to_string()).await {
            tracing::warn!(execution_id = %id, error = %e, "cancelling a session's execution");
        }
    }
    ended.map(drop)
}

enum End {
    Final,
    ClientLeft,
}

async fn relay(
    sink: &mut Sink,
    source: &mut Source,
    app: &Executions,
    id: Uuid,
    events: impl Stream<Item = Event>,
    mut inbox: Inbox,
) -> Result<End, Refusal> {
    tokio::pin!(events);
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else {
                    let message = "the execution's events ended before its final record";
                    return Err(Refusal::new(1011, "internal_error", message.into()));
                };
                if matches!(event, Event::Status(Status::Running)) {
                    for input in inbox.start() {
                        app.send_input(&id, &input).await?;
                    }
                }
                let last = matches!(event, Event::Final(_));
                if sink.send(Message::text(event.frame().to_string())).await.is_err() {
                    return Ok(End::ClientLeft);
                }
                if last {
                    return Ok(End::Final);
                }
            }
            text = next_text(source, inbox.held.max) => {
                let Some(text) = text? else { return Ok(End::ClientLeft) };
                if let Some(input) = inbox.take(&text)? {
                    app.send_input(&id, &input).await?;
                }
            }
        }
    }
}

/// A session's input: counted against its stdin cap (what one request may carry), and held
/// until the job runs, since a job not yet running would not hear it, then passed on as it
/// comes. Shared by every interactive session (`/execute/ws`, Piston's `/api/v2/connect`).
#[derive(Debug)]
pub(super) struct Held {
    max: u64,
    left: u64,
    running: bool,
    held: Vec<Input>,
}

/// More stdin than a session may send.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("a session's stdin is at most {0} bytes")]
pub(super) struct TooMuchStdin(pub u64);

impl Held {
    pub(super) fn new(max: u64) -> Held {
        Held {
            max,
            left: max,
            running: false,
            held: Vec::new(),
        }
    }

    /// The input, when it can go to the job now.
    pub(super) fn push(&mut self, input: Input) -> Result<Option<Input>, TooMuchStdin> {
        if let Input::Stdin(bytes) = &input {
            self.left = self
                .left
                .checked_sub(bytes.len() as u64)
                .ok_or(TooMuchStdin(self.max))?;
        }
        if self.running {
            return Ok(Some(input));
        }
        self.held.push(input);
        Ok(None)
    }

    /// The job runs: what was held goes now, and the rest as it comes.
    pub(super) fn start(&mut self) -> Vec<Input> {
        self.running = true;
        std::mem::take(&mut self.held)
    }
}

/// The client's frames after the request, parsed into input for [`Held`].
#[derive(Debug)]
struct Inbox {
    held: Held,
}

impl Inbox {
    fn new(max: u64) -> Inbox {
        Inbox {
            held: Held::new(max),
        }
    }

    /// The input a frame carries, when it can go to the job now.
    fn take(&mut self, text: &str) -> Result<Option<Input>, Refusal> {
        let invalid = |message: String| Refusal::new(4400, "invalid_frame", message);
        let input: ClientInput = serde_json::from_str(text).map_err(|e| {
            invalid(format!(
                "a frame after the request is {{\"type\": \"stdin\", \"data\": \"...\"}}, \
                 {{\"type\": \"eof\"}} or {{\"type\": \"signal\", \"signal\": \"SIGINT\"}}: {e}"
            ))
        })?;
        let input = Input::try_from(input).map_err(invalid)?;
        self.held
            .push(input)
            .map_err(|e| Refusal::new(4413, "too_large", e.to_string()))
    }

    fn start(&mut self) -> Vec<Input> {
        self.held.start()
    }
}

/// `message`, cut at a character boundary to fit a close frame.
pub(super) fn reason(message: &str) -> String {
    let mut end = message.len().min(MAX_REASON);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_waits_for_the_job_to_run_then_flows() {
        let mut inbox = Inbox::new(100);
        let held = inbox.take(r#"{"type": "stdin", "data": "1 2\n"}"#).unwrap();
        assert_eq!(held, None);
        assert_eq!(inbox.take(r#"{"type": "eof"}"#).unwrap(), None);
        assert_eq!(
            inbox.start(),
            vec![Input::Stdin(b"1 2\n".to_vec()), Input::Eof]
        );
        let now = inbox
            .take(r#"{"type": "signal", "signal": "SIGINT"}"#)
            .unwrap();
        assert_eq!(now, Some(Input::Signal(libc::SIGINT)));
        assert_eq!(
            inbox.start(),
            vec![],
            "a second `running` sends nothing twice"
        );
    }

    #[test]
    fn bad_frames_are_refused_with_codes_that_say_why() {
        let mut inbox = Inbox::new(4);
        for frame in [
            r#"{"type": "dance"}"#,
            "not json",
            r#"{"type": "signal", "signal": "SIGFOO"}"#,
        ] {
            let refusal = inbox.take(frame).unwrap_err();
            assert_eq!(
                (refusal.code, refusal.body.error.code.as_str()),
                (4400, "invalid_frame")
            );
        }
        assert!(inbox.take(r#"{"type": "stdin", "data": "four"}"#).is_ok());
        let over = inbox.take(r#"{"type": "stdin", "data": "!"}"#).unwrap_err();
        assert_eq!(
            (over.code, over.body.error.code.as_str()),
            (4413, "too_large")
        );
    }

    #[test]
    fn close_reasons_fit_the_frame_on_a_character_boundary() {
        let long = "é".repeat(100);
        let cut = reason(&long);
        assert!(cut.len() <= MAX_REASON && cut.len() >= MAX_REASON - 1);
        assert!(long.starts_with(&cut));
        assert_eq!(reason("short"), "short");
    }
}
