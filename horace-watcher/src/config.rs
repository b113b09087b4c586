//! The watcher's configuration: `/etc/horace/horace.toml`, keys as in DESIGN.md §8.
//!
//! `parse` is pure and unit-tested; `load` reads a file. Unknown keys are an error that
//! names the key and the line, and a bad config stops start-up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod nesting;
pub use nesting::Nesting;

/// Default path of the configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/horace/horace.toml";
/// Default query socket.
pub const DEFAULT_SOCKET: &str = "/run/horace/query.sock";
/// Default path prefix under which containers see the files root.
pub const DEFAULT_CONTAINER_PREFIX: &str = "/mnt/irina_storage/files";

/// Everything the watcher needs to run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The tree to catalog (the files dataset's mountpoint).
    pub files_root: PathBuf,
    /// Where the catalog, content store and backups live (not inside `files_root`).
    pub metadata_dir: PathBuf,
    /// The ZFS dataset `metadata_dir` is on (e.g. `tank/horace/meta`); when set, the
    /// watcher waits until the mount holding `metadata_dir` is that dataset, so a catalog
    /// is never started on the directory beneath an unmounted dataset.
    #[serde(default)]
    pub metadata_dataset: Option<String>,
    /// Absolute prefix under which containers see `files_root`.
    #[serde(default = "default_container_prefix")]
    pub container_prefix: PathBuf,
    /// Glob patterns of file names never cataloged (matched against the base name).
    /// Unset means [`DEFAULT_IGNORE`]; set, it replaces them (`ignore = []` turns them off).
    #[serde(default = "default_ignore")]
    pub ignore: Vec<String>,
    /// Patterns ignored as well as `ignore`: how an operator adds names without
    /// repeating (and then missing the updates of) the defaults.
    #[serde(default)]
    pub ignore_extra: Vec<String>,
    /// How many versions' contents to keep.
    #[serde(default)]
    pub versions: VersionsConfig,
    /// The snapshot schedule.
    #[serde(default)]
    pub snapshots: SnapshotsConfig,
    /// The query service.
    #[serde(default)]
    pub query: QueryConfig,
    /// How to reach horace-zfsd.
    #[serde(default)]
    pub zfsd: ZfsdConfig,
    /// Catalog backups.
    #[serde(default)]
    pub catalog: CatalogConfig,
    /// How this start treats a files root or metadata directory that is not the one
    /// expected: command-line flags only, never read from the file.
    #[serde(skip)]
    pub start: StartOptions,
}

/// Start-up choices an operator makes on the command line for one start (see
/// `crate::guard`): never config keys, so an acceptance cannot stay switched on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartOptions {
    /// `--accept-new-files-root`: the files root is a new tree; record its filesystem.
    pub accept_new_files_root: bool,
    /// `--accept-new-catalog`: begin a catalog although the files root names another.
    pub accept_new_catalog: bool,
    /// `--no-wait`: exit with the refusal's name instead of waiting.
    pub no_wait: bool,
}

/// `[versions]`: which versions keep their content in the store.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VersionsConfig {
    /// Keep the content of at least the last `keep` versions of each file.
    pub keep: u32,
    /// And of every version younger than this many days.
    pub min_age_days: u32,
    /// Files larger than this (bytes) are cataloged but their content is not stored.
    pub max_stored_file_size: u64,
    /// A file written while kept open (a database, an NFS or SMB server holding it) is
    /// cataloged once this long has passed with no write, without waiting for its close;
    /// 0 catalogs such files at their close only. Read at start.
    pub quiet_period_ms: u64,
    /// Every this many seconds, re-hash every stored object (the scrub); 0: never.
    pub scrub_interval_secs: u64,
    /// The scrub reads at most this many MiB per second.
    pub scrub_mib_per_sec: u64,
    /// One owner's (top-level directory's) stored content may occupy at most this
    /// percentage of the metadata filesystem; past it, its new versions are cataloged
    /// without content (`horace status` says so). 100: no per-owner limit.
    pub owner_share_percent: u8,
    /// Files at least this long (bytes) are read by the big-file lane, a thread of their
    /// own, so they never hold up the cataloging of small files.
    pub lane_file_size: u64,
    /// Content is stored only while the metadata filesystem keeps this many MiB free (at
    /// most a quarter of its size): room for the catalog, its WAL and backups; below it,
    /// versions are cataloged without content.
    pub store_reserve_mib: u64,
}

