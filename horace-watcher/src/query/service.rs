//! The request handlers: one [`QueryService`] per connection, carrying the peer's rights.
//!
//! Each handler validates its input, runs reads on the catalog's read-only connections (one
//! read transaction each; on the blocking pool, or for a point lookup on the async worker
//! within a strict budget — see `reads`; cataloging never waits for a query) and writes
//! through the one writer, and answers; a failure is logged and answered, never fatal to
//! the daemon.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use horace_client::*;
use rusqlite::Connection;
use tarpc::context;

use super::auth::Peer;
use super::paths::normalize;
use super::search::Built;
use super::sight::{self, Seer, Sight, Viewer};
use super::sql::{resolve, Res, Target};
use super::{collections, files, plan, reads, report, search};
use crate::store::{self, RestoreError};
use crate::watch::{WatchError, WatchHandle};
use crate::Context;

/// Longest a request may run on the server, whatever deadline the client asked for.
pub const MAX_REQUEST_TIME: Duration = Duration::from_secs(120);
/// Most files one collection add/remove may name.
pub const MAX_BATCH: usize = 1000;

/// Most catalog reads running at once, over all connections: a flood of queries waits here
/// instead of filling the blocking thread pool the watcher also hashes on.
pub const MAX_CONCURRENT_READS: usize = 8;
static READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_READS);

/// The handlers of one connection.
#[derive(Clone)]
pub struct QueryService {
    ctx: Arc<Context>,
    watch: WatchHandle,
    peer: Arc<Peer>,
}

fn internal(e: impl std::fmt::Display) -> QueryError {
    QueryError::Internal {
        message: e.to_string(),
    }
}

impl QueryService {
    /// Handlers for a connection from `peer`.
    pub fn new(ctx: Arc<Context>, watch: WatchHandle, peer: Peer) -> Self {
        Self {
            ctx,
            watch,
            peer: Arc::new(peer),
        }
    }

    /// The peer's credentials, unless it sees everything.
    fn viewer(&self) -> Option<Viewer> {
        match &self.peer.sight {
            Sight::Everything => None,
            Sight::Permissions(v) => Some(v.clone()),
        }
    }

    /// Runs a compiled search as the peer sees it; `check` runs first in the same read
    /// transaction (e.g. that a collection exists).
    async fn search_as_peer(
        &self,
        built: Built,
        check: impl FnOnce(&Connection) -> Res<()> + Send + 'static,
    ) -> Result<SearchResult, QueryError> {
        let Some(viewer) = self.viewer() else {
            return self
                .read(move |c| {
                    check(c)?;
                    search::run(c, &built)
                })
                .await;
        };
        let (root, watch) = (self.ctx.config.files_root.clone(), self.watch.clone());
        self.read(move |c| {
            check(c)?;
            let mut seer = Seer::new(&root, viewer);
            let hidden = sight::hidden_for(&mut seer, watch.watched_generation(), || {
                watch.watched_dirs()
            });
            sight::search(c, built, &hidden, &mut seer)
        })
        .await
    }

    fn target(&self, f: &FileRef) -> Result<Target, QueryError> {
        match f {
            FileRef::Id(id) => Ok(Target::Id(*id)),
            FileRef::Path(p) => self.path(p).map(Target::Path),
        }
    }

    fn path(&self, p: &str) -> Result<String, QueryError> {
        let c = &self.ctx.config;
        normalize(p, &[c.container_prefix.as_path(), c.files_root.as_path()])
    }

    fn require_writer(&self, action: &str) -> Result<(), QueryError> {
        if self.peer.writer {
            Ok(())
        } else {
            tracing::warn!(peer = %self.peer, action, "refused: not a writer");
            Err(QueryError::PermissionDenied {
                action: action.to_string(),
            })
        }
    }

    /// Runs `f` in one read transaction on a pooled read-only connection, on the blocking
    /// pool (cataloging never waits for a query, and a long search never holds an async
    /// worker).
    async fn read<T, F>(&self, f: F) -> Result<T, QueryError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Res<T> + Send + 'static,
    {
        let _permit = READS.acquire().await.map_err(internal)?;
        self.ctx
            .readers
            .with(move |c| reads::in_snapshot(c, f))
            .await
            .map_err(internal)?
            .map_err(|e| e.into_query())
    }

