//! The answer of a full server: a connection that gets no slot is not just closed (the
//! client would see "connection already shutdown" and guess), it is served for a moment by
//! [`Refuse`], which answers every call with [`QueryError::TooManyConnections`], and then
//! closed. Refusals are bounded too ([`MAX_REFUSING`] at once, each for at most
//! [`REFUSE_FOR`]); past that a new connection is closed at once.

use std::time::Duration;

use futures::StreamExt;
use horace_client::*;
use tarpc::context;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tokio::io::{AsyncRead, AsyncWrite};

/// Most connections being refused at once.
pub const MAX_REFUSING: usize = 64;
/// How long a refused connection is answered before it is closed.
pub const REFUSE_FOR: Duration = Duration::from_secs(2);
static REFUSING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_REFUSING);

/// Answers every call with one error.
#[derive(Clone)]
struct Refuse(QueryError);

/// Answers the calls that come on `stream` within [`REFUSE_FOR`] with `TooManyConnections`
/// for `scope` (whose budget is `limit`), then closes it; closes it at once when
/// [`MAX_REFUSING`] are being refused already.
pub fn spawn<S>(stream: S, scope: String, limit: usize)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Ok(permit) = REFUSING.try_acquire() else {
        return;
    };
    let refuse = Refuse(QueryError::TooManyConnections {
        scope,
        limit: limit as u64,
    });
    tokio::spawn(async move {
        let _permit = permit;
        let limited = wire::FrameLimit::new(stream, wire::MAX_REQUEST_FRAME);
        let transport = tarpc::serde_transport::new(wire::framed(limited), Bincode::default());
        let requests = BaseChannel::with_defaults(transport)
            .max_concurrent_requests(4)
            .execute(refuse.serve())
            .for_each_concurrent(None, |r| r);
        let _ = tokio::time::timeout(REFUSE_FOR, requests).await;
    });
}

impl Refuse {
    fn no<T>(&self) -> Result<T, QueryError> {
        Err(self.0.clone())
    }
}

impl Horace for Refuse {
    async fn search(self, _: context::Context, _: SearchQuery) -> Result<SearchResult, QueryError> {
        self.no()
    }
    async fn file_info(self, _: context::Context, _: FileRef) -> Result<FileInfo, QueryError> {
        self.no()
    }
    async fn versions(
        self,
        _: context::Context,
        _: FileRef,
    ) -> Result<Vec<VersionInfo>, QueryError> {
        self.no()
    }
    async fn restore_version(
        self,
        _: context::Context,
        _: FileRef,
        _: i64,
    ) -> Result<RestoreResult, QueryError> {
        self.no()
    }
    async fn update_file(
        self,
        _: context::Context,
        _: FileRef,
        _: FileUpdate,
    ) -> Result<FileInfo, QueryError> {
        self.no()
    }
    async fn register_file(
        self,
        _: context::Context,
        _: String,
        _: FileUpdate,
    ) -> Result<FileInfo, QueryError> {
        self.no()
    }
    async fn collection_create(
        self,
        _: context::Context,
        _: String,
        _: Option<String>,
    ) -> Result<CollectionInfo, QueryError> {
        self.no()
    }
    async fn collection_list(self, _: context::Context) -> Result<Vec<CollectionInfo>, QueryError> {
        self.no()
    }
    async fn collection_members(
        self,
        _: context::Context,
        _: String,
        _: Option<u32>,
        _: u64,
    ) -> Result<SearchResult, QueryError> {
        self.no()
    }
    async fn collection_add(
        self,
        _: context::Context,
        _: String,
        _: Vec<FileRef>,
    ) -> Result<u64, QueryError> {
        self.no()
    }
    async fn collection_remove(
        self,
        _: context::Context,
        _: String,
        _: Vec<FileRef>,
    ) -> Result<u64, QueryError> {
        self.no()
    }
    async fn collection_delete(self, _: context::Context, _: String) -> Result<(), QueryError> {
        self.no()
    }
    async fn duplicates(
        self,
        _: context::Context,
        _: DuplicatesQuery,
    ) -> Result<DuplicatesResult, QueryError> {
        self.no()
    }
    async fn snapshots(self, _: context::Context) -> Result<Vec<SnapshotEntry>, QueryError> {
        self.no()
    }
    async fn status(self, _: context::Context) -> Result<StatusReport, QueryError> {
        self.no()
    }
    async fn sync(self, _: context::Context) -> Result<SyncReport, QueryError> {
        self.no()
    }
    async fn snapshot_plan(self, _: context::Context) -> Result<SnapshotPlan, QueryError> {
        self.no()
    }
}
