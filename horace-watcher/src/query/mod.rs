//! The tarpc query service: listeners on the Unix socket and (optionally) TCP, and the
//! limits that keep a slow or hostile client from stalling the others.
//!
//! Limits: request frames of at most `wire::MAX_REQUEST_FRAME` bytes (a larger or
//! undecodable frame closes that connection only), [`MAX_IN_FLIGHT`] requests per
//! connection, [`service::MAX_CONCURRENT_READS`] catalog reads at once,
//! [`MAX_CONNECTIONS`] Unix connections of non-root uids ([`MAX_CONNECTIONS_PER_CALLER`]
//! per uid) and [`ROOT_CONNECTIONS`] of root's own, TCP with its own budget
//! ([`MAX_TCP_CONNECTIONS`], [`MAX_TCP_PER_ADDRESS`] per address) taken only after the token
//! ([`MAX_PENDING_HANDSHAKES`] at once), [`service::MAX_REQUEST_TIME`] per request, result pages of at most 1000 rows,
//! the TCP token handshake within [`HANDSHAKE_TIMEOUT`], and each connection's idle and
//! request-frame deadlines ([`deadline`]).

pub mod auth;
pub mod collections;
pub mod deadline;
pub mod files;
pub mod limits;
pub mod paths;
pub mod plan;
pub mod reads;
pub mod refuse;
pub mod report;
pub mod search;
pub mod service;
pub mod sight;
pub mod sql;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use horace_client::wire::{self, FrameLimit};
use horace_client::Horace;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};

use self::auth::{Peer, PeerKind, Rights};
use self::deadline::{Activity, Deadlines};
use self::limits::{Caller, Full, Slots};
use self::service::QueryService;
use self::sight::Sight;
use crate::watch::WatchHandle;
use crate::Context;

/// Most requests one connection may have in flight; more are answered with an error.
pub const MAX_IN_FLIGHT: usize = 32;
/// Most simultaneous Unix-socket connections of uids other than root; more are closed at once.
pub const MAX_CONNECTIONS: usize = 256;
/// Most simultaneous connections of one non-root uid: a quarter of [`MAX_CONNECTIONS`]
/// would let four uids lock everyone else out, so one uid gets an eighth.
pub const MAX_CONNECTIONS_PER_CALLER: usize = 32;
/// Connections root has for itself, whatever the other uids hold: root is never locked
/// out by them.
pub const ROOT_CONNECTIONS: usize = 32;
/// Most simultaneous TCP connections that presented their token (their own budget: TCP
/// never takes a Unix client's slot), and of one address.
pub const MAX_TCP_CONNECTIONS: usize = 64;
/// Most TCP connections of one address.
pub const MAX_TCP_PER_ADDRESS: usize = 16;
/// Most TCP connections still presenting their token at once; more are closed at once.
/// A connection takes a slot only once its token is accepted.
pub const MAX_PENDING_HANDSHAKES: usize = 32;
/// How long a TCP client has to present its token.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// The query service's listening sockets, bound before the watcher reports READY=1 so a
/// client that connects right after start-up finds the socket.
pub struct Listeners {
    unix: UnixListener,
    tcp: Option<(TcpListener, Vec<u8>)>,
}

/// Binds the Unix socket and, when configured, the TCP listener (which needs a token).
///
/// A listener that cannot be set up (socket in use, TCP without a usable token) is an
/// error that stops start-up.
pub async fn bind(ctx: &Context) -> anyhow::Result<Listeners> {
    let q = &ctx.config.query;
    let unix = bind_unix(&q.socket)?;
    let tcp = match (&q.tcp, &q.token_file) {
        (Some(addr), Some(token_file)) => {
            let token = auth::load_token(token_file)?;
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("failed to listen on query.tcp {addr}"))?;
            tracing::info!(addr = %l.local_addr()?, "query service listening on TCP (token required, read-only)");
            Some((l, token))
        }
        (Some(_), None) => anyhow::bail!("query.tcp needs query.token_file"),
        _ => None,
    };
    Ok(Listeners { unix, tcp })
}