impl VersionsConfig {
    /// The scrub's interval, or `None` when it is off.
    pub fn scrub_interval(&self) -> Option<Duration> {
        (self.scrub_interval_secs > 0).then(|| Duration::from_secs(self.scrub_interval_secs))
    }
}

impl Default for VersionsConfig {
    fn default() -> Self {
        Self {
            keep: 5,
            min_age_days: 7,
            max_stored_file_size: 1 << 30,
            quiet_period_ms: 3000,
            scrub_interval_secs: 86_400,
            scrub_mib_per_sec: 32,
            owner_share_percent: 25,
            lane_file_size: 256 << 20,
            store_reserve_mib: 1024,
        }
    }
}

/// `[snapshots]`: the periodic ZFS snapshots and how many of each label to keep.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotsConfig {
    /// Whether the watcher schedules snapshots at all.
    pub enabled: bool,
    /// The files dataset (e.g. `tank/horace/files`); required when enabled.
    pub dataset: Option<String>,
    /// Hourly snapshots to keep.
    pub hourly: u32,
    /// Daily snapshots to keep.
    pub daily: u32,
    /// Weekly snapshots to keep.
    pub weekly: u32,
    /// Monthly snapshots to keep.
    pub monthly: u32,
    /// TEST KNOB, not for production: the length of a schedule "hour" in seconds (days,
    /// weeks and months shrink in proportion). Unset means real time. The end-to-end tests
    /// use it to see snapshots taken and pruned on schedule within seconds.
    pub test_hour_seconds: Option<u32>,
}

impl Default for SnapshotsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            dataset: None,
            hourly: 24,
            daily: 14,
            weekly: 12,
            monthly: 12,
            test_hour_seconds: None,
        }
    }
}

/// `[query]`: where and for whom the query service listens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Unix socket path.
    pub socket: PathBuf,
    /// Optional TCP listener (`127.0.0.1:7878`); requires `token_file`.
    pub tcp: Option<String>,
    /// File holding the bearer token TCP clients must present.
    pub token_file: Option<PathBuf>,
    /// uids and gids (as `"uid:1000"`, `"gid:100"`, or a bare number meaning a uid) allowed
    /// to restore, update metadata, register and change collections.
    pub writers: Vec<String>,
    /// uids and gids (same forms as `writers`) that see every file's name and checksum
    /// whatever the file's permissions (writers, root and the watcher's own uid always do).
    pub readers: Vec<String>,
    /// Whom the query service shows a file to (see [`Visibility`]).
    pub visibility: Visibility,
    /// Seconds a connection may stay with no request in flight and none arriving before
    /// it is closed (0: never).
    pub idle_timeout: u64,
    /// Seconds a request frame may take to arrive once it began (0: no limit).
    pub frame_timeout: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            socket: PathBuf::from(DEFAULT_SOCKET),
            tcp: None,
            token_file: None,
            writers: Vec::new(),
            readers: Vec::new(),
            visibility: Visibility::Permissions,
            idle_timeout: 300,
            frame_timeout: 10,
        }
    }
}

/// `[query] visibility`: which files a peer that is not root, a writer or a reader sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// A file's name only if the peer could list every directory on its path, its
    /// checksums only if it could also read the file (the modes and owners on disk).
    Permissions,
    /// Every peer sees every file (a NAS with a single tenant).
    Everyone,
}

impl QueryConfig {
    /// [`QueryConfig::idle_timeout`], `None` when disabled.
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout > 0).then(|| Duration::from_secs(self.idle_timeout))
    }

    /// [`QueryConfig::frame_timeout`], `None` when disabled.
    pub fn frame_timeout(&self) -> Option<Duration> {
        (self.frame_timeout > 0).then(|| Duration::from_secs(self.frame_timeout))
    }
}

