//! Language definitions: data loaded from `languages.toml`, looked up by name or alias.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{Bounded, LimitsConfig};
use crate::sandbox::limits::ByteSize;

/// The definitions shipped with the binary, used when no `languages_file` is configured.
const BUILTIN: &str = include_str!("../languages.toml");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Language {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub version: String,
    pub image: String,
    /// Name of the source file the code is written to, inside the work dir.
    pub file: String,
    /// Shell command that compiles the sources in the work dir, for compiled languages.
    #[serde(default)]
    pub compile: Option<String>,
    /// Command that runs the program; arguments follow it.
    pub run: Vec<String>,
    /// Prints the toolchain's version inside the image (checked against `version` by tests).
    pub version_command: Vec<String>,
    /// A hello-world program.
    pub example: String,
    #[serde(default)]
    pub packages: Vec<String>,
    #[serde(default)]
    pub limits: LanguageLimits,
    /// OCI runtime for this language's jobs (e.g. `runsc`), over the deployment's choice.
    #[serde(default)]
    pub runtime: Option<String>,
    /// `cell` or `container`, over the deployment's `[docker] backend`.
    #[serde(default)]
    pub backend: Option<crate::config::Backend>,
    /// The language under Judge0 CE's ids, for the Judge0 API.
    #[serde(default)]
    pub judge0: Option<Judge0Names>,
}

/// A language's ids and name in Judge0 CE 1.13.1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Judge0Names {
    pub ids: Vec<u32>,
    /// Judge0's name, `{version}` standing for this language's version.
    pub name: String,
}

impl Language {
    /// The OCI runtime this language's jobs run under: its own choice, else the deployment's.
    pub fn runtime_or<'a>(&'a self, deployment: Option<&'a str>) -> Option<&'a str> {
        self.runtime.as_deref().or(deployment)
    }
}

/// Per-language overrides of the server's limits (compilers and JVMs need more room).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageLimits {
    /// Defaults for this language (still bounded by the server's range).
    pub timeout: Option<f64>,
    pub cpu_time: Option<f64>,
    pub memory: Option<ByteSize>,
    pub pids: Option<i64>,
    pub output: Option<ByteSize>,
    pub file_size: Option<ByteSize>,
    /// Seconds the compile step may take.
    pub compile_timeout: Option<f64>,
}

