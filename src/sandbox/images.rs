//! Which languages this node can run: those whose image Docker has. A new machine builds a
//! few images first and the rest while it already serves (scripts/setup.sh), so a missing
//! image makes its language unavailable here rather than stopping the node; the node looks
//! again every few seconds and serves each image as it appears.

use std::collections::BTreeSet;
use std::sync::RwLock;
use std::time::Duration;

use super::{Sandbox, SandboxError};
use crate::languages::Languages;

/// How often a node with missing images looks for them again.
pub const LOOK_AGAIN: Duration = Duration::from_secs(5);

/// The languages whose images are present, by name.
#[derive(Debug, Default)]
pub struct Installed {
    names: RwLock<BTreeSet<String>>,
}

impl Installed {
    pub fn has(&self, language: &str) -> bool {
        self.read().contains(language)
    }

    /// The installed languages' names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.read().iter().cloned().collect()
    }

    /// Asks Docker for each image not yet seen; returns the languages found this time. An
    /// unreachable Docker is an error (the node cannot start, or tries again later).
    pub async fn refresh(
        &self,
        sandbox: &Sandbox,
        languages: &Languages,
    ) -> Result<Vec<String>, SandboxError> {
        let missing: Vec<_> = languages
            .all()
            .iter()
            .filter(|l| !self.has(&l.name))
            .collect();
        let found =
            futures::future::join_all(missing.iter().map(|l| sandbox.check_image(&l.image)));
        let mut added = Vec::new();
        for (language, checked) in missing.iter().zip(found.await) {
            match checked {
                Ok(()) => added.push(language.name.clone()),
                Err(SandboxError::MissingImage(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.names
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(added.iter().cloned());
        Ok(added)
    }

    /// The languages still without an image.
    pub fn missing<'a>(&self, languages: &'a Languages) -> Vec<&'a str> {
        let names = self.read();
        languages
            .names()
            .into_iter()
            .filter(|n| !names.contains(*n))
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeSet<String>> {
        self.names.read().unwrap_or_else(|e| e.into_inner())
    }
}