/// Serves queries on `listeners` until `ctx.cancel` fires, then removes the socket.
pub async fn serve(
    ctx: Arc<Context>,
    watch: WatchHandle,
    listeners: Listeners,
) -> anyhow::Result<()> {
    let q = &ctx.config.query;
    let Listeners { unix, tcp } = listeners;
    tracing::info!(socket = %q.socket.display(), "query service listening");
    let slots = UnixSlots {
        others: Slots::new(MAX_CONNECTIONS, MAX_CONNECTIONS_PER_CALLER),
        root: Slots::new(ROOT_CONNECTIONS, ROOT_CONNECTIONS),
    };
    let rights = Rights::new(q);
    let unix_loop = accept_unix(ctx.clone(), watch.clone(), unix, rights.clone(), slots);
    let tcp_loop = async {
        match tcp {
            Some((l, token)) => {
                let slots = Slots::new(MAX_TCP_CONNECTIONS, MAX_TCP_PER_ADDRESS);
                accept_tcp(
                    ctx.clone(),
                    watch.clone(),
                    l,
                    token,
                    slots,
                    rights.tcp_sight(),
                )
                .await
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctx.cancel.cancelled() => {}
        () = unix_loop => {}
        () = tcp_loop => {}
    }
    let _ = std::fs::remove_file(&q.socket);
    Ok(())
}

/// Binds the Unix socket: creates its directory, replaces a stale socket (refusing one a
/// live server answers on), and opens it to every local user (rights come from SO_PEERCRED).
fn bind_unix(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
    }
    if let Ok(m) = std::fs::symlink_metadata(path) {
        anyhow::ensure!(
            m.file_type().is_socket(),
            "{} exists and is not a socket; remove it",
            path.display()
        );
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("{} is in use by another running server", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("failed to remove stale socket {}", path.display()))?;
    }
    let l = UnixListener::bind(path)
        .with_context(|| format!("failed to bind query socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("failed to chmod {}", path.display()))?;
    Ok(l)
}

/// The Unix socket's budgets: root's own, and the one every other uid shares.
struct UnixSlots {
    others: Slots,
    root: Slots,
}

async fn accept_unix(
    ctx: Arc<Context>,
    watch: WatchHandle,
    l: UnixListener,
    rights: Rights,
    slots: UnixSlots,
) {
    loop {
        let stream = match l.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept on the query socket failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = match rights.unix_peer(&stream) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "no peer credentials; closing the connection");
                continue;
            }
        };
        let PeerKind::Unix { uid, .. } = peer.kind else {
            continue;
        };
        let budget = if uid == 0 { &slots.root } else { &slots.others };
        let slot = match budget.acquire(Caller::Uid(uid)) {
            Ok(slot) => slot,
            Err(full) => {
                let (scope, limit) = match full {
                    Full::Caller if uid == 0 => {
                        ("root's own connections".to_string(), ROOT_CONNECTIONS)
                    }
                    Full::Caller => (format!("uid {uid}"), MAX_CONNECTIONS_PER_CALLER),
                    Full::Total => (
                        "the local users (all uids but root)".to_string(),
                        MAX_CONNECTIONS,
                    ),
                };
                tracing::warn!(peer = %peer, scope, limit, "too many query connections; refusing a new one");
                refuse::spawn(stream, scope, limit);
                continue;
            }
        };
        let (ctx, watch) = (ctx.clone(), watch.clone());
        tokio::spawn(async move {
            serve_connection(ctx, watch, stream, peer).await;
            drop(slot);
        });
    }
}

