//! Command-line flags (clap derive) and their conversion to protocol requests.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use horace_client::{
    ContentMatch, DuplicatesQuery, FileStatus, FileUpdate, SearchQuery, SortKey, SortOrder,
};

const AFTER_HELP: &str = "\
Files are named by path (relative to the files root, or absolute under the container
prefix) or by id as #123 or id:123 (write ./#name for a file whose name starts with #).
Times are RFC 3339 (2024-05-01T12:00:00Z), a date (2024-05-01, UTC), or unix seconds.
Sizes are bytes, or with a K, M, G or T suffix (powers of 1024).

Exit codes:
  0  success
  1  error (invalid argument, server failure, …)
  2  usage error
  3  not found (file, version or collection)
  4  permission denied (not a writer, or a wrong TCP token)
  5  cannot connect to the query service
  6  restore failed (the file could not be written back)
  7  too many connections
  8  status: printed, but the watcher is degraded (zfsd unreachable, failing paths, …)
  9  sync: printed what written before it is not cataloged yet, and why
`horace check` exits 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (monitoring plugin).";

/// The heading the global options are listed under in every subcommand's `--help`, apart
/// from the subcommand's own options.
const GLOBAL: &str = "Global options";

/// Query the Horace catalog: search, history, restore, tags, collections, duplicates,
/// snapshots, status.
#[derive(Debug, Parser)]
#[command(name = "horace", version, after_help = AFTER_HELP)]
pub struct Args {
    /// Query socket [default: $HORACE_SOCKET, else /run/horace/query.sock].
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Connect over TCP instead (read-only; needs --token-file).
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "HOST:PORT", value_parser = parse_host_port)]
    pub tcp: Option<String>,
    /// File holding the bearer token for --tcp.
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// Deadline of the call, seconds.
    #[arg(long, global = true, help_heading = GLOBAL, default_value_t = 30.0, value_name = "SECS")]
    pub timeout: f64,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find files by path, owner, tags, collection, type, size, time, checksum, status.
    Search(Box<SearchArgs>),
    /// Show a file with its versions, tags, collections and history.
    Info {
        /// Path or #id.
        file: String,
    },
    /// List a file's versions.
    Versions {
        /// Path or #id.
        file: String,
    },
    /// Write an earlier version back over the file (becomes a new version).
    Restore {
        /// Path or #id.
        file: String,
        /// Version number to restore.
        version: i64,
    },
    /// Add or remove tags.
    Tag {
        /// Path or #id.
        file: String,
        /// Tags to add.
        #[arg(long, value_name = "TAG")]
        add: Vec<String>,
        /// Tags to remove.
        #[arg(long, value_name = "TAG")]
        remove: Vec<String>,
    },
    /// Change a file's metadata.
    Update {
        /// Path or #id.
        file: String,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Catalog a file now and set its metadata (idempotent).
    Register {
        /// Path of the file.
        path: String,
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Manage collections.
    #[command(subcommand)]
    Collections(Collections),
    /// List groups of active files with identical content.
    Duplicates(DupArgs),
    /// List the snapshots of the files dataset, or (--plan) what the scheduler's next
    /// tick would create and destroy if it ran now.
    Snapshots {
        /// Show the dry-run plan instead of the list (nothing is executed).
        #[arg(long)]
        plan: bool,
    },
    /// Show health and size figures.
    Status,
    /// Wait until everything written so far is cataloged.
    Sync,
    /// One line and the exit status of a monitoring plugin (Nagios, Icinga): 0 OK,
    /// 1 WARNING, 2 CRITICAL, 3 UNKNOWN, from readiness, zfsd, the newest snapshot of each
    /// label, the queue, failing paths, damaged store objects and the last catalog backup.
    Check(Box<super::monitor::Thresholds>),
    /// The status figures and counters in the Prometheus text exposition format (for
    /// node_exporter's textfile collector or a scrape wrapper); `horace_up 0` when the
    /// watcher does not answer.
    Metrics,
    /// Serve the catalog to MCP clients (the seeds' horace_* tools): over stdio, or with
    /// --listen over Streamable HTTP at /mcp.
    Mcp(McpArgs),
    /// Print the completion script of a shell to stdout (the Debian package installs
    /// bash, zsh and fish ones): `horace completions bash > ~/.local/share/bash-completion/completions/horace`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `horace mcp …`
#[derive(Debug, clap::Args)]
pub struct McpArgs {
    /// Serve Streamable HTTP on this address (at /mcp) instead of stdio.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Allow --listen on an address other than loopback.
    #[arg(long, requires = "listen")]
    pub allow_remote: bool,
    /// The bearer tokens of --listen (TOML: [[token]] name, token, rights = "read"|"write").
    #[arg(long, value_name = "FILE", requires = "listen")]
    pub tokens: Option<PathBuf>,
    /// The prefix under which clients see the files root, used in the paths answered.
    #[arg(long, default_value = "/mnt/irina_storage/files", value_name = "PATH")]
    pub container_prefix: String,
}

/// `horace collections …`
#[derive(Debug, Subcommand)]
pub enum Collections {
    /// List collections.
    List,
    /// Create a collection.
    Create {
        /// Name.
        name: String,
        /// Description.
        #[arg(long)]
        description: Option<String>,
    },
    /// List a collection's files.
    Members {
        /// Name.
        name: String,
        /// Page size (max 1000).
        #[arg(long, allow_negative_numbers = true)]
        limit: Option<u32>,
        /// Rows to skip.
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Add files.
    Add {
        /// Name.
        name: String,
        /// Paths or #ids.
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Remove files.
    Remove {
        /// Name.
        name: String,
        /// Paths or #ids.
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Delete a collection (files are kept).
    Delete {
        /// Name.
        name: String,
    },
}

/// Status names on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    /// Active files.
    Active,
    /// Archived files.
    Archived,
    /// Deleted files.
    Deleted,
    /// Every status.
    Any,
}

/// Sort keys on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SortArg {
    /// By path.
    Path,
    /// By creation time.
    Created,
    /// By last change.
    Updated,
    /// By size.
    Size,
}

/// `horace search` filters.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// Path glob (`*`, `?`, `[…]`), case-sensitive.
    #[arg(long)]
    pub glob: Option<String>,
    /// Path substring, case-insensitive.
    #[arg(long)]
    pub contains: Option<String>,
    /// Owner.
    #[arg(long)]
    pub owner: Option<String>,
    /// Carries this tag (repeat: all of them).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags_all: Vec<String>,
    /// Carries one of these tags (repeatable).
    #[arg(long = "any-tag", value_name = "TAG")]
    pub tags_any: Vec<String>,
    /// Member of this collection.
    #[arg(long)]
    pub collection: Option<String>,
    /// MIME type, or major/* .
    #[arg(long)]
    pub mime: Option<String>,
    /// File name extension.
    #[arg(long = "ext")]
    pub extension: Option<String>,
    /// At least this size.
    #[arg(long, value_parser = parse_size)]
    pub min_size: Option<u64>,
    /// At most this size.
    #[arg(long, value_parser = parse_size)]
    pub max_size: Option<u64>,
    /// Created at or after.
    #[arg(long, value_parser = parse_time)]
    pub created_after: Option<i64>,
    /// Created before.
    #[arg(long, value_parser = parse_time)]
    pub created_before: Option<i64>,
    /// Changed at or after.
    #[arg(long, value_parser = parse_time)]
    pub updated_after: Option<i64>,
    /// Changed before.
    #[arg(long, value_parser = parse_time)]
    pub updated_before: Option<i64>,
    /// SHA-256 of a version's content: every file that ever held it, in any version (the
    /// matching versions are listed with each file).
    #[arg(long)]
    pub sha256: Option<String>,
    /// With --sha256: only files whose current content it is.
    #[arg(long, requires = "sha256")]
    pub current: bool,
    /// Status (repeatable) [default: active].
    #[arg(long, value_enum)]
    pub status: Vec<StatusArg>,
    /// Sort key.
    #[arg(long, value_enum, default_value = "path")]
    pub sort: SortArg,
    /// Largest first.
    #[arg(long)]
    pub desc: bool,
    /// Page size (default 50, max 1000; 0 prints only the total).
    #[arg(long, allow_negative_numbers = true)]
    pub limit: Option<u32>,
    /// Rows to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
}

impl SearchArgs {
    /// The protocol query.
    pub fn query(&self) -> anyhow::Result<SearchQuery> {
        let statuses = if self.status.iter().any(|s| matches!(s, StatusArg::Any)) {
            vec![
                FileStatus::Active,
                FileStatus::Archived,
                FileStatus::Deleted,
            ]
        } else {
            self.status
                .iter()
                .map(|s| status(*s))
                .collect::<Option<_>>()
                .context("bad status")?
        };
        Ok(SearchQuery {
            path_glob: self.glob.clone(),
            path_contains: self.contains.clone(),
            owner: self.owner.clone(),
            tags_all: self.tags_all.clone(),
            tags_any: self.tags_any.clone(),
            collection: self.collection.clone(),
            mime: self.mime.clone(),
            extension: self.extension.clone(),
            min_size: self.min_size,
            max_size: self.max_size,
            created_after: self.created_after,
            created_before: self.created_before,
            updated_after: self.updated_after,
            updated_before: self.updated_before,
            sha256: self.sha256.clone(),
            statuses,
            sort: match self.sort {
                SortArg::Path => SortKey::Path,
                SortArg::Created => SortKey::Created,
                SortArg::Updated => SortKey::Updated,
                SortArg::Size => SortKey::Size,
            },
            order: if self.desc {
                SortOrder::Desc
            } else {
                SortOrder::Asc
            },
            limit: self.limit,
            offset: self.offset,
            sha256_match: if self.current {
                ContentMatch::Current
            } else {
                ContentMatch::AnyVersion
            },
        })
    }
}

fn status(s: StatusArg) -> Option<FileStatus> {
    match s {
        StatusArg::Active => Some(FileStatus::Active),
        StatusArg::Archived => Some(FileStatus::Archived),
        StatusArg::Deleted => Some(FileStatus::Deleted),
        StatusArg::Any => None,
    }
}

/// Metadata flags of `update` and `register`.
#[derive(Debug, clap::Args)]
pub struct MetaArgs {
    /// Tags to add.
    #[arg(long = "add-tag", value_name = "TAG")]
    pub add_tags: Vec<String>,
    /// Tags to remove.
    #[arg(long = "remove-tag", value_name = "TAG")]
    pub remove_tags: Vec<String>,
    /// What the file is for ("" clears).
    #[arg(long)]
    pub purpose: Option<String>,
    /// New owner.
    #[arg(long)]
    pub owner: Option<String>,
    /// New status.
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    /// Add to collection (repeatable).
    #[arg(long = "add-collection", value_name = "NAME")]
    pub add_collections: Vec<String>,
    /// Remove from collection (repeatable).
    #[arg(long = "remove-collection", value_name = "NAME")]
    pub remove_collections: Vec<String>,
    /// Correlation id ("" clears).
    #[arg(long)]
    pub correlation_id: Option<String>,
}

impl MetaArgs {
    /// The protocol update.
    pub fn update(self) -> anyhow::Result<FileUpdate> {
        let status = match self.status {
            Some(s) => Some(status(s).context("--status any is not a status a file can have")?),
            None => None,
        };
        Ok(FileUpdate {
            add_tags: self.add_tags,
            remove_tags: self.remove_tags,
            purpose: self.purpose,
            owner: self.owner,
            status,
            add_collections: self.add_collections,
            remove_collections: self.remove_collections,
            correlation_id: self.correlation_id,
        })
    }
}

/// `horace duplicates` flags.
#[derive(Debug, clap::Args)]
pub struct DupArgs {
    /// Only contents of at least this size.
    #[arg(long, value_parser = parse_size)]
    pub min_size: Option<u64>,
    /// Groups per page (max 1000).
    #[arg(long, allow_negative_numbers = true)]
    pub limit: Option<u32>,
    /// Groups to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
}

impl DupArgs {
    /// The protocol query.
    pub fn query(&self) -> DuplicatesQuery {
        DuplicatesQuery {
            min_size: self.min_size,
            limit: self.limit,
            offset: self.offset,
        }
    }
}

/// Parses `123`, `10K`, `5M`, `2G`, `1T` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("unknown size suffix in {s:?} (use K, M, G or T)")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Parses RFC 3339, a UTC date, or unix seconds into unix nanoseconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let ns = if let Ok(secs) = s.parse::<i64>() {
        secs.checked_mul(1_000_000_000)
    } else if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        t.timestamp_nanos_opt()
    } else if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_utc().timestamp_nanos_opt())
    } else {
        return Err(format!(
            "{s:?} is not a time (RFC 3339, YYYY-MM-DD or unix seconds)"
        ));
    };
    ns.ok_or_else(|| format!("{s:?} is out of range"))
}

/// `HOST:PORT` with a port number (a host name, an IPv4 address or `[IPv6]`): checked
/// here so that a malformed address is a usage error (exit 2), not a failed connection.
fn parse_host_port(s: &str) -> Result<String, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not HOST:PORT"))?;
    port.parse::<u16>()
        .map_err(|_| format!("{port:?} in {s:?} is not a port number"))?;
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.is_empty() || (host.contains(':') && !bracketed) {
        return Err(format!(
            "{s:?} is not HOST:PORT (write an IPv6 address as [addr]:port)"
        ));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_parse() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("10K"), Ok(10240));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("5X").is_err());
        assert!(parse_size("abc").is_err());
        assert_eq!(parse_time("10"), Ok(10_000_000_000));
        assert_eq!(parse_time("1970-01-02"), Ok(86_400_000_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1_000_000_000));
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn flags_are_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
