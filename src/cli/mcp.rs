//! `codebeaker mcp`: MCP on stdin and stdout. Pointed at a server (`--url`, `--nats`) it is a
//! client of that server. Pointed at none, it starts a node of its own for as long as it runs:
//! its own nats-server on a free loopback port with its files in a temporary directory, its
//! own node id, and its HTTP API on a free port, so that it never collides with a
//! `codebeaker serve` on the same machine. Stdout carries MCP alone; progress and errors go
//! to stderr, which MCP hosts show in their logs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{client, fail, shutdown_signal};
use crate::config::Config;
use crate::mcp::{self, McpError, Runner};
use crate::node::{Node, Role};

#[derive(Args)]
pub struct McpArgs {
    /// Run the jobs on a CodeBeaker server over REST at this address.
    #[arg(long, conflicts_with = "nats")]
    url: Option<String>,
    /// Run the jobs on a CodeBeaker server over NATS request/reply at this URL.
    #[arg(long)]
    nats: Option<String>,
    /// Jobs run at once by the node of its own (with neither --url nor --nats).
    #[arg(long)]
    workers: Option<usize>,
}

pub async fn serve(args: McpArgs, config: Config) -> ExitCode {
    if args.url.is_none() && args.nats.is_none() {
        return with_own_node(config, args.workers).await;
    }
    let url = args.url.unwrap_or_default();
    let runner = match client(args.nats.as_deref(), &url, &config).await {
        Ok(client) => Runner::Remote(client),
        Err(e) => return fail(e),
    };
    ended(tokio::select! {
        served = mcp::serve_stdio(runner) => served,
        _ = shutdown_signal() => Ok(()),
    })
}

async fn with_own_node(mut config: Config, workers: Option<usize>) -> ExitCode {
    let own = uuid::Uuid::new_v4().simple().to_string();
    let dir = std::env::temp_dir().join(format!("codebeaker-mcp-{}", &own[..12]));
    config.listen = ([127, 0, 0, 1], 0).into();
    config.node_id = format!("mcp-{}", &own[..12]);
    config.workers = workers.unwrap_or(config.workers);
    if config.nats.url.is_none() {
        config.nats.data_dir = dir.clone();
        config.nats.embedded_port = match free_port() {
            Ok(port) => port,
            Err(e) => return fail(format!("no free port for nats-server: {e}")),
        };
    }
    eprintln!("codebeaker mcp: starting a node of its own (nats-server and Docker workers)");
    let node = match Node::start(config, Role::Serve).await {
        Ok(node) => node,
        Err(e) => {
            remove(&dir);
            return fail(format!("cannot start a node: {e}"));
        }
    };
    eprintln!(
        "codebeaker mcp: ready, serving MCP on stdio (node {}, HTTP on {})",
        node.node_id(),
        node.addr
    );
    let served = tokio::select! {
        served = mcp::serve_stdio(Runner::Local(node.executions())) => served,
        _ = shutdown_signal() => Ok(()),
    };
    node.shutdown().await;
    remove(&dir);
    ended(served)
}

fn ended(served: Result<(), McpError>) -> ExitCode {
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e.to_string()),
    }
}

fn remove(dir: &PathBuf) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("codebeaker mcp: could not remove {}: {e}", dir.display());
        }
    }
}

/// A port nothing listens on now (the kernel's pick; free again once the probe closes).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
