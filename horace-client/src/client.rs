//! The typed async client: connects over the Unix socket (rights from the caller's uid) or
//! over TCP with a bearer token, and gives every call a deadline.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tarpc::client::RpcError;
use tarpc::context;
use tarpc::tokio_serde::formats::Bincode;
use tokio::net::{TcpStream, UnixStream};

use crate::error::{ClientError, QueryError};
use crate::protocol::*;
use crate::wire;

/// Default path of the query socket.
pub const DEFAULT_SOCKET: &str = "/run/horace/query.sock";
/// Environment variable that overrides [`DEFAULT_SOCKET`].
pub const SOCKET_ENV: &str = "HORACE_SOCKET";
/// Default deadline of one call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The socket to use when none is given: `$HORACE_SOCKET`, else [`DEFAULT_SOCKET`].
pub fn default_socket() -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// A connection to the query service. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    inner: HoraceClient,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn rpc_error(e: RpcError, timeout: Duration) -> ClientError {
    match e {
        RpcError::DeadlineExceeded => ClientError::DeadlineExceeded(timeout),
        e => {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                source = s.source();
            }
            ClientError::Transport(msg)
        }
    }
}

/// Refuses locally a request that the server would refuse by closing the connection:
/// the encoded arguments plus room for the envelope must fit [`wire::MAX_REQUEST_FRAME`].
fn check_size<T: serde::Serialize>(args: &T) -> Result<(), ClientError> {
    use tarpc::tokio_serde::Serializer;
    const ENVELOPE: usize = 1024;
    let limit = wire::MAX_REQUEST_FRAME - ENVELOPE;
    let mut codec = std::pin::pin!(Bincode::<(), T>::default());
    let len = codec
        .as_mut()
        .serialize(args)
        .map_err(|e| ClientError::Transport(format!("cannot encode the request: {e}")))?
        .len();
    if len > limit {
        return Err(ClientError::Query(QueryError::TooLarge {
            what: format!("request of {len} bytes"),
            limit: limit as u64,
        }));
    }
    Ok(())
}

macro_rules! call {
    ($self:ident . $method:ident ( $($arg:ident),* )) => {{
        check_size(&($(&$arg,)*))?;
        let mut ctx = context::current();
        let deadline = Instant::now() + $self.timeout;
        ctx.deadline = deadline;
        // The server drops a request past its deadline; the client also stops waiting then.
        let call = $self.inner.$method(ctx, $($arg),*);
        match tokio::time::timeout_at(deadline.into(), call).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(ClientError::Query(e)),
            Ok(Err(e)) => Err(rpc_error(e, $self.timeout)),
            Err(_) => Err(ClientError::DeadlineExceeded($self.timeout)),
        }
    }};
}

impl Client {
    /// Connects to the query service's Unix socket.
    pub async fn connect_unix(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                addr: path.display().to_string(),
                source,
            })?;
        Ok(Self::over(stream))
    }

    /// Connects over TCP and presents `token`; a refused token is
    /// [`ClientError::Unauthenticated`].
    pub async fn connect_tcp(addr: &str, token: &str) -> Result<Self, ClientError> {
        let connect_err = |source| ClientError::Connect {
            addr: addr.to_string(),
            source,
        };
        let mut stream = TcpStream::connect(addr).await.map_err(connect_err)?;
        let _ = stream.set_nodelay(true);
        match tokio::time::timeout(DEFAULT_TIMEOUT, wire::client_handshake(&mut stream, token))
            .await
        {
            Ok(Ok(true)) => Ok(Self::over(stream)),
            Ok(Ok(false)) => Err(ClientError::Unauthenticated),
            Ok(Err(e)) => Err(connect_err(e)),
            Err(_) => Err(ClientError::DeadlineExceeded(DEFAULT_TIMEOUT)),
        }
    }

    fn over<S>(stream: S) -> Self
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    {
        let transport = tarpc::serde_transport::new(wire::framed(stream), Bincode::default());
        let inner = HoraceClient::new(tarpc::client::Config::default(), transport).spawn();
        Self {
            inner,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the deadline of each call (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The deadline of each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// See [`Horace::search`].
    pub async fn search(&self, q: SearchQuery) -> Result<SearchResult, ClientError> {
        call!(self.search(q))
    }

    /// See [`Horace::file_info`].
    pub async fn file_info(&self, f: FileRef) -> Result<FileInfo, ClientError> {
        call!(self.file_info(f))
    }

    /// See [`Horace::versions`].
    pub async fn versions(&self, f: FileRef) -> Result<Vec<VersionInfo>, ClientError> {
        call!(self.versions(f))
    }

    /// See [`Horace::restore_version`].
    pub async fn restore_version(
        &self,
        f: FileRef,
        version: i64,
    ) -> Result<RestoreResult, ClientError> {
        call!(self.restore_version(f, version))
    }

    /// See [`Horace::update_file`].
    pub async fn update_file(&self, f: FileRef, u: FileUpdate) -> Result<FileInfo, ClientError> {
        call!(self.update_file(f, u))
    }

    /// See [`Horace::register_file`].
    pub async fn register_file(
        &self,
        path: impl Into<String>,
        u: FileUpdate,
    ) -> Result<FileInfo, ClientError> {
        let path = path.into();
        call!(self.register_file(path, u))
    }

    /// See [`Horace::collection_create`].
    pub async fn collection_create(
        &self,
        name: impl Into<String>,
        description: Option<String>,
    ) -> Result<CollectionInfo, ClientError> {
        let name = name.into();
        call!(self.collection_create(name, description))
    }

    /// See [`Horace::collection_list`].
    pub async fn collection_list(&self) -> Result<Vec<CollectionInfo>, ClientError> {
        call!(self.collection_list())
    }

    /// See [`Horace::collection_members`].
    pub async fn collection_members(
        &self,
        name: impl Into<String>,
        limit: Option<u32>,
        offset: u64,
    ) -> Result<SearchResult, ClientError> {
        let name = name.into();
        call!(self.collection_members(name, limit, offset))
    }

    /// See [`Horace::collection_add`].
    pub async fn collection_add(
        &self,
        name: impl Into<String>,
        files: Vec<FileRef>,
    ) -> Result<u64, ClientError> {
        let name = name.into();
        call!(self.collection_add(name, files))
    }

    /// See [`Horace::collection_remove`].
    pub async fn collection_remove(
        &self,
        name: impl Into<String>,
        files: Vec<FileRef>,
    ) -> Result<u64, ClientError> {
        let name = name.into();
        call!(self.collection_remove(name, files))
    }

    /// See [`Horace::collection_delete`].
    pub async fn collection_delete(&self, name: impl Into<String>) -> Result<(), ClientError> {
        let name = name.into();
        call!(self.collection_delete(name))
    }

    /// See [`Horace::duplicates`].
    pub async fn duplicates(&self, q: DuplicatesQuery) -> Result<DuplicatesResult, ClientError> {
        call!(self.duplicates(q))
    }

    /// See [`Horace::snapshots`].
    pub async fn snapshots(&self) -> Result<Vec<SnapshotEntry>, ClientError> {
        call!(self.snapshots())
    }

    /// See [`Horace::snapshot_plan`].
    pub async fn snapshot_plan(&self) -> Result<SnapshotPlan, ClientError> {
        call!(self.snapshot_plan())
    }

    /// See [`Horace::status`].
    pub async fn status(&self) -> Result<StatusReport, ClientError> {
        call!(self.status())
    }

    /// See [`Horace::sync`].
    pub async fn sync(&self) -> Result<SyncReport, ClientError> {
        call!(self.sync())
    }
}
