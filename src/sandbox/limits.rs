//! Byte sizes and the per-job limits resolved from a request and the server's bounds.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{Bounded, LimitsConfig};
use crate::languages::LanguageLimits;

/// A number of bytes, written in config and requests as `"128m"`, `"64k"`, `"1g"` or a bare
/// integer of bytes. Suffixes are binary (k = 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn kib(n: u64) -> Self {
        ByteSize(n * 1024)
    }
    pub const fn mib(n: u64) -> Self {
        ByteSize(n * 1024 * 1024)
    }
    pub fn bytes(self) -> u64 {
        self.0
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a size: use a number of bytes or a number with k, m or g (e.g. \"128m\")")]
pub struct ParseByteSizeError(String);

impl FromStr for ByteSize {
    type Err = ParseByteSizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseByteSizeError(s.to_string());
        let t = s.trim().to_ascii_lowercase();
        let t = t.strip_suffix('b').unwrap_or(&t);
        let t = t.strip_suffix('i').unwrap_or(t);
        let (digits, shift) = match t.char_indices().last() {
            Some((i, 'k')) => (&t[..i], 10),
            Some((i, 'm')) => (&t[..i], 20),
            Some((i, 'g')) => (&t[..i], 30),
            _ => (t, 0),
        };
        let n: u64 = digits.trim().parse().map_err(|_| err())?;
        n.checked_mul(1 << shift).map(ByteSize).ok_or_else(err)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, shift) in [("g", 30), ("m", 20), ("k", 10)] {
            if n >= 1 << shift && n.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", n >> shift);
            }
        }
        write!(f, "{n}")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// In the API document: a number of bytes, or a number with a binary suffix. Answers always
/// carry the string form.
impl utoipa::PartialSchema for ByteSize {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^\s*[0-9]+\s*[kKmMgG]?[iI]?[bB]?\s*$"))
                    .examples(["128m"]),
            )
            .description(Some(
                "bytes: an integer, or a number with k, m or g (binary: k = 1024), e.g. \"128m\"",
            ))
            .into()
    }
}

impl utoipa::ToSchema for ByteSize {}

/// The limits one job runs under, after defaults and bounds were applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub timeout: Duration,
    pub cpu_time: Duration,
    pub memory: ByteSize,
    pub cpus: f64,
    pub pids: i64,
    pub output: ByteSize,
    pub tmpfs: ByteSize,
    pub file_size: ByteSize,
    pub open_files: i64,
    /// RLIMIT_STACK, when the request set one.
    #[serde(default)]
    pub stack: Option<ByteSize>,
    /// Wall-clock limit of the compile step, for compiled languages.
    pub compile_timeout: Duration,
    pub compile_output: ByteSize,
}

/// The limits a request asks for; each is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Requested {
    pub timeout: Option<f64>,
    pub cpu_time: Option<f64>,
    pub memory: Option<ByteSize>,
    pub pids: Option<i64>,
    pub output: Option<ByteSize>,
    pub file_size: Option<ByteSize>,
    pub stack: Option<ByteSize>,
}

/// A requested limit outside what the server allows.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{field} must be between {min} and {max}; got {got}")]
pub struct LimitError {
    pub field: &'static str,
    pub min: String,
    pub max: String,
    pub got: String,
}

/// What to do with a limit asked for outside the bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Refuse it, naming the field: a client's request, answered with a 400.
    Refuse,
    /// Bring it within the bounds (NaN becomes the default): a job message from the stream,
    /// which a worker runs only within its own bounds.
    Clamp,
}

impl Limits {
    /// Applies the request's limits over the language's and the server's defaults; a value
    /// outside the server's bounds is refused or clamped, as `policy` says.
    pub fn resolve(
        cfg: &LimitsConfig,
        language: &LanguageLimits,
        asked: &Requested,
        policy: Policy,
    ) -> Result<Limits, LimitError> {
        Ok(Limits {
            timeout: secs(pick(
                "timeout",
                asked.timeout,
                language.timeout,
                &cfg.timeout,
                policy,
            )?),
            cpu_time: secs(pick(
                "cpu_time",
                asked.cpu_time,
                language.cpu_time,
                &cfg.cpu_time,
                policy,
            )?),
            memory: pick(
                "memory_limit",
                asked.memory,
                language.memory,
                &cfg.memory,
                policy,
            )?,
            pids: pick("pids_limit", asked.pids, language.pids, &cfg.pids, policy)?,
            output: pick(
                "output_limit",
                asked.output,
                language.output,
                &cfg.output,
                policy,
            )?,
            file_size: pick(
                "file_size_limit",
                asked.file_size,
                language.file_size,
                &cfg.file_size,
                policy,
            )?,
            stack: asked
                .stack
                .map(|stack| pick("stack_limit", Some(stack), None, &cfg.stack, policy))
                .transpose()?,
            cpus: cfg.cpus,
            tmpfs: cfg.tmpfs_bytes,
            open_files: cfg.open_files,
            compile_timeout: secs(language.compile_timeout.unwrap_or(cfg.compile_timeout_secs)),
            compile_output: cfg.compile_output_bytes,
        })
    }
}