    /// Like [`QueryService::read`], for a read that is a few indexed lookups (file_info,
    /// versions): it runs on this worker within [`reads::INLINE_BUDGET`], and only when cut
    /// off there goes to the blocking pool.
    async fn read_point<T, F>(&self, f: F) -> Result<T, QueryError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Res<T> + Clone + Send + 'static,
    {
        let permit = READS.acquire().await.map_err(internal)?;
        let g = f.clone();
        match self
            .ctx
            .readers
            .with_blocking(move |c| reads::try_inline(c, g))
        {
            Ok(Some(r)) => r.map_err(|e| e.into_query()),
            Ok(None) | Err(_) => {
                drop(permit);
                self.read(f).await
            }
        }
    }

    async fn write<T, F>(&self, f: F) -> Result<T, QueryError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Res<T> + Send + 'static,
    {
        self.ctx
            .writer
            .exec(f)
            .await
            .map_err(internal)?
            .map_err(|e| e.into_query())
    }

    /// Runs one handler under the server's time cap and logs its outcome.
    ///
    /// The handler's future is boxed: the future tarpc moves around (into the request's
    /// task and back) is the size of the largest method's: 11.9 KB without the box, 3.4 KB
    /// with it, copied several times for every call however small the call.
    fn handle<'a, T: 'a>(
        &'a self,
        method: &'static str,
        fut: impl Future<Output = Result<T, QueryError>> + 'a,
    ) -> impl Future<Output = Result<T, QueryError>> + 'a {
        let fut = Box::pin(fut);
        async move { self.logged(method, fut).await }
    }

    async fn logged<T>(
        &self,
        method: &'static str,
        fut: impl Future<Output = Result<T, QueryError>>,
    ) -> Result<T, QueryError> {
        let started = std::time::Instant::now();
        let r = match tokio::time::timeout(MAX_REQUEST_TIME, fut).await {
            Ok(r) => r,
            Err(_) => Err(QueryError::Busy {
                message: format!("{method} took longer than {MAX_REQUEST_TIME:?}"),
            }),
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match &r {
            Ok(_) => tracing::debug!(peer = %self.peer, method, ms, "answered"),
            Err(e @ QueryError::Internal { .. }) => {
                tracing::error!(peer = %self.peer, method, ms, error = %e, "failed")
            }
            Err(e) => tracing::info!(peer = %self.peer, method, ms, error = %e, "refused"),
        }
        r
    }

    async fn apply(&self, target: Target, u: FileUpdate) -> Result<FileInfo, QueryError> {
        files::check_update(&u)?;
        let root: PathBuf = self.ctx.config.files_root.clone();
        self.write(move |c| {
            let id = files::apply_update(c, &target, &u, &root)?;
            files::info(c, id)
        })
        .await
    }
}

fn watch_error(e: WatchError) -> QueryError {
    match e {
        WatchError::Stopped => QueryError::Busy {
            message: "the watcher is shutting down".into(),
        },
        WatchError::SyncTimeout => QueryError::Busy {
            message: "the sync barrier timed out".into(),
        },
        e @ WatchError::Catalog { .. } => QueryError::InvalidArgument {
            message: e.to_string(),
        },
        e @ WatchError::Barrier(_) => QueryError::Internal {
            message: e.to_string(),
        },
    }
}

fn on_disk(root: &Path, rel: &str) -> Result<PathBuf, QueryError> {
    let rel_path =
        crate::path::unescape(rel).ok_or_else(|| internal("unescape of a normalized path"))?;
    match std::fs::symlink_metadata(root.join(&rel_path)) {
        Ok(m) if m.is_file() => Ok(rel_path),
        Ok(_) => Err(QueryError::InvalidArgument {
            message: format!("{rel:?} is not a regular file"),
        }),
        Err(_) => Err(QueryError::NotFound {
            what: format!("file {rel:?} on disk"),
        }),
    }
}

impl Horace for QueryService {
    async fn search(self, _: context::Context, q: SearchQuery) -> Result<SearchResult, QueryError> {
        self.handle("search", async {
            let built = search::build(&q)?;
            self.search_as_peer(built, |_| Ok(())).await
        })
        .await
    }

