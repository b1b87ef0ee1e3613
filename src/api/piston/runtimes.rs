//! Piston's runtimes: each language under its name, aliases and a semver version, and how a
//! request's `language` (a name or an alias) and `version` (a semver selector, `*` for any)
//! pick one.

use serde::Serialize;

use crate::config::LimitsConfig;
use crate::languages::{Language, Languages};

/// A runtime as `GET /api/v2/runtimes` lists it, and what a request needs of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Runtime {
    pub language: String,
    pub version: String,
    pub aliases: Vec<String>,
    /// The compile step's time limit, for the compiled languages.
    #[serde(skip)]
    pub compile_timeout_ms: u64,
    #[serde(skip)]
    pub compiled: bool,
}

/// A language's version as semver: its first three numbers, zeros for those it does not
/// give (`languages.toml` keeps major.minor where Debian's updates move the patch level).
pub fn semver(version: &str) -> semver::Version {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    semver::Version::new(next(), next(), next())
}

fn runtime(language: &Language, limits: &LimitsConfig) -> Runtime {
    let compile = language
        .limits
        .compile_timeout
        .unwrap_or(limits.compile_timeout_secs);
    Runtime {
        language: language.name.clone(),
        version: semver(&language.version).to_string(),
        aliases: language.aliases.clone(),
        compile_timeout_ms: (compile * 1000.0) as u64,
        compiled: language.compile.is_some(),
    }
}

pub fn list(languages: &Languages, limits: &LimitsConfig) -> Vec<Runtime> {
    languages.all().iter().map(|l| runtime(l, limits)).collect()
}

/// The runtime a request names: `language` its name or one of its aliases (exactly, as
/// Piston matches), `version` a selector it satisfies.
pub fn find(
    languages: &Languages,
    limits: &LimitsConfig,
    language: &str,
    version: &str,
) -> Option<Runtime> {
    let wanted = semver::VersionReq::parse(version).ok()?;
    let found = languages
        .all()
        .iter()
        .find(|l| l.name == language || l.aliases.iter().any(|a| a == language))?;
    wanted
        .matches(&semver(&found.version))
        .then(|| runtime(found, limits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_become_semver() {
        assert_eq!(semver("3.11.2").to_string(), "3.11.2");
        assert_eq!(semver("18.20").to_string(), "18.20.0");
        assert_eq!(semver("6.8.0.105").to_string(), "6.8.0");
    }

    #[test]
    fn names_aliases_and_selectors_pick_a_runtime() {
        let languages = Languages::load(None).unwrap();
        let find = |l: &str, v: &str| find(&languages, &LimitsConfig::default(), l, v);
        for (language, version) in [
            ("python", "3.11.2"),
            ("py", "*"),
            ("python3", "3.x"),
            ("js", ">=18"),
        ] {
            assert!(find(language, version).is_some(), "{language} {version}");
        }
        assert!(find("python", "2.x").is_none());
        assert!(find("Python", "*").is_none(), "exact names, as Piston");
        assert!(find("python", "not a version").is_none());
    }
}