/// What clients are told about a language (`GET /languages`, `codebeaker.languages`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LanguageInfo {
    pub name: String,
    pub aliases: Vec<String>,
    pub version: String,
    pub compiled: bool,
    pub packages: Vec<String>,
    pub example: String,
    pub limits: LimitInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LimitInfo {
    pub timeout: Bounded<f64>,
    pub cpu_time: Bounded<f64>,
    pub memory_limit: Bounded<ByteSize>,
    pub pids_limit: Bounded<i64>,
    pub output_limit: Bounded<ByteSize>,
    pub file_size_limit: Bounded<ByteSize>,
    pub compile_timeout: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LanguagesError {
    #[error("cannot read language definitions {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid language definitions: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("language name, alias or Judge0 id `{0}` is defined twice")]
    Duplicate(String),
    #[error("language `{0}` has an empty run or version command")]
    EmptyRun(String),
}

#[derive(Debug, Clone)]
pub struct Languages {
    list: Vec<Language>,
    /// Lower-case name or alias → index into `list`.
    index: HashMap<String, usize>,
    /// Judge0 CE id → index into `list`.
    judge0: HashMap<u32, usize>,
}

#[derive(Deserialize)]
struct File {
    language: Vec<Language>,
}

impl Languages {
    pub fn load(path: Option<&Path>) -> Result<Languages, LanguagesError> {
        match path {
            None => Self::parse(BUILTIN),
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| LanguagesError::Read {
                        path: path.display().to_string(),
                        source,
                    })?;
                Self::parse(&text)
            }
        }
    }

    pub fn parse(text: &str) -> Result<Languages, LanguagesError> {
        let list = toml::from_str::<File>(text)?.language;
        let mut index = HashMap::new();
        let mut judge0 = HashMap::new();
        for (i, lang) in list.iter().enumerate() {
            if lang.run.is_empty() || lang.version_command.is_empty() {
                return Err(LanguagesError::EmptyRun(lang.name.clone()));
            }
            for key in std::iter::once(&lang.name).chain(&lang.aliases) {
                if index.insert(key.to_lowercase(), i).is_some() {
                    return Err(LanguagesError::Duplicate(key.clone()));
                }
            }
            let ids = lang.judge0.iter().flat_map(|j| &j.ids);
            for id in ids {
                if judge0.insert(*id, i).is_some() {
                    return Err(LanguagesError::Duplicate(id.to_string()));
                }
            }
        }
        Ok(Languages {
            list,
            index,
            judge0,
        })
    }

    /// Finds a language by its name or an alias, ignoring case.
    pub fn get(&self, name: &str) -> Option<&Language> {
        self.index.get(&name.to_lowercase()).map(|&i| &self.list[i])
    }

    /// The language Judge0 CE knows under `id`.
    pub fn by_judge0_id(&self, id: u32) -> Option<&Language> {
        self.judge0.get(&id).map(|&i| &self.list[i])
    }

    pub fn all(&self) -> &[Language] {
        &self.list
    }

    pub fn names(&self) -> Vec<&str> {
        self.list.iter().map(|l| l.name.as_str()).collect()
    }

    /// The list clients see, with the limits this server applies.
    pub fn catalogue(&self, limits: &LimitsConfig) -> Vec<LanguageInfo> {
        self.list
            .iter()
            .map(|lang| LanguageInfo {
                name: lang.name.clone(),
                aliases: lang.aliases.clone(),
                version: lang.version.clone(),
                compiled: lang.compile.is_some(),
                packages: lang.packages.clone(),
                example: lang.example.clone(),
                limits: LimitInfo {
                    timeout: with_default(limits.timeout, lang.limits.timeout),
                    cpu_time: with_default(limits.cpu_time, lang.limits.cpu_time),
                    memory_limit: with_default(limits.memory, lang.limits.memory),
                    pids_limit: with_default(limits.pids, lang.limits.pids),
                    output_limit: with_default(limits.output, lang.limits.output),
                    file_size_limit: with_default(limits.file_size, lang.limits.file_size),
                    compile_timeout: lang.compile.as_ref().map(|_| {
                        lang.limits
                            .compile_timeout
                            .unwrap_or(limits.compile_timeout_secs)
                    }),
                },
            })
            .collect()
    }
}

/// The server's bounds with the language's own default, if it has one.
fn with_default<T: PartialOrd + Copy>(bounds: Bounded<T>, language: Option<T>) -> Bounded<T> {
    Bounded {
        default: bounds.default_with(language),
        ..bounds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_definitions_resolve_names_and_aliases() {
        let langs = Languages::load(None).unwrap();
        for (alias, name) in [
            ("py", "python"),
            ("Python3", "python"),
            ("node", "javascript"),
            ("C#", "csharp"),
            ("c++", "cpp"),
            ("asm", "nasm"),
            ("sbcl", "commonlisp"),
            ("kt", "kotlin"),
        ] {
            assert_eq!(langs.get(alias).unwrap().name, name);
        }
        assert!(langs.get("brainfuck").is_none());
        assert_eq!(langs.all().len(), 39);
    }

    #[test]
    fn a_language_runtime_wins_over_the_deployment() {
        let mut lang = Languages::load(None)
            .unwrap()
            .get("python")
            .unwrap()
            .clone();
        assert_eq!(lang.runtime_or(Some("runc")), Some("runc"));
        lang.runtime = Some("runsc".into());
        assert_eq!(lang.runtime_or(Some("runc")), Some("runsc"));
        assert_eq!(lang.runtime_or(None), Some("runsc"));
    }

    #[test]
    fn duplicate_aliases_are_rejected() {
        let text = r#"
            [[language]]
            name = "a"
            aliases = ["x"]
            version = "1"
            image = "i"
            file = "f"
            run = ["r"]
            version_command = ["v"]
            example = "e"
            [[language]]
            name = "b"
            aliases = ["X"]
            version = "1"
            image = "i"
            file = "f"
            run = ["r"]
            version_command = ["v"]
            example = "e"
        "#;
        assert!(matches!(
            Languages::parse(text),
            Err(LanguagesError::Duplicate(_))
        ));
    }
}
