//! `horace mcp`: the Model Context Protocol front of the query service (issue 15). The
//! seeds' seven `horace_*` tools and five of Horace's own, served with the official Rust
//! SDK (`rmcp`) over stdio or, with `--listen`, over Streamable HTTP at `/mcp`.
//!
//! Every tool call becomes calls through [`horace_client::Client`] on one connection to
//! the query service (reopened after it breaks), so the query service's rights apply: over
//! stdio, the uid this process runs as; over HTTP, additionally the bearer token's rights
//! (see [`http`]). A failed call is a tool result with `isError` naming Horace's error; an
//! unknown tool is a protocol error; nothing a client sends ends the server.

mod http;
mod preinit;

mod tools;
mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use horace_client::{Client, ClientError};
use rmcp::handler::server::common::{schema_for_input, schema_for_output};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock, Implementation, InitializeResult,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerInfo, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt as _};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use self::http::Access;
use self::tools::{Res, ToolError};
use self::wire::*;
use super::args::{Args, McpArgs};
use super::Endpoint;

/// The connection to the query service, shared by every session; opened on first use and
/// again after it fails.
struct Conn {
    endpoint: Endpoint,
    timeout: Duration,
    client: tokio::sync::Mutex<Option<Client>>,
}

/// One tool: its name, whether it writes, and what `tools/list` says of it.
struct ToolDef {
    write: bool,
    tool: Tool,
}

fn tool<P: JsonSchema + 'static, R: JsonSchema + 'static>(
    name: &'static str,
    write: bool,
    description: &'static str,
) -> ToolDef {
    let input = schema_for_input::<P>().unwrap_or_else(|e| panic!("{name} input schema: {e}"));
    let output = schema_for_output::<R>().unwrap_or_else(|e| panic!("{name} output schema: {e}"));
    let annotations = ToolAnnotations::from_raw(None, Some(!write), Some(false), None, Some(false));
    ToolDef {
        write,
        tool: Tool::new(name, format!("{description}{DIFFERS}"), input)
            .with_raw_output_schema(output)
            .annotate(annotations),
    }
}

const DIFFERS: &str = " Horace's file ids are its own integers, given and returned as decimal strings (or give the file's path instead).";

