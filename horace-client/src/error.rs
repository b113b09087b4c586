//! Errors: [`QueryError`], what the server answers, and [`ClientError`], what a call through
//! [`crate::Client`] can fail with (the server's answer, or the connection).

use serde::{Deserialize, Serialize};

/// A refused or failed request, as the server answers it. Each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum QueryError {
    /// The path is empty, contains `..` or NUL, or lies outside the files root.
    #[error("invalid path {path:?}: {reason} (give a path relative to the files root, or absolute under the container prefix)")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No such file, version or collection in the catalog.
    #[error("{what} not found (check it with `horace search` or `horace collections list`)")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The caller may read but not do this.
    #[error("permission denied: {action} needs a writer (ask the operator to add your uid or gid to query.writers, over the Unix socket)")]
    PermissionDenied {
        /// What was refused.
        action: String,
    },
    /// An argument is out of range or malformed.
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// What is wrong.
        message: String,
    },
    /// The version's content is no longer in the store and no snapshot copy matched.
    #[error("content of version {version} was pruned from the store; recover it by hand from one of these snapshots: {}", if snapshots.is_empty() { "none".to_string() } else { snapshots.join(", ") })]
    ContentPruned {
        /// The version.
        version: i64,
        /// Snapshots taken while it was current, oldest first.
        snapshots: Vec<String>,
    },
    /// The watcher cannot answer now (shutting down, sync barrier timed out); retry later.
    #[error("busy: {message} (retry later)")]
    Busy {
        /// Why.
        message: String,
    },
    /// A request argument exceeds a limit.
    #[error("{what} is too large (limit {limit}); split the request")]
    TooLarge {
        /// What was too large.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// A TCP caller presented no token or a wrong one.
    #[error("unauthenticated: present the bearer token from the server's query.token_file")]
    Unauthenticated,
    /// The server has no connection free for this caller (its uid, root's own budget, the
    /// TCP budget or its address); the connection is closed right after this answer.
    #[error("too many connections: {scope} has all {limit} of its connections in use (close idle clients, or retry later)")]
    TooManyConnections {
        /// Whose budget is used up, e.g. "uid 1000" or "TCP address 10.0.0.5".
        scope: String,
        /// That budget.
        limit: u64,
    },
    /// The server failed; its log says more.
    #[error("internal error: {message} (see the watcher's log)")]
    Internal {
        /// What failed.
        message: String,
    },
    /// The restore found its version but could not write it back; nothing was replaced.
    #[error("restore of {path} failed: {kind}: {message}")]
    RestoreFailed {
        /// The file's path, escaped.
        path: String,
        /// Why, by kind.
        kind: RestoreFailure,
        /// The system's message.
        message: String,
    },
    /// horace-zfsd, which the answer needs, did not answer (not running, or the bus is
    /// away).
    #[error(
        "horace-zfsd is unreachable: {message} (is horace-zfsd running on the configured bus?)"
    )]
    ZfsdUnreachable {
        /// The D-Bus error.
        message: String,
    },
}

/// Why a restore could not write the file back (see [`QueryError::RestoreFailed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestoreFailure {
    /// A directory is at the file's path now.
    IsDirectory,
    /// The file's directory is gone, or was replaced by a link or a file.
    DirectoryMissing,
    /// The dataset or a quota is full (ENOSPC, EDQUOT).
    NoSpace,
    /// The watcher may not write there (EACCES, EPERM, a read-only dataset).
    PermissionDenied,
    /// No temp name could be created next to the file (every one drawn was taken).
    Conflict,
    /// The stored content does not hash to the version's checksum.
    Damaged,
    /// Another I/O error; the message says which.
    Io,
}

impl std::fmt::Display for RestoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::IsDirectory => "a directory is at the path",
            Self::DirectoryMissing => "its directory is gone or was replaced",
            Self::NoSpace => "no space left",
            Self::PermissionDenied => "permission denied",
            Self::Conflict => "no free temp name",
            Self::Damaged => "stored content is damaged",
            Self::Io => "I/O error",
        })
    }
}

/// Why a [`crate::Client`] call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The socket could not be reached.
    #[error("cannot connect to {addr}: {source} (is horace-watcher running? is the socket bind-mounted?)")]
    Connect {
        /// Socket path or TCP address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TCP server closed the connection after the token: wrong or missing token.
    #[error(
        "the server refused the token (check the token file against the server's query.token_file)"
    )]
    Unauthenticated,
    /// The call did not finish before its deadline.
    #[error("the request exceeded its deadline of {0:?}")]
    DeadlineExceeded(std::time::Duration),
    /// The connection failed or was closed by the server (e.g. a request over the frame
    /// limit).
    #[error("connection to the query service failed: {0}")]
    Transport(String),
}

impl QueryError {
    /// The error's name, as the MCP tools and `horace --json` report it: the variant's
    /// name, with `NotFound` told apart by what was not found.
    pub fn name(&self) -> &'static str {
        match self {
            Self::InvalidPath { .. } => "InvalidPath",
            Self::NotFound { what } if what.starts_with("version") => "VersionNotFound",
            Self::NotFound { what } if what.starts_with("collection") => "CollectionNotFound",
            Self::NotFound { what } if what.starts_with("file") => "FileNotFound",
            Self::NotFound { .. } => "NotFound",
            Self::PermissionDenied { .. } => "PermissionDenied",
            Self::InvalidArgument { .. } => "InvalidArgument",
            Self::ContentPruned { .. } => "ContentPruned",
            Self::Busy { .. } => "Busy",
            Self::TooLarge { .. } => "TooLarge",
            Self::Unauthenticated => "Unauthenticated",
            Self::TooManyConnections { .. } => "TooManyConnections",
            Self::Internal { .. } => "InternalError",
            Self::RestoreFailed { .. } => "RestoreFailed",
            Self::ZfsdUnreachable { .. } => "ZfsdUnreachable",
        }
    }
}

impl ClientError {
    /// The error's name (see [`QueryError::name`]); a connection that could not be made
    /// or broke is `Unavailable`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Query(q) => q.name(),
            Self::Connect { .. } | Self::Transport(_) => "Unavailable",
            Self::Unauthenticated => "Unauthenticated",
            Self::DeadlineExceeded(_) => "Timeout",
        }
    }

    /// Whether the error means the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Query(QueryError::NotFound { .. }))
    }
}
