//! `horace mcp --listen`: the Streamable HTTP transport at `/mcp`, with a bearer token on
//! every request. The tokens file maps each token to read or write rights; a read token's
//! calls of write tools are refused here, before the query service is asked.
//!
//! The HTTP server itself reaches the query service with `--socket`/`--tcp` like every
//! subcommand, so what a write token may do is further bounded by the query service's
//! rights of the uid this process runs as (docs/security.md, "MCP over HTTP").

use std::collections::HashSet;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::RoleServer;
use serde::Deserialize;

use super::super::args::McpArgs;
use super::Server;

/// The shortest token accepted: 32 characters (e.g. `openssl rand -hex 16`).
pub const MIN_TOKEN_LEN: usize = 32;
/// Connections served at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 256;
/// How long a client may take to send a request's headers (a slowloris holds a slot
/// no longer).
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the caller of a tool may do, beyond what the query service allows this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Over stdio: whatever the query service allows this process's uid.
    #[serde(skip)]
    Service,
    /// The read tools only.
    Read,
    /// Every tool.
    Write,
}

/// The access of the caller of this request: over HTTP, its token's; over stdio,
/// the query service's.
pub fn access(ctx: &RequestContext<RoleServer>) -> Access {
    match ctx.extensions.get::<http::request::Parts>() {
        // A request that reached a tool passed the token check, which set its access.
        Some(p) => p
            .extensions
            .get::<Access>()
            .copied()
            .unwrap_or(Access::Read),
        None => Access::Service,
    }
}

/// The tokens file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

/// One `[[token]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    /// Who holds it (logged with each session; never the token itself).
    name: String,
    /// The secret.
    token: String,
    /// read or write.
    rights: Access,
}

/// The accepted bearer tokens.
#[derive(Debug, Clone)]
pub struct Tokens(Arc<Vec<TokenEntry>>);

impl Tokens {
    /// Parses a tokens file: at least one token, each at least [`MIN_TOKEN_LEN`]
    /// characters, names and tokens unique.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let f: TokensFile = toml::from_str(text).context("failed to parse the tokens file")?;
        anyhow::ensure!(!f.token.is_empty(), "the tokens file has no [[token]]");
        let (mut names, mut secrets) = (HashSet::new(), HashSet::new());
        for t in &f.token {
            anyhow::ensure!(
                t.token.chars().count() >= MIN_TOKEN_LEN,
                "token {:?} is shorter than {MIN_TOKEN_LEN} characters (make one with `openssl rand -hex 32`)",
                t.name
            );
            anyhow::ensure!(
                !t.token.chars().any(char::is_whitespace),
                "token {:?} contains whitespace",
                t.name
            );
            anyhow::ensure!(names.insert(&t.name), "token name {:?} is repeated", t.name);
            anyhow::ensure!(
                secrets.insert(&t.token),
                "token {:?} repeats another token",
                t.name
            );
        }
        Ok(Self(Arc::new(f.token)))
    }

    /// Reads the tokens file, refusing one that other users could read.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let md = std::fs::metadata(path)
            .with_context(|| format!("failed to read tokens file {}", path.display()))?;
        let mode = md.permissions().mode();
        anyhow::ensure!(
            mode & 0o077 == 0,
            "tokens file {} is mode {:o}: make it readable by its owner only (chmod 600)",
            path.display(),
            mode & 0o7777
        );
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        anyhow::ensure!(
            md.uid() == euid || euid == 0,
            "tokens file {} belongs to uid {}, not to this process's uid {euid}",
            path.display(),
            md.uid()
        );
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read tokens file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// The token entry an `Authorization` header presents, comparing against every token
    /// in constant time.
    fn check(&self, header: Option<&http::HeaderValue>) -> Option<&TokenEntry> {
        let presented = header?.to_str().ok()?;
        let (scheme, secret) = presented.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let secret = secret.trim().as_bytes();
        let mut found = None;
        for t in self.0.iter() {
            if ct_eq(t.token.as_bytes(), secret) {
                found = Some(t);
            }
        }
        found
    }
}

/// Equality that takes the same time wherever the first difference is.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        diff |= u64::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    std::hint::black_box(diff) == 0
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// A refusal (401, 404) with a text body. It is sent before the request's body was read,
/// so hyper closes the connection after it; `Connection: close` says so, else a client
/// that reuses the connection for its next request finds it closed under it ("server
/// disconnected without sending a response", seen in CI).
fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"horace-mcp\""),
        );
    }
    r
}

