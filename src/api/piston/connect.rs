//! `GET /api/v2/connect`: Piston's interactive WebSocket. The client sends `init` (the
//! execute request's fields) within a second, then `data` on stream `stdin` and `signal`; the
//! server sends `runtime`, `stage` (compile, run), `data` on `stdout`/`stderr` as the program
//! writes, `exit` for each stage, and closes with 4999 after the run. Refusals close with
//! Piston's codes: 4000 already initialized, 4001 no `init` in time, 4002 after an `error`
//! message, 4003 not yet initialized, 4004 a stream other than stdin, 4005 an unknown signal.
//! Unlike Piston's own server, a `signal` reaches the program. A session's stdin is capped as
//! one request's is (4002 past it). A client that leaves cancels its job.

use std::time::Duration;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, Stream, StreamExt};
use serde_json::{json, Value};
use uuid::Uuid;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::ws::{Message, WebSocket, Ws};

use super::request;
use super::runtimes::Runtime;
use crate::api::session::{reason, Held};
use crate::app::{Executions, RequestId};
use crate::live::{signal_number, Event, Input, Stream as Output};
use crate::model::{ExecutionRecord, Status};

/// Piston closes a session that has not sent `init` after a second.
const INIT_PATIENCE: Duration = Duration::from_secs(1);

type Sink = SplitSink<WebSocket, Message>;
type Source = SplitStream<WebSocket>;

/// `max_input`: the most stdin a session may send, as one request may carry.
pub fn connect(ws: Option<Ws>, request_id: RequestId, app: Executions, max_input: u64) -> Response {
    let Some(ws) = ws else {
        let body = json!({"message": "GET /api/v2/connect is a WebSocket: connect with a WebSocket client"});
        return warp::reply::with_status(warp::reply::json(&body), StatusCode::UPGRADE_REQUIRED)
            .into_response();
    };
    ws.on_upgrade(move |socket| session(socket, app, request_id, max_input))
        .into_response()
}

/// How a session ends: Piston's close code and reason, and an `error` message before it.
struct Close {
    code: u16,
    reason: &'static str,
    error: Option<String>,
}

const fn close(code: u16, reason: &'static str) -> Close {
    Close {
        code,
        reason,
        error: None,
    }
}

/// 4002, after an `error` message saying what went wrong.
fn notified(error: impl ToString) -> Close {
    Close {
        code: 4002,
        reason: "Notified Error",
        error: Some(error.to_string()),
    }
}

async fn session(socket: WebSocket, app: Executions, request_id: RequestId, max_input: u64) {
    let (mut sink, mut source) = socket.split();
    let ended = run(&mut sink, &mut source, &app, &request_id, max_input).await;
    let close = match ended {
        Ok(Some(())) => close(4999, "Job Completed"),
        // The client is gone: nobody to tell.
        Ok(None) => return,
        Err(close) => close,
    };
    if let Some(error) = &close.error {
        let _ = send(&mut sink, json!({"type": "error", "message": error})).await;
    }
    let _ = sink
        .send(Message::close_with(close.code, reason(close.reason)))
        .await;
    let _ = sink.close().await;
}

/// The session from `init` to the run's exit; None when the client left.
async fn run(
    sink: &mut Sink,
    source: &mut Source,
    app: &Executions,
    request_id: &RequestId,
    max_input: u64,
) -> Result<Option<()>, Close> {
    let first = tokio::time::timeout(INIT_PATIENCE, next_message(source))
        .await
        .map_err(|_| close(4001, "Initialization Timeout"))??;
    let Some(init) = first else { return Ok(None) };
    if init["type"] != "init" {
        return Err(close(4003, "Not yet initialized"));
    }
    let config = app.config();
    let (mut request, runtime) =
        request::read(&init, app.language_table(), &config.limits).map_err(notified)?;
    // A session's stdin is what the client sends as `data`, as in Piston.
    request.stdin = String::new();
    let (record, events) = app
        .submit_interactive(request, request_id)
        .await
        .map_err(notified)?;
    let id = record.execution_id;
    let announced =
        json!({"type": "runtime", "language": runtime.language, "version": runtime.version});
    let ended = match send(sink, announced).await {
        Ok(()) => {
            Relay::new(runtime, id, max_input)
                .run(sink, source, app, events)
                .await
        }
        Err(()) => Ok(None),
    };
    if !matches!(ended, Ok(Some(()))) {
        if let Err(e) = app.cancel(&id.to_string()).await {
            tracing::warn!(execution_id = %id, error = %e, "cancelling a Piston session's execution");
        }
    }
    ended
}

/// Where the session stands between the job and the client.
struct Relay {
    runtime: Runtime,
    id: Uuid,
    held: Held,
    /// The stage the client was last told of.
    stage: Option<&'static str>,
}

impl Relay {
    fn new(runtime: Runtime, id: Uuid, max_input: u64) -> Relay {
        Relay {
            runtime,
            id,
            held: Held::new(max_input),
            stage: None,
        }
    }