    async fn file_info(self, _: context::Context, f: FileRef) -> Result<FileInfo, QueryError> {
        self.handle("file_info", async {
            let t = self.target(&f)?;
            let Some(viewer) = self.viewer() else {
                return self.read_point(move |c| files::info_of(c, &t)).await;
            };
            let root = self.ctx.config.files_root.clone();
            self.read_point(move |c| {
                let info = files::info_of(c, &t)?;
                sight::file_info(info, &t, &mut Seer::new(&root, viewer.clone()))
            })
            .await
        })
        .await
    }

    async fn versions(
        self,
        _: context::Context,
        f: FileRef,
    ) -> Result<Vec<VersionInfo>, QueryError> {
        self.handle("versions", async {
            let t = self.target(&f)?;
            let Some(viewer) = self.viewer() else {
                return self
                    .read_point(move |c| files::versions(c, resolve(c, &t)?))
                    .await;
            };
            let root = self.ctx.config.files_root.clone();
            self.read_point(move |c| {
                let id = resolve(c, &t)?;
                let path: String =
                    c.query_row("SELECT path FROM files WHERE id = ?1", [id], |r| r.get(0))?;
                let list = files::versions(c, id)?;
                sight::versions(list, &path, &t, &mut Seer::new(&root, viewer.clone()))
            })
            .await
        })
        .await
    }

    async fn restore_version(
        self,
        _: context::Context,
        f: FileRef,
        version: i64,
    ) -> Result<RestoreResult, QueryError> {
        self.handle("restore_version", async {
            self.require_writer("restore")?;
            let t = self.target(&f)?;
            let id = self
                .read(move |c| {
                    let id = resolve(c, &t)?;
                    let exists: bool = c.query_row(
                        "SELECT EXISTS (SELECT 1 FROM versions WHERE file_id = ?1 AND version = ?2)",
                        [id, version],
                        |r| r.get(0),
                    )?;
                    if !exists {
                        return Err(QueryError::NotFound { what: format!("version {version} of file #{id}") }.into());
                    }
                    Ok(id)
                })
                .await?;
            match store::restore_version(&self.ctx, &self.watch, id, version).await {
                Ok(o) => Ok(RestoreResult { file_id: o.file_id, restored_from: version, new_version: o.new_version }),
                Err(RestoreError::NotFound { file_id, version }) => {
                    Err(QueryError::NotFound { what: format!("version {version} of file #{file_id}") })
                }
                Err(RestoreError::ContentPruned { version, snapshots }) => Err(QueryError::ContentPruned { version, snapshots }),
                Err(RestoreError::Write { path, kind, message }) => {
                    Err(QueryError::RestoreFailed { path, kind, message })
                }
                Err(e @ RestoreError::Io(_)) => Err(internal(e)),
            }
        })
        .await
    }

    async fn update_file(
        self,
        _: context::Context,
        f: FileRef,
        u: FileUpdate,
    ) -> Result<FileInfo, QueryError> {
        self.handle("update_file", async {
            self.require_writer("update metadata")?;
            let t = self.target(&f)?;
            self.apply(t, u).await
        })
        .await
    }

    async fn register_file(
        self,
        _: context::Context,
        path: String,
        u: FileUpdate,
    ) -> Result<FileInfo, QueryError> {
        self.handle("register_file", async {
            self.require_writer("register")?;
            let rel = self.path(&path)?;
            files::check_update(&u)?;
            let rel_path = on_disk(&self.ctx.config.files_root, &rel)?;
            let id = self.watch.register(rel_path).await.map_err(watch_error)?;
            self.apply(Target::Id(id), u).await
        })
        .await
    }

    async fn collection_create(
        self,
        _: context::Context,
        name: String,
        description: Option<String>,
    ) -> Result<CollectionInfo, QueryError> {
        self.handle("collection_create", async {
            self.require_writer("create a collection")?;
            files::check_name(&name)?;
            if description
                .as_ref()
                .is_some_and(|d| d.len() > files::MAX_FIELD_LEN)
            {
                return Err(QueryError::TooLarge {
                    what: "description".into(),
                    limit: files::MAX_FIELD_LEN as u64,
                });
            }
            self.write(move |c| collections::create(c, &name, description.as_deref()))
                .await
        })
        .await
    }

    async fn collection_list(self, _: context::Context) -> Result<Vec<CollectionInfo>, QueryError> {
        self.handle("collection_list", self.read(collections::list))
            .await
    }