/// `[zfsd]`: the D-Bus address of horace-zfsd (system bus when unset).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZfsdConfig {
    /// A D-Bus address such as `unix:path=/run/dbus/system_bus_socket`.
    pub bus: Option<String>,
}

/// `[catalog]`: `VACUUM INTO` backups of the catalog.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    /// Seconds between backups (0 disables them).
    pub backup_interval: u64,
    /// How many backups to keep.
    pub backups_keep: u32,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            backup_interval: 6 * 3600,
            backups_keep: 4,
        }
    }
}

impl CatalogConfig {
    /// The backup interval, or `None` when backups are off.
    pub fn interval(&self) -> Option<Duration> {
        (self.backup_interval > 0).then(|| Duration::from_secs(self.backup_interval))
    }
}

fn default_container_prefix() -> PathBuf {
    PathBuf::from(DEFAULT_CONTAINER_PREFIX)
}

/// The ignore patterns used when the config sets no `ignore`, each with the writer whose
/// side file it stands for (docs/operations.md lists them). Side files are not documents:
/// cataloged, each became a file with a history of its own (issue 14 item 5), and a save
/// that renames the document through one of them split the document's history.
///
/// Every pattern is anchored to a whole base name and as narrow as the writer's naming
/// allows, so that ordinary documents are not swallowed: `deadbeef.txt`, `backup~notes`
/// and `travel-journal.md` are cataloged (see the tests).
pub const DEFAULT_IGNORE: &[(&str, &str)] = &[
    // Temp names: Word's `~WRD0000.tmp`/`~WRL0001.tmp`, LibreOffice's `lu*.tmp`,
    // Excel's `1A2B3C4D.tmp`, and services that write temp + rename.
    (
        "*.tmp",
        "temp files (Word ~WRD*.tmp/~WRL*.tmp, LibreOffice lu*.tmp, …)",
    ),
    ("*~", "backups (vim, emacs, gedit, nano: name~)"),
    (".#*", "emacs lock links (.#name)"),
    ("#*#", "emacs auto-save files (#name#)"),
    ("*.swp", "vim swap files (.name.swp)"),
    // vim takes .swo, .swn … .swa when .swp is in use.
    (
        ".*.sw[a-o]",
        "vim swap files when .swp is taken (.name.swo …)",
    ),
    (
        ".*.swx",
        "vim's probe of whether a swap file can be made (.name.swx)",
    ),
    ("4913", "vim's probe of whether the directory is writable"),
    (".~lock.*#", "LibreOffice lock files (.~lock.name#)"),
    ("~$*", "Microsoft Office owner files (~$name.docx)"),
    // Exactly eight upper-case hex digits and no extension: Excel's and Word's temp
    // copies. Lower case and names with an extension (`deadbeef.txt`) are documents.
    (
        "[0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F]",
        "Microsoft Office temp copies (8 upper-case hex digits, no extension)",
    ),
    // rsync's `.name.XXXXXX` (mkstemp: six letters or digits after a hidden name).
    (
        ".*.[A-Za-z0-9][A-Za-z0-9][A-Za-z0-9][A-Za-z0-9][A-Za-z0-9][A-Za-z0-9]",
        "rsync temp files (.name.XXXXXX)",
    ),
    ("*-wal", "SQLite write-ahead logs (name-wal)"),
    ("*-shm", "SQLite shared-memory index (name-shm)"),
    ("*-journal", "SQLite rollback journals (name-journal)"),
    (".horace-*", "Horace's own temp names"),
];

/// The ignore patterns used when the config sets no `ignore` ([`DEFAULT_IGNORE`]).
pub fn default_ignore() -> Vec<String> {
    DEFAULT_IGNORE.iter().map(|(p, _)| p.to_string()).collect()
}

