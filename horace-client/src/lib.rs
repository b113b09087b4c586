//! Horace's query protocol and its typed async client.
//!
//! Containers and people ask the Horace watcher what its catalog knows — search, a file's
//! version history, restore, tags, collections, duplicates, snapshots, status — over a Unix
//! socket (default `/run/horace/query.sock`, bind-mount it into a container; the caller's
//! uid decides whether it may write) or over TCP with a bearer token (read-only).
//!
//! The protocol is a [`tarpc`] service ([`Horace`]) over length-delimited bincode frames
//! (see [`wire`]); [`Client`] wraps it with typed methods and per-call deadlines.
//!
//! # Rights and limits
//!
//! - Unix socket: any local peer may read; root, the watcher's own uid and the uids/gids
//!   in the server's `query.writers` may also restore, update metadata, register files and
//!   change collections. Others get [`QueryError::PermissionDenied`].
//! - TCP: the connection opens with the bearer-token handshake of [`wire`]; a wrong token
//!   closes the connection before any catalog data is sent ([`ClientError::Unauthenticated`]).
//!   TCP callers are readers only: a token is a shared secret, not an identity.
//! - Requests are at most [`wire::MAX_REQUEST_FRAME`] bytes (the server closes a connection
//!   that sends more, or anything it cannot decode); pages hold at most [`MAX_LIMIT`] rows;
//!   each call has a deadline ([`DEFAULT_TIMEOUT`], see [`Client::with_timeout`]).
//!
//! # Example: a container reads a file's history
//!
//! ```no_run
//! use horace_client::{Client, FileRef};
//!
//! # async fn example() -> Result<(), horace_client::ClientError> {
//! let client = Client::connect_unix("/run/horace/query.sock").await?;
//! // Wait until everything this container wrote so far is cataloged.
//! client.sync().await?;
//! let info = client.file_info(FileRef::Path("reports/2024/q3.pdf".into())).await?;
//! for v in &info.versions {
//!     let sha = v.sha256.as_deref().unwrap_or("(not readable to this uid)");
//!     println!("v{} {sha} {} bytes{}", v.version, v.size,
//!         if v.content_stored { "" } else { " (content pruned)" });
//! }
//! for e in &info.events {
//!     println!("{} {}", e.at_ns, e.kind);
//! }
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod client;
mod error;
pub mod protocol;
pub mod wire;

pub use client::{default_socket, Client, DEFAULT_SOCKET, DEFAULT_TIMEOUT, SOCKET_ENV};
pub use error::{ClientError, QueryError, RestoreFailure};
pub use protocol::*;