fn tool_defs() -> Vec<ToolDef> {
    vec![
        tool::<RegisterFileParams, RegisterFileResult>(
            "horace_register_file",
            true,
            "Register a file with the Horace catalog now (without waiting for the watcher to see it) and set its metadata. Idempotent: a file already cataloged keeps its file_id and gets the metadata. Errors: InvalidPath (outside the files root, or with ..), FileNotFound (not on disk), PermissionDenied.",
        ),
        tool::<SearchFilesParams, SearchFilesResult>(
            "horace_search_files",
            false,
            "Search the file catalog by metadata: tags (all must match), owner, creation time, MIME type or extension, size, collection, status (default active), plus path substring and checksum. Returns total_count and one page of results. Results carry no purpose or collection: horace_get_file_info has them.",
        ),
        tool::<GetFileInfoParams, FileInfoResult>(
            "horace_get_file_info",
            false,
            "Get detailed metadata for one file, with its version history if include_versions is true. Version paths are the file's path when the version was saved; old contents live in Horace's content store, not in .horace_versions. Errors: FileNotFound.",
        ),
        tool::<CreateCollectionParams, CreateCollectionResult>(
            "horace_create_collection",
            true,
            "Create a file collection, or update it if it exists, and add the given files to it in the same call (if a file cannot be added, a collection this call created is removed again). An existing collection keeps its description; metadata is accepted but not stored. Errors: FileNotFound, PermissionDenied.",
        ),
        tool::<ListCollectionsParams, ListCollectionsResult>(
            "horace_list_collections",
            false,
            "List collections by name, with their file counts.",
        ),
        tool::<UpdateFileParams, UpdateFileResult>(
            "horace_update_file",
            true,
            "Update a file's metadata (tags become exactly the given list; purpose; status; add to a collection, created if missing) and, with check_for_changes, re-read the file and catalog a new version if it changed. Horace never moves or removes files: status archived only hides the file from default searches, deleted only marks it (history kept). Errors: FileNotFound, InvalidArgument (active for a file not on disk), PermissionDenied.",
        ),
        tool::<RestoreVersionParams, RestoreVersionResult>(
            "horace_restore_version",
            true,
            "Restore a file to a previous version: the version's content is written back over the file and cataloged as a new version (the state before the restore is already a version, so nothing is lost). Errors: FileNotFound, VersionNotFound, ContentPruned (content gone from the store; snapshots named), RestoreFailed, PermissionDenied.",
        ),
        tool::<FileParams, ListVersionsResult>(
            "horace_list_versions",
            false,
            "List a file's versions, oldest first, with checksum, size, time, and whether Horace can still restore each. Errors: FileNotFound.",
        ),
        tool::<FindDuplicatesParams, FindDuplicatesResult>(
            "horace_find_duplicates",
            false,
            "List groups of active files with identical content, most wasted bytes first.",
        ),
        tool::<NoParams, ListSnapshotsResult>(
            "horace_list_snapshots",
            false,
            "List the ZFS snapshots of the files dataset, oldest first. Errors: ZfsdUnreachable.",
        ),
        tool::<NoParams, StatusResult>(
            "horace_get_status",
            false,
            "Health and size figures of the Horace watcher and its catalog; degraded lists what is wrong.",
        ),
        tool::<NoParams, SyncResult>(
            "horace_sync",
            false,
            "Wait until everything written to the files tree before this call is cataloged (a barrier: call it after writing a file, then search for it). synced is false with the reasons when something is still not cataloged (e.g. a file still open for writing).",
        ),
    ]
}

/// The MCP server: one per session, sharing the connection to the query service.
#[derive(Clone)]
pub struct Server {
    conn: Arc<Conn>,
    tools: Arc<Vec<ToolDef>>,
    paths: Paths,
}

impl Server {
    fn new(conn: Arc<Conn>, prefix: &str) -> Self {
        Self {
            conn,
            tools: Arc::new(tool_defs()),
            paths: Paths::new(prefix),
        }
    }

    /// The query-service client, connecting if there is none.
    async fn client(&self) -> Result<Client, ClientError> {
        let mut c = self.conn.client.lock().await;
        if let Some(c) = &*c {
            return Ok(c.clone());
        }
        let new = self
            .conn
            .endpoint
            .connect()
            .await?
            .with_timeout(self.conn.timeout);
        *c = Some(new.clone());
        Ok(new)
    }

    /// Forgets a connection that failed, so the next call opens a new one.
    async fn reset(&self) {
        *self.conn.client.lock().await = None;
    }

