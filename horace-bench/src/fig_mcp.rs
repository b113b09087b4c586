//! Figure 9 (issue 15): what `horace mcp` over stdio adds to a search and a file_info,
//! against the same calls through the Rust client, on a catalog of `mcp_rows` files.
//!
//! The MCP side is a raw JSON-RPC line client over the child's stdin/stdout (the
//! benchmark harness, not a server, so it is hand-written: one line out, one line back);
//! it does the `initialize` handshake, then alternates with the Rust client call by call
//! so both see the same load.

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use horace_client::{FileRef, SearchQuery};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

use crate::daemon::{sibling_bin, Catalog, Watcher};
use crate::data::{percentile, Rng};
use crate::fig_search::{build_catalog, OWNERS};
use crate::report::{count, ms, Figure};
use crate::Params;

/// The figures' names and targets (for a skipped run).
pub const NAMES: [(&str, &str); 2] = [
    (
        "9. MCP over stdio: search",
        "MCP adds ≤ 1 ms p50 over the Rust client",
    ),
    (
        "9b. MCP over stdio: file_info",
        "MCP adds ≤ 1 ms p50 over the Rust client",
    ),
];

/// A `horace mcp` child and its pipes.
struct Mcp {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: BufReader<tokio::process::ChildStdout>,
    next_id: u64,
    line: String,
}

impl Mcp {
    async fn start(socket: &Path) -> anyhow::Result<Self> {
        let mut child = tokio::process::Command::new(sibling_bin("horace")?)
            .arg("--socket")
            .arg(socket)
            .arg("mcp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("spawn horace mcp")?;
        let mut m = Self {
            stdin: child.stdin.take().context("stdin")?,
            stdout: BufReader::new(child.stdout.take().context("stdout")?),
            child,
            next_id: 1,
            line: String::new(),
        };
        m.request(
            "initialize",
            r#"{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"horace-bench","version":"0"}}"#,
        )
        .await?;
        m.stdin
            .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
            .await?;
        Ok(m)
    }

    /// Sends one request and reads its answer line; returns the line's length.
    async fn request(&mut self, method: &str, params: &str) -> anyhow::Result<usize> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#);
        self.stdin.write_all(msg.as_bytes()).await?;
        self.stdin.write_all(b"\n").await?;
        self.stdin.flush().await?;
        self.line.clear();
        if self.stdout.read_line(&mut self.line).await? == 0 {
            bail!("horace mcp closed its stdout");
        }
        if !self
            .line
            .starts_with(&format!(r#"{{"jsonrpc":"2.0","id":{id},"result""#))
            || self.line.contains(r#""isError":true"#)
        {
            bail!("horace mcp answered {method} with {}", self.line.trim_end());
        }
        Ok(self.line.len())
    }

    async fn call(&mut self, tool: &str, args: &str) -> anyhow::Result<usize> {
        self.request(
            "tools/call",
            &format!(r#"{{"name":"{tool}","arguments":{args}}}"#),
        )
        .await
    }
}

fn figure(
    (name, target): (&str, &str),
    mcp: &mut [Duration],
    rust: &mut [Duration],
    what: String,
) -> Figure {
    let (m50, m99) = (percentile(mcp, 50.0), percentile(mcp, 99.0));
    let (r50, r99) = (percentile(rust, 50.0), percentile(rust, 99.0));
    let mut f = Figure::new(name, target);
    f.value = format!("p50 {}, p99 {}", ms(m50), ms(m99));
    f.baseline = format!("Rust client: p50 {}, p99 {}", ms(r50), ms(r99));
    let added = m50.saturating_sub(r50);
    f.ratio = format!(
        "+{} p50 ({:.1}x)",
        ms(added),
        m50.as_secs_f64() / r50.as_secs_f64().max(1e-9)
    );
    f.pass = Some(added <= Duration::from_millis(1));
    f.note(what);
    f
}

/// Builds the catalog, starts the watcher and `horace mcp`, and measures.
pub async fn run(p: &Params, work: &Path, figs: &mut Vec<Figure>) -> anyhow::Result<()> {
    let root = work.join("mcp-files");
    let meta = work.join("mcp-meta");
    let rows = p.mcp_rows;
    eprintln!("bench: 9. MCP: a catalog of {rows} files");
    build_catalog(&root, &meta, rows, (rows / 100).max(1))?;
    let mut w = Watcher::start(&root, &meta, Catalog::Kept)?;
    w.wait_ready(Duration::from_millis(50), Duration::from_secs(600))
        .await?;
    let client = w.client(Duration::from_secs(60)).await?;
    let mut mcp = Mcp::start(&w.socket).await?;
    let mut rng = Rng::new(15);
    // Warm both paths (connections, page cache, the server's schema cache).
    for _ in 0..20 {
        client.search(SearchQuery::default()).await?;
        mcp.call("horace_search_files", "{}").await?;
    }
    let n = p.searches * 5;
    let (mut ms_mcp, mut ms_rust, mut bytes) = (Vec::new(), Vec::new(), 0);
    for _ in 0..n {
        let owner = format!("u{:02}", rng.below(OWNERS));
        let t = Instant::now();
        let q = SearchQuery {
            owner: Some(owner.clone()),
            statuses: vec![horace_client::FileStatus::Active],
            sort: horace_client::SortKey::Created,
            order: horace_client::SortOrder::Desc,
            limit: Some(50),
            ..Default::default()
        };
        client.search(q).await?;
        ms_rust.push(t.elapsed());
        let args = format!(r#"{{"query":{{"owner":"{owner}"}}}}"#);
        let t = Instant::now();
        bytes += mcp.call("horace_search_files", &args).await?;
        ms_mcp.push(t.elapsed());
    }
    figs.push(figure(
        NAMES[0],
        &mut ms_mcp,
        &mut ms_rust,
        format!(
            "{n} searches by owner (a page of 50 of ~{} matches, newest first: the document's \
             defaults) on {} files, alternating: `tools/call horace_search_files` over the \
             stdio of one `horace mcp` child (JSON-RPC line out, answer line back, mean {} \
             bytes) against `Client::search` with the same query on its own connection.",
            rows / OWNERS,
            count(rows),
            bytes / n.max(1)
        ),
    ));
    let (mut ms_mcp, mut ms_rust) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let id = 1 + rng.below(rows) as i64;
        let t = Instant::now();
        client.file_info(FileRef::Id(id)).await?;
        ms_rust.push(t.elapsed());
        let t = Instant::now();
        mcp.call("horace_get_file_info", &format!(r#"{{"file_id":"{id}"}}"#))
            .await?;
        ms_mcp.push(t.elapsed());
    }
    figs.push(figure(
        NAMES[1],
        &mut ms_mcp,
        &mut ms_rust,
        format!(
            "{n} file_info calls of random files, alternating: `horace_get_file_info` over \
             stdio against `Client::file_info`."
        ),
    ));
    drop(mcp.stdin);
    let _ = tokio::time::timeout(Duration::from_secs(10), mcp.child.wait()).await;
    w.stop()?;
    fs::remove_dir_all(&root).ok();
    Ok(())
}