/// A configuration that could not be used; the message names the key and line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key, or a value of the wrong type.
    #[error("invalid config{}: {message}", line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    Invalid {
        /// 1-based line of the offending key, when known.
        line: Option<usize>,
        /// What is wrong, naming the key.
        message: String,
    },
    /// `files_root` and `metadata_dir` overlap once symlinks and `..` are resolved.
    #[error("invalid config: {nesting} (files_root resolves to {files_root:?}, metadata_dir to {metadata_dir:?}); they must be disjoint")]
    Nested {
        /// Which way they overlap.
        nesting: Nesting,
        /// `files_root` resolved.
        files_root: PathBuf,
        /// `metadata_dir` resolved.
        metadata_dir: PathBuf,
    },
}

impl Config {
    /// A config for `files_root` and `metadata_dir` with every other key at its default.
    pub fn for_dirs(files_root: impl Into<PathBuf>, metadata_dir: impl Into<PathBuf>) -> Self {
        Self {
            files_root: files_root.into(),
            metadata_dir: metadata_dir.into(),
            metadata_dataset: None,
            container_prefix: default_container_prefix(),
            ignore: default_ignore(),
            ignore_extra: Vec::new(),
            versions: VersionsConfig::default(),
            snapshots: SnapshotsConfig::default(),
            query: QueryConfig::default(),
            zfsd: ZfsdConfig::default(),
            catalog: CatalogConfig::default(),
            start: StartOptions::default(),
        }
    }

    /// Parses and checks a config file's text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            line: e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
            message: e.message().trim().to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Every ignore pattern in force: `ignore` (or the defaults) and `ignore_extra`.
    pub fn ignore_patterns(&self) -> Vec<String> {
        self.ignore
            .iter()
            .chain(&self.ignore_extra)
            .cloned()
            .collect()
    }