    async fn run(
        mut self,
        sink: &mut Sink,
        source: &mut Source,
        app: &Executions,
        events: impl Stream<Item = Event>,
    ) -> Result<Option<()>, Close> {
        tokio::pin!(events);
        loop {
            tokio::select! {
                event = events.next() => {
                    let Some(event) = event else {
                        return Err(notified("the execution's events ended before its result"));
                    };
                    if let Event::Final(record) = event {
                        return Ok(self.finish(sink, &record).await.ok());
                    }
                    if self.event(sink, app, event).await.is_err() {
                        return Ok(None);
                    }
                }
                message = next_message(source) => {
                    let Some(message) = message? else { return Ok(None) };
                    if let Some(input) = self.held.push(input(&message)?).map_err(notified)? {
                        app.send_input(&self.id, &input).await.map_err(notified)?;
                    }
                }
            }
        }
    }

    /// Passes an event on; Err when the client is gone.
    async fn event(&mut self, sink: &mut Sink, app: &Executions, event: Event) -> Result<(), ()> {
        match event {
            Event::Status(Status::Running) => {
                for input in self.held.start() {
                    if let Err(e) = app.send_input(&self.id, &input).await {
                        tracing::debug!(error = %e, "passing held input");
                    }
                }
                let first = if self.runtime.compiled {
                    "compile"
                } else {
                    "run"
                };
                self.enter(sink, first).await
            }
            Event::Output { stream, bytes } => {
                // Output comes from the program only: its compile step, if any, went well.
                self.compiled(sink, Some(0), None).await?;
                let stream = match stream {
                    Output::Stdout => "stdout",
                    Output::Stderr => "stderr",
                };
                let data = String::from_utf8_lossy(&bytes);
                send(
                    sink,
                    json!({"type": "data", "stream": stream, "data": data}),
                )
                .await
            }
            _ => Ok(()),
        }
    }

    /// Tells the client of a stage it is not in yet.
    async fn enter(&mut self, sink: &mut Sink, stage: &'static str) -> Result<(), ()> {
        if self.stage == Some(stage) {
            return Ok(());
        }
        self.stage = Some(stage);
        send(sink, json!({"type": "stage", "stage": stage})).await
    }

    /// Ends the compile stage (when the client is in it) and enters the run.
    async fn compiled(
        &mut self,
        sink: &mut Sink,
        code: Option<i64>,
        signal: Option<&str>,
    ) -> Result<(), ()> {
        if self.runtime.compiled && self.stage != Some("run") {
            self.enter(sink, "compile").await?;
            send(
                sink,
                json!({"type": "exit", "stage": "compile", "code": code, "signal": signal}),
            )
            .await?;
        }
        self.enter(sink, "run").await
    }

    /// The final record: whatever stage is left, told, then the run's exit.
    async fn finish(&mut self, sink: &mut Sink, record: &ExecutionRecord) -> Result<(), ()> {
        if let (Some(compile), true) = (&record.compile, record.status == Status::CompileError) {
            self.enter(sink, "compile").await?;
            for (stream, text) in [("stdout", &compile.stdout), ("stderr", &compile.stderr)] {
                if !text.is_empty() {
                    send(
                        sink,
                        json!({"type": "data", "stream": stream, "data": text}),
                    )
                    .await?;
                }
            }
            let signal = compile.timed_out.then_some("SIGKILL");
            let exit = json!({"type": "exit", "stage": "compile", "code": compile.exit_code, "signal": signal});
            return send(sink, exit).await;
        }
        self.compiled(sink, Some(0), None).await?;
        let run = super::render::run(record);
        send(
            sink,
            json!({"type": "exit", "stage": "run", "code": run["code"], "signal": run["signal"]}),
        )
        .await
    }
}

/// The input a client message carries, or the close its kind calls for.
fn input(message: &Value) -> Result<Input, Close> {
    match message["type"].as_str() {
        Some("init") => Err(close(4000, "Already Initialized")),
        Some("data") if message["stream"] == "stdin" => {
            let data = message["data"].as_str().unwrap_or_default();
            Ok(Input::Stdin(data.as_bytes().to_vec()))
        }
        Some("data") => Err(close(4004, "Can only write to stdin")),
        Some("signal") => message["signal"]
            .as_str()
            .and_then(signal_number)
            .map(Input::Signal)
            .ok_or(close(4005, "Invalid signal")),
        _ => Err(notified(format!(
            "unknown message type: {}",
            message["type"]
        ))),
    }
}

/// The client's next message as JSON; None once it has closed or gone.
async fn next_message(source: &mut Source) -> Result<Option<Value>, Close> {
    loop {
        let Some(Ok(message)) = source.next().await else {
            return Ok(None);
        };
        if message.is_close() {
            return Ok(None);
        }
        let text = match message.to_str() {
            Ok(text) => text,
            Err(()) if message.is_binary() => std::str::from_utf8(message.as_bytes())
                .map_err(|_| notified("messages are JSON text"))?,
            Err(()) => continue,
        };
        return serde_json::from_str(text).map(Some).map_err(notified);
    }
}

async fn send(sink: &mut Sink, message: Value) -> Result<(), ()> {
    sink.send(Message::text(message.to_string()))
        .await
        .map_err(drop)
}