async fn accept_tcp(
    ctx: Arc<Context>,
    watch: WatchHandle,
    l: TcpListener,
    token: Vec<u8>,
    slots: Slots,
    tcp_sight: Sight,
) {
    let token = Arc::new(token);
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let (mut stream, addr) = match l.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept on the TCP query listener failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Presenting the token takes no connection slot, only one of a few handshake
        // permits held for at most HANDSHAKE_TIMEOUT.
        let Ok(pending) = handshakes.clone().try_acquire_owned() else {
            tracing::warn!(peer = %addr, pending = MAX_PENDING_HANDSHAKES,
                "too many TCP clients presenting a token; closing a new one");
            continue;
        };
        let (ctx, watch, token, slots) = (ctx.clone(), watch.clone(), token.clone(), slots.clone());
        let tcp_sight = tcp_sight.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let presented =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, wire::read_token(&mut stream)).await;
            drop(pending);
            match presented {
                Ok(Ok(t)) if token_matches(&t, &token) => {
                    let slot = slots.acquire(Caller::Ip(addr.ip()));
                    if stream.write_all(&[wire::HANDSHAKE_OK]).await.is_err() {
                        return;
                    }
                    let slot = match slot {
                        Ok(slot) => slot,
                        Err(full) => {
                            let (scope, limit) = match full {
                                Full::Caller => {
                                    (format!("TCP address {}", addr.ip()), MAX_TCP_PER_ADDRESS)
                                }
                                Full::Total => ("TCP".to_string(), MAX_TCP_CONNECTIONS),
                            };
                            tracing::warn!(peer = %addr, scope, limit, "too many TCP query connections; refusing a new one");
                            refuse::spawn(stream, scope, limit);
                            return;
                        }
                    };
                    let peer = Peer {
                        kind: PeerKind::Tcp(addr),
                        writer: false,
                        sight: tcp_sight.clone(),
                    };
                    serve_connection(ctx, watch, stream, peer).await;
                    drop(slot);
                }
                Ok(Ok(_)) => tracing::warn!(peer = %addr, "wrong token; connection closed"),
                Ok(Err(e)) => {
                    tracing::warn!(peer = %addr, error = %e, "bad token frame; connection closed")
                }
                Err(_) => {
                    tracing::warn!(peer = %addr, "no token within the handshake timeout; connection closed")
                }
            }
        });
    }
}

/// Compares SHA-256 digests in constant time, so neither the content nor the length of
/// the token leaks through timing.
fn token_matches(presented: &[u8], token: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    wire::constant_time_eq(&Sha256::digest(presented), &Sha256::digest(token))
}

/// Serves one connection until the client leaves, sends a bad frame, or shutdown.
async fn serve_connection<S>(ctx: Arc<Context>, watch: WatchHandle, stream: S, peer: Peer)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tracing::debug!(peer = %peer, writer = peer.writer, "query connection");
    let label = peer.to_string();
    let cancel = ctx.cancel.clone();
    let deadlines = Deadlines {
        idle: ctx.config.query.idle_timeout(),
        frame: ctx.config.query.frame_timeout(),
    };
    let activity = Arc::new(Activity::default());
    let limited =
        FrameLimit::new(stream, wire::MAX_REQUEST_FRAME).observed(activity.frames.clone());
    let transport = tarpc::serde_transport::new(wire::framed(limited), Bincode::default());
    let service = QueryService::new(ctx, watch, peer);
    let requests = BaseChannel::with_defaults(transport)
        .max_concurrent_requests(MAX_IN_FLIGHT)
        .execute(service.serve())
        // The requests run inside this connection's task rather than one spawned task
        // each: a file_info is tens of microseconds, and a spawn per call (moving the
        // request future into a new task, waking another worker, and handing the answer
        // back through the channel to this task) cost about as much again. tarpc still
        // answers requests beyond MAX_IN_FLIGHT with an error; anything that waits (a
        // write, a sync, a search on the blocking pool) waits without holding the others.
        .for_each_concurrent(None, |request| {
            let in_flight = activity.begin();
            async move {
                request.await;
                drop(in_flight);
            }
        });
    tokio::select! {
        () = requests => tracing::debug!(peer = %label, "query connection closed"),
        expired = activity.watch(deadlines) => {
            tracing::info!(peer = %label, "closing a query connection: {expired}");
        }
        () = cancel.cancelled() => {}
    }
}