/// The asked value if within bounds; else the language's default or the server's, kept within
/// the bounds (a language cannot raise a limit past the server's maximum).
fn pick<T>(
    field: &'static str,
    asked: Option<T>,
    language: Option<T>,
    bounds: &Bounded<T>,
    policy: Policy,
) -> Result<T, LimitError>
where
    T: PartialOrd + Copy + fmt::Display,
{
    match asked {
        Some(v) if bounds.contains(v) => Ok(v),
        Some(v) if policy == Policy::Clamp => Ok(bounds.clamp(v)),
        Some(v) => Err(LimitError {
            field,
            min: bounds.min.to_string(),
            max: bounds.max.to_string(),
            got: v.to_string(),
        }),
        None => Ok(bounds.default_with(language)),
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_with_and_without_suffixes() {
        assert_eq!("128m".parse(), Ok(ByteSize::mib(128)));
        assert_eq!("128MiB".parse(), Ok(ByteSize::mib(128)));
        assert_eq!("64k".parse(), Ok(ByteSize::kib(64)));
        assert_eq!("1g".parse(), Ok(ByteSize(1 << 30)));
        assert_eq!("4096".parse(), Ok(ByteSize(4096)));
        assert!("lots".parse::<ByteSize>().is_err());
        assert!("-1m".parse::<ByteSize>().is_err());
        assert!("99999999999999999g".parse::<ByteSize>().is_err());
    }

    #[test]
    fn displays_in_the_largest_exact_unit() {
        assert_eq!(ByteSize::mib(128).to_string(), "128m");
        assert_eq!(ByteSize(1 << 30).to_string(), "1g");
        assert_eq!(ByteSize(1500).to_string(), "1500");
    }

    #[test]
    fn defaults_apply_and_out_of_range_values_name_the_field() {
        let cfg = LimitsConfig::default();
        let none = LanguageLimits::default();
        let limits = Limits::resolve(&cfg, &none, &Requested::default(), Policy::Refuse).unwrap();
        assert_eq!(limits.timeout, Duration::from_secs(5));
        assert_eq!(limits.memory, cfg.memory.default);
        let cases: [(&str, Requested); 7] = [
            (
                "timeout",
                Requested {
                    timeout: Some(0.0),
                    ..Default::default()
                },
            ),
            (
                "timeout",
                Requested {
                    timeout: Some(f64::NAN),
                    ..Default::default()
                },
            ),
            (
                "cpu_time",
                Requested {
                    cpu_time: Some(61.0),
                    ..Default::default()
                },
            ),
            (
                "memory_limit",
                Requested {
                    memory: Some(ByteSize::kib(1)),
                    ..Default::default()
                },
            ),
            (
                "pids_limit",
                Requested {
                    pids: Some(100_000),
                    ..Default::default()
                },
            ),
            (
                "output_limit",
                Requested {
                    output: Some(ByteSize::mib(10)),
                    ..Default::default()
                },
            ),
            (
                "file_size_limit",
                Requested {
                    file_size: Some(ByteSize(0)),
                    ..Default::default()
                },
            ),
        ];
        for (field, asked) in cases {
            let err = Limits::resolve(&cfg, &none, &asked, Policy::Refuse).unwrap_err();
            assert_eq!(err.field, field);
        }
        let err = Limits::resolve(
            &cfg,
            &none,
            &Requested {
                memory: Some(ByteSize(1)),
                ..Default::default()
            },
            Policy::Refuse,
        )
        .unwrap_err();
        assert!(err.to_string().contains("between 16m and 2g"), "{err}");
    }

    #[test]
    fn a_language_raises_defaults_but_not_past_the_server_maximum() {
        let cfg = LimitsConfig::default();
        let java = LanguageLimits {
            memory: Some(ByteSize::mib(512)),
            pids: Some(128),
            compile_timeout: Some(30.0),
            ..Default::default()
        };
        let limits = Limits::resolve(&cfg, &java, &Requested::default(), Policy::Refuse).unwrap();
        assert_eq!(limits.memory, ByteSize::mib(512));
        assert_eq!(limits.pids, 128);
        assert_eq!(limits.compile_timeout, Duration::from_secs(30));
        let huge = LanguageLimits {
            memory: Some(ByteSize::mib(8192)),
            ..java
        };
        let limits = Limits::resolve(&cfg, &huge, &Requested::default(), Policy::Refuse).unwrap();
        assert_eq!(limits.memory, cfg.memory.max);
        let asked = Requested {
            memory: Some(ByteSize::mib(64)),
            ..Default::default()
        };
        assert_eq!(
            Limits::resolve(&cfg, &huge, &asked, Policy::Refuse)
                .unwrap()
                .memory,
            ByteSize::mib(64),
            "the request wins"
        );
    }

    #[test]
    fn a_worker_clamps_what_the_api_would_refuse() {
        let cfg = LimitsConfig::default();
        let none = LanguageLimits::default();
        let asked = Requested {
            timeout: Some(600.0),
            cpu_time: Some(f64::NAN),
            memory: Some(ByteSize(1 << 40)),
            pids: Some(-5),
            output: Some(ByteSize(0)),
            file_size: Some(ByteSize::mib(1)),
            stack: Some(ByteSize(1 << 40)),
        };
        let limits = Limits::resolve(&cfg, &none, &asked, Policy::Clamp).unwrap();
        assert_eq!(limits.stack, Some(cfg.stack.max));
        assert_eq!(limits.timeout, Duration::from_secs(60));
        assert_eq!(limits.cpu_time, Duration::from_secs(5), "NaN: the default");
        assert_eq!(limits.memory, cfg.memory.max);
        assert_eq!(limits.pids, cfg.pids.min);
        assert_eq!(limits.output, cfg.output.min);
        assert_eq!(
            limits.file_size,
            ByteSize::mib(1),
            "within bounds: as asked"
        );
    }
}
