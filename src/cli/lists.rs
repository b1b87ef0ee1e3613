//! The tables `codebeaker languages` and `codebeaker cluster` print.

use std::process::ExitCode;

use super::{fail, ServerArgs};
use crate::config::Config;

pub async fn languages(server: &ServerArgs, config: &Config) -> ExitCode {
    let client = match server.client(config).await {
        Ok(client) => client,
        Err(e) => return fail(e),
    };
    match client.languages().await {
        Ok(list) => {
            println!("{:<12} {:<24} {:<10}", "name", "aliases", "version");
            for l in list {
                println!(
                    "{:<12} {:<24} {:<10}",
                    l.name,
                    l.aliases.join(", "),
                    l.version
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.to_string()),
    }
}

pub async fn cluster(server: &ServerArgs, config: &Config) -> ExitCode {
    let client = match server.client(config).await {
        Ok(client) => client,
        Err(e) => return fail(e),
    };
    let nodes = match client.cluster().await {
        Ok(nodes) => nodes,
        Err(e) => return fail(e.to_string()),
    };
    println!(
        "{:<20} {:<7} {:>7} {:>5} {:<6} {:<9} {:<20} languages",
        "node", "role", "workers", "busy", "ready", "version", "last heartbeat"
    );
    for n in nodes {
        let languages = match n.languages.len() {
            0 => "-".to_string(),
            k if k > 4 => format!("{} and {} more", n.languages[..4].join(", "), k - 4),
            _ => n.languages.join(", "),
        };
        println!(
            "{:<20} {:<7} {:>7} {:>5} {:<6} {:<9} {:<20} {}",
            n.id,
            n.role,
            n.workers,
            n.busy,
            if n.ready { "yes" } else { "no" },
            n.version,
            n.last_heartbeat.format("%Y-%m-%d %H:%M:%S"),
            languages
        );
    }
    ExitCode::SUCCESS
}