/// Serves Streamable HTTP on `addr` until SIGTERM or SIGINT.
pub async fn serve(server: Server, addr: &str, m: &McpArgs) -> anyhow::Result<()> {
    let tokens = Tokens::load(
        m.tokens
            .as_deref()
            .context("--listen needs --tokens FILE (every HTTP request must carry a token)")?,
    )?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("failed to resolve {addr}"))?
        .collect();
    let addr = *addrs
        .first()
        .context("the listen address resolves to nothing")?;
    anyhow::ensure!(
        m.allow_remote || addr.ip().is_loopback(),
        "{addr} is not a loopback address: add --allow-remote to serve other hosts"
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to listen on {addr}"))?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut config = StreamableHttpServerConfig::default()
        .with_cancellation_token(cancel.child_token())
        .with_sse_keep_alive(Some(std::time::Duration::from_secs(15)));
    if m.allow_remote {
        // Remote clients name this host as they know it; the token is what authenticates.
        config = config.disable_allowed_hosts();
    }
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        LocalSessionManager::default().into(),
        config,
    );
    tracing::info!(%addr, tokens = tokens.0.len(), "serving MCP over HTTP at /mcp");
    eprintln!(
        "horace mcp: listening on http://{}/mcp",
        listener.local_addr()?
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s?,
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        let _ = stream.set_nodelay(true);
        let (service, tokens) = (service.clone(), tokens.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let handler = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                let (service, tokens) = (service.clone(), tokens.clone());
                async move {
                    if req.uri().path() != "/mcp" {
                        return Ok::<_, std::convert::Infallible>(plain(
                            StatusCode::NOT_FOUND,
                            "not found: the MCP endpoint is /mcp\n",
                        ));
                    }
                    let Some(t) = tokens.check(req.headers().get(http::header::AUTHORIZATION))
                    else {
                        tracing::info!(%peer, "request without a valid bearer token");
                        return Ok(plain(
                            StatusCode::UNAUTHORIZED,
                            "unauthorized: send Authorization: Bearer <token>\n",
                        ));
                    };
                    tracing::debug!(%peer, token = %t.name, method = %req.method(), "request");
                    req.extensions_mut().insert(t.rights);
                    Ok(service.handle(req).await)
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), handler)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
    cancel.cancel();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: &str = "0123456789abcdef0123456789abcdef";
    const R: &str = "fedcba9876543210fedcba9876543210";

    fn tokens() -> Tokens {
        Tokens::parse(&format!(
            "[[token]]\nname = \"agent\"\ntoken = \"{W}\"\nrights = \"write\"\n\
             [[token]]\nname = \"viewer\"\ntoken = \"{R}\"\nrights = \"read\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn bearer_tokens_map_to_their_rights() {
        let t = tokens();
        let h = |s: &str| http::HeaderValue::from_str(s).unwrap();
        assert_eq!(
            t.check(Some(&h(&format!("Bearer {W}")))).unwrap().rights,
            Access::Write
        );
        assert_eq!(
            t.check(Some(&h(&format!("bearer {R}")))).unwrap().rights,
            Access::Read
        );
        assert!(t.check(Some(&h(&format!("Bearer {W}x")))).is_none());
        assert!(t.check(Some(&h(&format!("Basic {W}")))).is_none());
        assert!(t.check(Some(&h("Bearer"))).is_none());
        assert!(t.check(None).is_none());
    }

    #[test]
    fn weak_or_repeated_tokens_are_refused() {
        let one = |tok: &str, rights: &str| {
            format!("[[token]]\nname = \"a\"\ntoken = \"{tok}\"\nrights = \"{rights}\"\n")
        };
        assert!(Tokens::parse(&one("short", "read")).is_err());
        assert!(Tokens::parse(&one(W, "admin")).is_err());
        assert!(Tokens::parse("").is_err());
        assert!(Tokens::parse(&format!("{}{}", one(W, "read"), one(R, "read"))).is_err());
        assert!(Tokens::parse(&format!("{}\nextra = 1\n", one(W, "read"))).is_err());
        assert!(Tokens::parse(&one(W, "service")).is_err());
    }

    #[test]
    fn ct_eq_is_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(!ct_eq(b"", b"a"));
    }
}