    /// Checks what the types cannot say.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| {
            Err(ConfigError::Invalid {
                line: None,
                message,
            })
        };
        let v = &self.versions;
        if !(1..=100).contains(&v.owner_share_percent) {
            return invalid(format!(
                "versions.owner_share_percent must be 1 to 100 (is {})",
                v.owner_share_percent
            ));
        }
        if !self.files_root.is_absolute() {
            return invalid(format!(
                "files_root must be an absolute path, not {:?}",
                self.files_root
            ));
        }
        if !self.metadata_dir.is_absolute() {
            return invalid(format!(
                "metadata_dir must be an absolute path, not {:?}",
                self.metadata_dir
            ));
        }
        if let Some((nesting, files_root, metadata_dir)) =
            nesting::nesting(&self.files_root, &self.metadata_dir)
        {
            return Err(ConfigError::Nested {
                nesting,
                files_root,
                metadata_dir,
            });
        }
        for (key, ds) in [
            ("metadata_dataset", &self.metadata_dataset),
            ("snapshots.dataset", &self.snapshots.dataset),
        ] {
            if let Some(ds) = ds.as_deref() {
                if ds.is_empty() || ds.starts_with(['/', '-']) || ds.contains('@') {
                    return invalid(format!("{key} {ds:?} is not a ZFS dataset name"));
                }
            }
        }
        if self.snapshots.enabled && self.snapshots.dataset.is_none() {
            return invalid("snapshots.enabled needs snapshots.dataset".into());
        }
        if self.query.tcp.is_some() && self.query.token_file.is_none() {
            return invalid(
                "query.tcp needs query.token_file (TCP clients must present a token)".into(),
            );
        }
        for (key, patterns) in [
            ("ignore", &self.ignore),
            ("ignore_extra", &self.ignore_extra),
        ] {
            for pattern in patterns {
                if let Err(e) = globset::Glob::new(pattern) {
                    return invalid(format!("{key} pattern {pattern:?}: {e}"));
                }
            }
        }
        for (key, list) in [
            ("query.writers", &self.query.writers),
            ("query.readers", &self.query.readers),
        ] {
            for w in list {
                if parse_writer(w).is_none() {
                    return invalid(format!(
                        "{key} entry {w:?} is not \"uid:N\", \"gid:N\" or N"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A principal allowed to write through the query service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// A user id.
    Uid(u32),
    /// A group id (primary or supplementary is not visible over SO_PEERCRED: primary).
    Gid(u32),
}

/// Parses one `query.writers` entry.
pub fn parse_writer(s: &str) -> Option<Writer> {
    if let Some(n) = s.strip_prefix("uid:") {
        n.parse().ok().map(Writer::Uid)
    } else if let Some(n) = s.strip_prefix("gid:") {
        n.parse().ok().map(Writer::Gid)
    } else {
        s.parse().ok().map(Writer::Uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_takes_defaults() {
        let c =
            Config::parse("files_root = \"/tank/files\"\nmetadata_dir = \"/tank/meta\"\n").unwrap();
        assert_eq!(c.versions.keep, 5);
        assert_eq!(c.versions.min_age_days, 7);
        assert_eq!(c.snapshots.hourly, 24);
        assert_eq!(c.snapshots.monthly, 12);
        assert_eq!(c.query.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(c.ignore, default_ignore());
        assert_eq!(c, Config::for_dirs("/tank/files", "/tank/meta"));
    }

    #[test]
    fn full_config_parses() {
        let text = r#"
files_root = "/tank/files"
metadata_dir = "/tank/meta"
metadata_dataset = "tank/meta"
container_prefix = "/data"
ignore = ["*.part"]
[versions]
keep = 3
min_age_days = 1
max_stored_file_size = 1000
[snapshots]
enabled = true
dataset = "tank/files"
hourly = 2
[query]
socket = "/tmp/q.sock"
tcp = "127.0.0.1:7000"
token_file = "/etc/horace/token"
writers = ["uid:1000", "gid:50", "7"]
[zfsd]
bus = "unix:path=/tmp/bus"
[catalog]
backup_interval = 60
backups_keep = 2
"#;
        let c = Config::parse(text).unwrap();
        assert_eq!(c.snapshots.hourly, 2);
        assert_eq!(c.metadata_dataset.as_deref(), Some("tank/meta"));
        assert_eq!(c.start, StartOptions::default());
        assert_eq!(c.snapshots.test_hour_seconds, None);
        assert_eq!(c.snapshots.daily, 14);
        assert_eq!(c.catalog.interval(), Some(Duration::from_secs(60)));
        let w: Vec<_> = c
            .query
            .writers
            .iter()
            .map(|w| parse_writer(w).unwrap())
            .collect();
        assert_eq!(w, [Writer::Uid(1000), Writer::Gid(50), Writer::Uid(7)]);
    }

    /// The side files of issue 14 item 5 are ignored by default; documents whose names
    /// merely look like them are not.
    #[test]
    fn default_ignore_covers_side_files_and_spares_documents() {
        use std::ffi::OsStr;
        let ig = crate::scan::Ignore::new(&default_ignore()).unwrap();
        for side in [
            // vim: the write probe, swap files, the swap probe, backups
            "4913",
            ".notes.txt.swp",
            ".notes.txt.swo",
            ".notes.txt.swn",
            ".notes.txt.swx",
            "notes.txt~",
            // emacs: auto-save and lock link
            "#notes.txt#",
            ".#notes.txt",
            // LibreOffice: lock file and temp names
            ".~lock.report.odt#",
            "lu12345abc.tmp",
            "lu1p4b3z.tmp",
            // Microsoft Office: owner file, Word's temp names, Excel's temp copies
            "~$report.docx",
            "~$ook1.xlsx",
            "~WRD0000.tmp",
            "~WRL0001.tmp",
            "A1B2C3D4",
            "0D3A3F00",
            "8CBA3F10.tmp",
            // rsync
            ".report.pdf.Ab3xYz",
            ".data.csv.k9QzP0",
            // SQLite
            "app.db-wal",
            "app.db-shm",
            "app.db-journal",
            "History-journal",
            // Horace's own
            ".horace-sync-1",
        ] {
            assert!(ig.is_ignored(OsStr::new(side)), "{side} should be ignored");
        }
        for doc in [
            "deadbeef.txt",
            "DEADBEEF.txt",
            "deadbeef",
            "A1B2C3D",
            "A1B2C3D4E",
            "backup~notes",
            "~notes",
            "notes.swp.txt",
            "swp",
            "4913.txt",
            "49130",
            "travel-journal.md",
            "wal",
            "app.db",
            "#1",
            "#notes",
            "lock.report.odt#x",
            "$report.docx",
            "report.pdf",
            ".report.pdf",
            ".report.pdf.Ab3xY",
            ".report.pdf.Ab3xYz1",
            "report.pdf.Ab3xYz",
            "a.tmp.txt",
        ] {
            assert!(!ig.is_ignored(OsStr::new(doc)), "{doc} is a document");
        }
    }

    #[test]
    fn ignore_replaces_the_defaults_and_ignore_extra_adds_to_them() {
        let base = "files_root = \"/a\"\nmetadata_dir = \"/b\"\n";
        let c = Config::parse(&format!("{base}ignore_extra = [\"*.part\"]\n")).unwrap();
        let mut want = default_ignore();
        want.push("*.part".into());
        assert_eq!(
            c.ignore_patterns(),
            want,
            "extra patterns add to the defaults"
        );
        let c = Config::parse(&format!("{base}ignore = []\n")).unwrap();
        assert!(
            c.ignore_patterns().is_empty(),
            "ignore = [] turns the defaults off"
        );
        let c = Config::parse(&format!(
            "{base}ignore = [\"*.bak\"]\nignore_extra = [\"*.part\"]\n"
        ))
        .unwrap();
        assert_eq!(c.ignore_patterns(), ["*.bak", "*.part"]);
        let e = Config::parse(&format!("{base}ignore_extra = [\"[\"]\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ignore_extra"), "{e}");
    }

    #[test]
    fn the_packaged_config_keeps_the_default_ignore_patterns() {
        let text = include_str!("../../packaging/horace.toml");
        let c = Config::parse(text).unwrap();
        assert_eq!(
            c.ignore,
            default_ignore(),
            "packaging/horace.toml must not freeze an old list"
        );
    }

    #[test]
    fn test_hour_seconds_knob_parses() {
        let text =
            "files_root = \"/a\"\nmetadata_dir = \"/b\"\n[snapshots]\ntest_hour_seconds = 4\n";
        assert_eq!(
            Config::parse(text).unwrap().snapshots.test_hour_seconds,
            Some(4)
        );
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = "files_root = \"/a\"\nmetadata_dir = \"/b\"\n[versions]\nkeep = 2\nkeepp = 3\n";
        let e = Config::parse(text).unwrap_err().to_string();
        assert!(e.contains("keepp"), "{e}");
        assert!(e.contains("line 5"), "{e}");
    }

    #[test]
    fn semantic_errors_are_named() {
        for (text, needle) in [
            ("files_root = \"rel\"\nmetadata_dir = \"/b\"", "absolute"),
            ("files_root = \"/a\"\nmetadata_dir = \"/a/m\"", "inside"),
            (
                "files_root = \"/a\"\nmetadata_dir = \"/b\"\n[snapshots]\nenabled = true",
                "dataset",
            ),
            (
                "files_root = \"/a\"\nmetadata_dir = \"/b\"\n[query]\ntcp = \"127.0.0.1:1\"",
                "token_file",
            ),
            (
                "files_root = \"/a\"\nmetadata_dir = \"/b\"\n[query]\nwriters = [\"bob\"]",
                "writers",
            ),
            (
                "files_root = \"/a\"\nmetadata_dir = \"/b\"\nignore = [\"[\"]",
                "ignore",
            ),
            ("files_root = \"/a\"", "metadata_dir"),
            (
                "files_root = \"/a\"\nmetadata_dir = \"/b\"\nmetadata_dataset = \"/tank\"",
                "metadata_dataset",
            ),
            (
                "files_root = \"/a\"\nmetadata_dir = \"/b\"\n[snapshots]\ndataset = \"t@s\"",
                "snapshots.dataset",
            ),
            (
                "files_root = \"/a\"\nmetadata_dir = \"/b\"\nstart = 1",
                "start",
            ),
        ] {
            let e = Config::parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
