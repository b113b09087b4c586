//! horace-zfsd's configuration (`/etc/horace/zfsd.toml`): a pure [`parse`] with unit
//! tests and a thin [`load`]. Unknown keys and bad values stop start-up with the key and
//! the line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::api;

/// Default path of the configuration file.
pub const DEFAULT_PATH: &str = "/etc/horace/zfsd.toml";
/// Default `zfs` binary.
pub const DEFAULT_ZFS_PATH: &str = "/usr/sbin/zfs";
/// Default seconds a `zfs` call may take before it is killed.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// Default state directory (the rollback journal); systemd's `StateDirectory=horace-zfsd`.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/horace-zfsd";

/// A bad configuration, with where it is bad.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a wrong type.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line of the offending key or value (0 when unknown).
        line: usize,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A value of the right type that is still not acceptable.
    #[error("key `{key}`: {message}")]
    Value {
        /// The key.
        key: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
}

/// A group in `allow_groups`: a name (resolved at start) or a gid.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum GroupSpec {
    /// Numeric gid.
    Id(u32),
    /// Group name.
    Name(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Roots {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    root: Roots,
    zfs_path: Option<PathBuf>,
    #[serde(default)]
    allow_uids: Vec<u32>,
    #[serde(default)]
    allow_groups: Vec<GroupSpec>,
    command_timeout: Option<u64>,
    state_dir: Option<PathBuf>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Datasets the daemon may act on (each with everything under it).
    pub roots: Vec<String>,
    /// Absolute path of the `zfs` binary.
    pub zfs_path: PathBuf,
    /// Callers allowed by uid.
    pub allow_uids: Vec<u32>,
    /// Callers allowed by membership (primary or supplementary) of one of these groups.
    pub allow_groups: Vec<GroupSpec>,
    /// How long one `zfs` call may take before it is killed.
    pub command_timeout: Duration,
    /// Where the rollback journal lives (see `journal`); root-only, mode 0700.
    pub state_dir: PathBuf,
}

impl Config {
    /// The root whose subtree holds `dataset`, if any.
    pub fn root_of(&self, dataset: &str) -> Option<&str> {
        self.roots
            .iter()
            .map(String::as_str)
            .find(|r| api::is_under_root(dataset, r))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |t| t.matches('\n').count() + 1)
}

/// Parses and validates a configuration text.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let raw: Raw = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        line: e.span().map_or(0, |s| line_of(text, s.start)),
        message: e.message().trim().to_string(),
    })?;
    let roots = match raw.root {
        Roots::One(r) => vec![r],
        Roots::Many(v) => v,
    };
    if roots.is_empty() {
        return Err(ConfigError::Value {
            key: "root",
            message: "name at least one dataset".into(),
        });
    }
    for r in &roots {
        api::validate_dataset(r).map_err(|e| ConfigError::Value {
            key: "root",
            message: format!("{e}"),
        })?;
    }
    let zfs_path = raw
        .zfs_path
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ZFS_PATH));
    if !zfs_path.is_absolute() {
        return Err(ConfigError::Value {
            key: "zfs_path",
            message: format!("{} is not absolute; give the full path", zfs_path.display()),
        });
    }
    let state_dir = raw
        .state_dir
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    if !state_dir.is_absolute() {
        return Err(ConfigError::Value {
            key: "state_dir",
            message: format!(
                "{} is not absolute; give the full path",
                state_dir.display()
            ),
        });
    }
    let secs = raw.command_timeout.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if secs == 0 || secs > 86_400 {
        return Err(ConfigError::Value {
            key: "command_timeout",
            message: format!("{secs} is out of range; use 1 to 86400 seconds"),
        });
    }
    if let Some(GroupSpec::Name(n)) = raw
        .allow_groups
        .iter()
        .find(|g| matches!(g, GroupSpec::Name(n) if n.is_empty()))
    {
        return Err(ConfigError::Value {
            key: "allow_groups",
            message: format!("empty group name {n:?}"),
        });
    }
    Ok(Config {
        roots,
        zfs_path,
        allow_uids: raw.allow_uids,
        allow_groups: raw.allow_groups,
        command_timeout: Duration::from_secs(secs),
        state_dir,
    })
}

/// Reads and parses the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config() {
        let c = parse(
            "root = [\"tank/files\", \"tank/other\"]\nzfs_path = \"/sbin/zfs\"\n\
             allow_uids = [0, 998]\nallow_groups = [\"horace\", 1001]\ncommand_timeout = 5\n\
             state_dir = \"/srv/zfsd\"\n",
        )
        .unwrap();
        assert_eq!(c.roots, ["tank/files", "tank/other"]);
        assert_eq!(c.zfs_path, Path::new("/sbin/zfs"));
        assert_eq!(c.allow_uids, [0, 998]);
        assert_eq!(
            c.allow_groups,
            [GroupSpec::Name("horace".into()), GroupSpec::Id(1001)]
        );
        assert_eq!(c.command_timeout, Duration::from_secs(5));
        assert_eq!(c.state_dir, Path::new("/srv/zfsd"));
        assert_eq!(c.root_of("tank/other/x"), Some("tank/other"));
        assert_eq!(c.root_of("tank/files2"), None);
    }

    #[test]
    fn packaged_default_config_parses() {
        let c = parse(include_str!("../../packaging/zfsd.toml")).unwrap();
        assert_eq!(c.zfs_path, Path::new(DEFAULT_ZFS_PATH));
        assert_eq!(c.allow_uids, [0]);
        assert_eq!(c.allow_groups, [GroupSpec::Name("horace".into())]);
        assert_eq!(c.state_dir, Path::new(DEFAULT_STATE_DIR));
    }

    #[test]
    fn defaults() {
        let c = parse("root = \"tank/files\"\n").unwrap();
        assert_eq!(c.roots, ["tank/files"]);
        assert_eq!(c.zfs_path, Path::new(DEFAULT_ZFS_PATH));
        assert!(c.allow_uids.is_empty() && c.allow_groups.is_empty());
        assert_eq!(c.command_timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECS));
        assert_eq!(c.state_dir, Path::new(DEFAULT_STATE_DIR));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = parse("root = \"tank\"\n\nallow_user = [1]\n").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::Syntax { line: 3, .. }), "{msg}");
        assert!(msg.contains("allow_user"), "{msg}");
    }

    #[test]
    fn wrong_type_names_line() {
        let err = parse("root = \"tank\"\ncommand_timeout = \"soon\"\n").unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { line: 2, .. }), "{err}");
    }

    #[test]
    fn bad_values() {
        for (text, key) in [
            ("root = \"-tank\"", "root"),
            ("root = []", "root"),
            ("root = \"tank/../x\"", "root"),
            ("root = \"tank\"\nzfs_path = \"zfs\"", "zfs_path"),
            ("root = \"tank\"\ncommand_timeout = 0", "command_timeout"),
            ("root = \"tank\"\nstate_dir = \"var/lib/z\"", "state_dir"),
            ("root = \"tank\"\nallow_groups = [\"\"]", "allow_groups"),
        ] {
            match parse(text) {
                Err(ConfigError::Value { key: k, .. }) => assert_eq!(k, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(
            matches!(parse(""), Err(ConfigError::Syntax { .. })),
            "root is required"
        );
    }
}