    async fn collection_members(
        self,
        _: context::Context,
        name: String,
        limit: Option<u32>,
        offset: u64,
    ) -> Result<SearchResult, QueryError> {
        self.handle("collection_members", async {
            let q = SearchQuery {
                collection: Some(name.clone()),
                statuses: vec![
                    FileStatus::Active,
                    FileStatus::Archived,
                    FileStatus::Deleted,
                ],
                limit,
                offset,
                ..Default::default()
            };
            let built = search::build(&q)?;
            self.search_as_peer(built, move |c| collections::get(c, &name).map(drop))
                .await
        })
        .await
    }

    async fn collection_add(
        self,
        _: context::Context,
        name: String,
        f: Vec<FileRef>,
    ) -> Result<u64, QueryError> {
        self.collection_change("collection_add", name, f, true)
            .await
    }

    async fn collection_remove(
        self,
        _: context::Context,
        name: String,
        f: Vec<FileRef>,
    ) -> Result<u64, QueryError> {
        self.collection_change("collection_remove", name, f, false)
            .await
    }

    async fn collection_delete(self, _: context::Context, name: String) -> Result<(), QueryError> {
        self.handle("collection_delete", async {
            self.require_writer("delete a collection")?;
            self.write(move |c| collections::delete(c, &name)).await
        })
        .await
    }

    async fn duplicates(
        self,
        _: context::Context,
        q: DuplicatesQuery,
    ) -> Result<DuplicatesResult, QueryError> {
        self.handle("duplicates", async {
            search::page_limit(q.limit)?;
            let Some(viewer) = self.viewer() else {
                return self.read(move |c| report::duplicates(c, &q)).await;
            };
            let root = self.ctx.config.files_root.clone();
            self.read(move |c| sight::duplicates(c, &q, &mut Seer::new(&root, viewer)))
                .await
        })
        .await
    }

    async fn snapshots(self, _: context::Context) -> Result<Vec<SnapshotEntry>, QueryError> {
        self.handle("snapshots", self.read(report::snapshots)).await
    }

    async fn status(self, _: context::Context) -> Result<StatusReport, QueryError> {
        self.handle("status", async {
            // The catalog totals scan the whole catalog: reused while right (status.rs).
            let generation = self.ctx.writer.generation();
            let mut r = match self.ctx.status.fresh_catalog_figures(generation) {
                Some(r) => r,
                None => {
                    let at = std::time::Instant::now();
                    let figures = self
                        .read(|c| {
                            let mut r = StatusReport::default();
                            report::catalog_figures(c, &mut r)?;
                            Ok(r)
                        })
                        .await?;
                    self.ctx
                        .status
                        .keep_catalog_figures(crate::status::CatalogFigures {
                            generation,
                            at,
                            took: at.elapsed(),
                            figures: figures.clone(),
                        });
                    figures
                }
            };
            report::live_figures(&self.ctx.status, self.ctx.config.snapshots.enabled, &mut r);
            r.collection_held =
                crate::snapshots::backup::collection_held(&self.ctx.config.metadata_dir);
            r.damaged_objects = crate::store::Objects::open_existing(&self.ctx.config.metadata_dir)
                .damaged()
                .len() as u64;
            Ok(r)
        })
        .await
    }

    async fn snapshot_plan(self, _: context::Context) -> Result<SnapshotPlan, QueryError> {
        self.handle("snapshot_plan", plan::snapshot_plan(&self.ctx))
            .await
    }

    async fn sync(self, _: context::Context) -> Result<SyncReport, QueryError> {
        self.handle("sync", async {
            self.watch.sync().await.map_err(watch_error)
        })
        .await
    }
}

impl QueryService {
    async fn collection_change(
        self,
        method: &'static str,
        name: String,
        f: Vec<FileRef>,
        add: bool,
    ) -> Result<u64, QueryError> {
        self.handle(method, async {
            self.require_writer("change a collection")?;
            files::check_name(&name)?;
            if f.len() > MAX_BATCH {
                return Err(QueryError::TooLarge {
                    what: "file list".into(),
                    limit: MAX_BATCH as u64,
                });
            }
            let targets = f
                .iter()
                .map(|f| self.target(f))
                .collect::<Result<Vec<_>, _>>()?;
            self.write(move |c| collections::change(c, &name, &targets, add))
                .await
        })
        .await
    }
}