    /// One call with the client.
    async fn call<T, F, Fut>(&self, f: F) -> Res<T>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        Ok(f(self.client().await?).await?)
    }

    async fn run<P, R, F, Fut>(&self, args: serde_json::Value, f: F) -> CallToolResult
    where
        P: DeserializeOwned,
        R: Serialize,
        F: FnOnce(P) -> Fut,
        Fut: Future<Output = Res<R>>,
    {
        let r = match serde_json::from_value::<P>(args) {
            Ok(p) => f(p).await,
            Err(e) => Err(ToolError::invalid(format!("arguments: {e}"))),
        };
        match r.and_then(|v| {
            serde_json::to_value(v).map_err(|e| ToolError {
                name: "InternalError",
                message: e.to_string(),
            })
        }) {
            Ok(v) => CallToolResult::structured(v),
            Err(e) => {
                if e.name == "Unavailable" {
                    self.reset().await;
                }
                tracing::debug!(error = e.name, message = %e.message, "tool call failed");
                CallToolResult::error(vec![ContentBlock::text(format!(
                    "{}: {}",
                    e.name, e.message
                ))])
            }
        }
    }

    async fn dispatch(
        &self,
        name: &str,
        args: serde_json::Value,
    ) -> Result<CallToolResult, McpError> {
        Ok(match name {
            "horace_register_file" => self.run(args, |p| self.register_file(p)).await,
            "horace_search_files" => self.run(args, |p| self.search_files(p)).await,
            "horace_get_file_info" => self.run(args, |p| self.get_file_info(p)).await,
            "horace_create_collection" => self.run(args, |p| self.create_collection(p)).await,
            "horace_list_collections" => self.run(args, |p| self.list_collections(p)).await,
            "horace_update_file" => self.run(args, |p| self.update_file(p)).await,
            "horace_restore_version" => self.run(args, |p| self.restore_version(p)).await,
            "horace_list_versions" => self.run(args, |p| self.list_versions(p)).await,
            "horace_find_duplicates" => self.run(args, |p| self.find_duplicates(p)).await,
            "horace_list_snapshots" => self.run(args, |p| self.list_snapshots(p)).await,
            "horace_get_status" => self.run(args, |p| self.get_status(p)).await,
            "horace_sync" => self.run(args, |p| self.sync(p)).await,
            _ => {
                return Err(McpError::invalid_params(
                    format!("unknown tool {name:?} (tools/list names the tools)"),
                    None,
                ))
            }
        })
    }
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerInfo {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("horace", env!("CARGO_PKG_VERSION")).with_title("Horace"),
            )
            .with_instructions(
                "Horace catalogs every version of the files in its files tree. Find files with \
                 horace_search_files, inspect one with horace_get_file_info, restore an old \
                 version with horace_restore_version; after writing a file, call horace_sync \
                 before searching for it. file_id is Horace's integer id as a string, or a path.",
            )
    }

    async fn list_tools(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(
            self.tools.iter().map(|t| t.tool.clone()).collect(),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools
            .iter()
            .find(|t| t.tool.name == name)
            .map(|t| t.tool.clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let name = request.name.as_ref();
        let Some(def) = self.tools.iter().find(|t| t.tool.name == name) else {
            return Err(McpError::invalid_params(
                format!("unknown tool {name:?} (tools/list names the tools)"),
                None,
            ));
        };
        if def.write && http::access(&context) == Access::Read {
            return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                "PermissionDenied: {name} writes, and this bearer token has read rights only \
                 (ask the operator for a token with rights = \"write\")"
            ))]));
        }
        let args = serde_json::Value::Object(request.arguments.unwrap_or_default());
        self.dispatch(name, args).await
    }
}

/// Runs `horace mcp` until stdin closes (stdio) or SIGTERM/SIGINT (HTTP).
pub async fn run(args: &Args, m: &McpArgs) -> anyhow::Result<()> {
    let conn = Arc::new(Conn {
        endpoint: Endpoint::from_args(args)?,
        timeout: Duration::from_secs_f64(args.timeout),
        client: tokio::sync::Mutex::new(None),
    });
    let server = Server::new(conn, &m.container_prefix);
    // Connect now so that a wrong socket is reported at start, not at the first call.
    server.client().await?;
    match &m.listen {
        Some(addr) => http::serve(server, addr, m).await,
        None => {
            use tokio::io::AsyncReadExt as _;
            let (stdin, mut stdout) = rmcp::transport::stdio();
            let mut stdin = tokio::io::BufReader::new(stdin);
            let Some(first) = preinit::answer_probes(&mut stdin, &mut stdout).await? else {
                return Ok(());
            };
            let input = std::io::Cursor::new(first).chain(stdin);
            let service = server
                .serve((input, stdout))
                .await
                .context("failed to start the MCP session")?;
            service.waiting().await.context("MCP session failed")?;
            Ok(())
        }
    }
}
