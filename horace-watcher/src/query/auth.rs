//! Who is calling and what they may do.
//!
//! Unix socket: the kernel's peer credentials (SO_PEERCRED) decide. Any peer may read;
//! root, the watcher's own uid, and the uids and (primary) gids listed in `query.writers`
//! may also write (restore, update metadata, register, change collections).
//! What a peer sees of the tree is its [`Sight`] (see `sight`): everything for root, the
//! watcher's uid, writers and `query.readers`, else what its uid could list and read.
//! TCP: the peer must present the bearer token from `query.token_file` (see
//! `horace_client::wire`) and may only read — a token proves knowledge of a secret, not
//! an identity, so writes stay with local peers whose uid the kernel vouches for.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;

use super::sight::{Sight, Viewer};
use crate::config::{parse_writer, QueryConfig, Visibility, Writer};

/// A connected caller.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Where it connected from.
    pub kind: PeerKind,
    /// Whether it may write.
    pub writer: bool,
    /// What it may see.
    pub sight: Sight,
}

/// How a caller connected.
#[derive(Debug, Clone)]
pub enum PeerKind {
    /// Over the Unix socket, with the kernel's credentials.
    Unix {
        /// The peer's uid.
        uid: u32,
        /// The peer's primary gid.
        gid: u32,
        /// The peer's pid, when known.
        pid: Option<i32>,
    },
    /// Over TCP, with a valid token.
    Tcp(SocketAddr),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            PeerKind::Unix { uid, gid, pid } => {
                write!(f, "unix uid={uid} gid={gid}")?;
                if let Some(p) = pid {
                    write!(f, " pid={p}")?;
                }
                Ok(())
            }
            PeerKind::Tcp(a) => write!(f, "tcp {a}"),
        }
    }
}

fn listed(list: &[Writer], uid: u32, gid: u32) -> bool {
    list.iter().any(|w| match *w {
        Writer::Uid(u) => u == uid,
        Writer::Gid(g) => g == gid,
    })
}

/// The rights in force (`query.writers`, `query.readers`, `query.visibility`), parsed once.
#[derive(Debug, Clone)]
pub struct Rights {
    writers: Vec<Writer>,
    readers: Vec<Writer>,
    visibility: Visibility,
    own_uid: u32,
}

impl Rights {
    /// Parses the `[query]` rights (already checked by the config).
    pub fn new(q: &QueryConfig) -> Self {
        let parse = |l: &[String]| l.iter().filter_map(|e| parse_writer(e)).collect();
        Self {
            writers: parse(&q.writers),
            readers: parse(&q.readers),
            visibility: q.visibility,
            own_uid: rustix::process::geteuid().as_raw(),
        }
    }

    /// Whether a local peer with these credentials may write.
    pub fn allows(&self, uid: u32, gid: u32) -> bool {
        uid == 0 || uid == self.own_uid || listed(&self.writers, uid, gid)
    }

    /// What a local peer with these credentials sees.
    pub fn sight(&self, uid: u32, gid: u32) -> Sight {
        if self.visibility == Visibility::Everyone
            || self.allows(uid, gid)
            || listed(&self.readers, uid, gid)
        {
            Sight::Everything
        } else {
            Sight::Permissions(Viewer::local(uid, gid))
        }
    }

    /// What a TCP peer (a token, no uid) sees.
    pub fn tcp_sight(&self) -> Sight {
        match self.visibility {
            Visibility::Everyone => Sight::Everything,
            Visibility::Permissions => Sight::Permissions(Viewer::anyone()),
        }
    }

    /// The peer of a Unix connection.
    pub fn unix_peer(&self, stream: &tokio::net::UnixStream) -> std::io::Result<Peer> {
        let cred = stream.peer_cred()?;
        let (uid, gid) = (cred.uid(), cred.gid());
        Ok(Peer {
            kind: PeerKind::Unix {
                uid,
                gid,
                pid: cred.pid(),
            },
            writer: self.allows(uid, gid),
            sight: self.sight(uid, gid),
        })
    }
}

/// Reads the bearer token: the file's content without surrounding whitespace, which must
/// not be empty.
pub fn load_token(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read(path)
        .with_context(|| format!("failed to read query.token_file {}", path.display()))?;
    let token = text.trim_ascii().to_vec();
    anyhow::ensure!(
        !token.is_empty(),
        "query.token_file {} is empty: put a long random token in it",
        path.display()
    );
    anyhow::ensure!(
        token.len() <= horace_client::wire::MAX_TOKEN_LEN,
        "query.token_file {} holds more than 4096 bytes",
        path.display()
    );
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_by_uid_gid_root_and_self() {
        let w = Rights::new(&QueryConfig {
            writers: vec!["uid:1000".into(), "gid:50".into(), "7".into()],
            readers: vec!["uid:2000".into()],
            ..Default::default()
        });
        assert!(w.allows(1000, 1));
        assert!(w.allows(7, 1));
        assert!(w.allows(123, 50));
        assert!(w.allows(0, 0));
        assert!(w.allows(w.own_uid, 12345));
        let other = if w.own_uid == 65534 { 65533 } else { 65534 };
        assert!(!w.allows(other, 65534));
        assert_eq!(w.sight(2000, 1), Sight::Everything);
        assert_eq!(w.sight(1000, 1), Sight::Everything);
        assert!(matches!(w.sight(other, 65534), Sight::Permissions(_)));
        assert!(matches!(w.tcp_sight(), Sight::Permissions(_)));
    }

    #[test]
    fn token_file_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, " \n").unwrap();
        assert!(load_token(&p).is_err());
        std::fs::write(&p, "s3cret\n").unwrap();
        assert_eq!(load_token(&p).unwrap(), b"s3cret");
        assert!(load_token(&dir.path().join("missing")).is_err());
    }
}
