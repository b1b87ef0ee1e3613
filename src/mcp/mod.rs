//! The MCP adapter: AI agents use CodeBeaker as their code-execution tool over the Model
//! Context Protocol, through rmcp (the official Rust SDK), which speaks both eras of the
//! protocol: the stateless revision 2026-07-28 (`server/discover`, a version in each request's
//! `_meta`) and the `initialize` handshake up to 2025-11-25.
//!
//! - [`tools`]: the tools (`execute`, `run_tests`, `languages`): descriptions, argument
//!   schemas, and a record as a result.
//! - [`runner`]: where their programs run: this node's application service, or a server
//!   reached over REST or NATS.
//! - [`schema`]: JSON Schemas from the types the REST API documents.
//!
//! Two transports: stdio ([`serve_stdio`], for `codebeaker mcp`) and streamable HTTP
//! ([`http_service`], mounted at `/mcp` on the REST listener by `api`).

pub mod runner;
mod schema;
pub mod tools;

use std::time::Duration;

use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, JsonObject,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer, ServerInitializeError};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServiceExt};

use uuid::Uuid;

use crate::app::RequestId;
pub use runner::Runner;

/// What the server tells a client about itself and how to use it.
const INSTRUCTIONS: &str = "CodeBeaker runs untrusted code in hardened sandboxes (no network, \
limited time, memory and output). Call `execute` to run a program and see its output and exit \
code, `run_tests` to check a program against stdin/expected-output cases, and `languages` for \
the language names they take.";

/// The MCP server: the tools over a [`Runner`]. Cheap to clone (one per HTTP request).
#[derive(Clone)]
pub struct Server {
    runner: Runner,
}

impl Server {
    pub fn new(runner: Runner) -> Server {
        Server { runner }
    }

    /// Runs the tool `name` (a known one); every way it can fail is a result that says why.
    /// A client that gives up on the call (`cancelled`) takes its job with it.
    async fn call(
        &self,
        name: &str,
        arguments: Option<JsonObject>,
        id: RequestId,
        cancelled: impl std::future::Future<Output = ()>,
    ) -> CallToolResult {
        let request = match name {
            tools::EXECUTE => tools::parse(name, arguments).map(tools::ExecuteArgs::into_request),
            tools::RUN_TESTS => {
                tools::parse(name, arguments).map(tools::RunTestsArgs::into_request)
            }
            _ => return self.languages(name, arguments).await,
        };
        let mut request = match request {
            Ok(request) => request,
            Err(refused) => return refused,
        };
        let execution = *request.execution_id.get_or_insert_with(Uuid::new_v4);
        tokio::select! {
            outcome = self.runner.run(request, &id) => match outcome {
                Ok(record) => tools::record_result(&record),
                Err(e) => tools::refusal(e.to_string()),
            },
            () = cancelled => {
                if let Err(e) = self.runner.cancel(execution).await {
                    tracing::warn!(%execution, error = %e, "could not cancel an abandoned call's job");
                }
                tools::refusal(format!("the call was cancelled, and execution {execution} with it"))
            }
        }
    }

    async fn languages(&self, name: &str, arguments: Option<JsonObject>) -> CallToolResult {
        if let Err(refused) = tools::parse::<tools::NoArgs>(name, arguments) {
            return refused;
        }
        match self.runner.languages().await {
            Ok(list) => tools::languages_result(list),
            Err(e) => tools::refusal(e.to_string()),
        }
    }
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        let mut config = ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions(INSTRUCTIONS);
        config.server_info =
            Implementation::new("codebeaker", env!("CARGO_PKG_VERSION")).with_title("CodeBeaker");
        config
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items((*tools::list()).clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools::list().iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // An unknown tool is the one protocol error: the call names nothing to run.
        let name = request.name.to_string();
        if self.get_tool(&name).is_none() {
            let known: Vec<_> = tools::list().iter().map(|t| t.name.to_string()).collect();
            let message = format!("no tool `{name}`; the tools are {}", known.join(", "));
            return Err(ErrorData::invalid_params(message, None));
        }
        let id = request_id(&context);
        let cancelled = context.ct.clone().cancelled_owned();
        Ok(self
            .call(&name, request.arguments, id, cancelled)
            .await
            .into())
    }
}

/// The HTTP request's id when the call came over HTTP (so that the job's logs join the
/// request's), else a new one.
fn request_id(context: &RequestContext<RoleServer>) -> RequestId {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<RequestId>())
        .cloned()
        .unwrap_or_else(|| RequestId::from_client(None))
}

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("the MCP session did not start: {0}")]
    Start(#[source] Box<ServerInitializeError>),
    #[error("the MCP session ended with an error: {0}")]
    Session(#[source] tokio::task::JoinError),
}

/// Serves MCP on stdin and stdout until stdin closes. Nothing else may write to stdout.
pub async fn serve_stdio(runner: Runner) -> Result<(), McpError> {
    let running = match Server::new(runner).serve(rmcp::transport::stdio()).await {
        Ok(running) => running,
        // The client left before saying anything: the end of stdin ends the server.
        Err(ServerInitializeError::ConnectionClosed(_)) => return Ok(()),
        Err(e) => return Err(McpError::Start(Box::new(e))),
    };
    running.waiting().await.map_err(McpError::Session)?;
    Ok(())
}

pub type HttpService = StreamableHttpService<Server, NeverSessionManager>;

/// The streamable HTTP service: stateless (any API node can answer any request, as with
/// REST), JSON replies, and browsers' requests only from the origins given.
pub fn http_service(runner: Runner, origins: Vec<String>, max_body: usize) -> HttpService {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        .with_max_request_body_bytes(max_body)
        // Host names are the deployment's to choose; DNS rebinding is stopped by the Origin
        // check, which every browser request carries.
        .disable_allowed_hosts()
        .with_allowed_origins(origins)
        .enforce_origin_validation();
    let server = Server::new(runner);
    StreamableHttpService::new(move || Ok(server.clone()), Default::default(), config)
}
