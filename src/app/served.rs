//! Whether a worker in the cluster runs a language now, read from the nodes' heartbeats
//! (each lists the languages whose images it has). A job in a language that live workers
//! exist for, but none has the image of, is refused at once with a plain 503 rather than
//! queued to wait for an image that may never come. With no live worker at all, jobs queue
//! as before: workers may be starting.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;

use super::AppError;
use crate::languages::Language;
use crate::queue::nodes::{self, NodeEntry};

/// How long a language seen served is taken as served without reading the heartbeats again.
/// Only good news is kept: a refusal always reads them afresh, so that a language is served
/// as soon as a node reports its new image.
const FRESH: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct Served {
    seen: Mutex<Option<(Instant, BTreeSet<String>)>>,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Served,
    /// No live worker: the job waits in the queue for one.
    NoWorkers,
    /// Live workers, none with the language's image.
    Unserved,
}

impl Served {
    pub async fn check(&self, nodes: &kv::Store, language: &Language) -> Result<(), AppError> {
        if self.recently_served(&language.name) {
            return Ok(());
        }
        let entries = nodes::list(nodes).await?;
        let served = served_languages(&entries);
        let verdict = verdict(&entries, &served, &language.name);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), served));
        match verdict {
            Verdict::Served | Verdict::NoWorkers => Ok(()),
            Verdict::Unserved => Err(AppError::LanguageUnavailable {
                language: language.name.clone(),
                image: language.image.clone(),
            }),
        }
    }

    fn recently_served(&self, language: &str) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        matches!(&*seen, Some((at, served)) if at.elapsed() < FRESH && served.contains(language))
    }
}

fn workers(entries: &[NodeEntry]) -> impl Iterator<Item = &NodeEntry> {
    entries.iter().filter(|e| e.role != "api")
}

fn served_languages(entries: &[NodeEntry]) -> BTreeSet<String> {
    workers(entries)
        .flat_map(|e| e.languages.iter().cloned())
        .collect()
}

fn verdict(entries: &[NodeEntry], served: &BTreeSet<String>, language: &str) -> Verdict {
    if served.contains(language) {
        Verdict::Served
    } else if workers(entries).next().is_none() {
        Verdict::NoWorkers
    } else {
        Verdict::Unserved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(role: &str, languages: &[&str]) -> NodeEntry {
        NodeEntry {
            role: role.into(),
            languages: languages.iter().map(|l| l.to_string()).collect(),
            ..NodeEntry::worker("n", chrono::Utc::now(), vec![])
        }
    }

    fn decide(entries: &[NodeEntry], language: &str) -> Verdict {
        verdict(entries, &served_languages(entries), language)
    }

    #[test]
    fn a_language_is_served_when_any_worker_has_its_image() {
        let nodes = [
            node("worker", &["python"]),
            node("serve", &["python", "zig"]),
        ];
        assert_eq!(decide(&nodes, "zig"), Verdict::Served);
        assert_eq!(decide(&nodes, "kotlin"), Verdict::Unserved);
    }

    #[test]
    fn with_no_worker_jobs_queue_and_api_nodes_do_not_count() {
        assert_eq!(decide(&[], "python"), Verdict::NoWorkers);
        assert_eq!(decide(&[node("api", &[])], "python"), Verdict::NoWorkers);
        assert_eq!(
            decide(&[node("api", &[]), node("worker", &[])], "python"),
            Verdict::Unserved
        );
    }
}
