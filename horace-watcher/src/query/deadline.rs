//! A connection's own deadlines (issue 12 item 5): a connection with no request in flight
//! and none arriving for `[query] idle_timeout` is closed, and so is one whose request frame
//! began and has not been completed within `[query] frame_timeout` (a client that trickles a
//! request in, or stops half-way, holds its slot no longer than that).
//!
//! The frame boundaries come from the connection's [`FrameLimit`](horace_client::wire::FrameLimit)
//! through a shared [`FrameProgress`]; the requests in flight are counted by the serving loop.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use horace_client::wire::FrameProgress;

/// Why a connection was closed by its deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// Nothing in flight and nothing arriving for the idle timeout.
    Idle(Duration),
    /// A request frame not completed within the frame timeout.
    SlowFrame(Duration),
}

impl std::fmt::Display for Expired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Idle(d) => write!(f, "idle for {}s", d.as_secs()),
            Self::SlowFrame(d) => write!(f, "request frame not completed within {}s", d.as_secs()),
        }
    }
}

/// The limits one connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub idle: Option<Duration>,
    pub frame: Option<Duration>,
}

/// What the serving loop and the frame reader report of one connection.
#[derive(Debug, Default)]
pub struct Activity {
    pub frames: Arc<FrameProgress>,
    in_flight: AtomicUsize,
}

/// Counts one request in flight while it lives.
pub struct InFlight(Arc<Activity>);

impl Activity {
    /// Marks a request in flight until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// The first deadline this connection has passed, if any.
    pub fn expired(&self, d: Deadlines) -> Option<Expired> {
        if let (Some(limit), Some(partial)) = (d.frame, self.frames.partial_for()) {
            if partial >= limit {
                return Some(Expired::SlowFrame(limit));
            }
        }
        let busy =
            self.in_flight.load(Ordering::Relaxed) > 0 || self.frames.partial_for().is_some();
        match d.idle {
            Some(limit) if !busy && self.frames.quiet_for() >= limit => Some(Expired::Idle(limit)),
            _ => None,
        }
    }

    /// Resolves when a deadline passes (never when neither is set).
    pub async fn watch(&self, d: Deadlines) -> Expired {
        let Some(tick) = [d.idle, d.frame].into_iter().flatten().min() else {
            return std::future::pending().await;
        };
        // Checked a few times per limit: a deadline is kept within a quarter of itself.
        let tick = (tick / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            if let Some(e) = self.expired(d) {
                return e;
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        // An answer is activity: the idle time counts from the end of the last request.
        self.0.frames.touch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use horace_client::wire::FrameLimit;
    use tokio::io::AsyncWriteExt;

    fn deadlines(ms: u64) -> Deadlines {
        Deadlines {
            idle: Some(Duration::from_millis(ms)),
            frame: Some(Duration::from_millis(ms)),
        }
    }

    #[tokio::test]
    async fn an_idle_connection_expires_but_not_one_with_a_request_in_flight() {
        let a = Arc::new(Activity::default());
        let guard = a.begin();
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(a.expired(deadlines(100)), None, "a request is in flight");
        drop(guard);
        assert_eq!(a.expired(deadlines(100)), None, "the answer just went out");
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(
            a.expired(deadlines(100)),
            Some(Expired::Idle(Duration::from_millis(100)))
        );
        assert_eq!(
            a.expired(Deadlines {
                idle: None,
                frame: None
            }),
            None
        );
    }

    #[tokio::test]
    async fn a_frame_that_stops_half_way_expires() {
        use tokio::io::AsyncReadExt;
        let a = Arc::new(Activity::default());
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = FrameLimit::new(server, 1024).observed(a.frames.clone());
        client.write_all(&[0, 0, 0, 8, 1, 2]).await.unwrap();
        let mut buf = [0u8; 64];
        let n = reader.read(&mut buf).await.unwrap();
        assert_eq!(n, 6);
        assert_eq!(a.expired(deadlines(100)), None);
        let expired = tokio::time::timeout(Duration::from_secs(2), a.watch(deadlines(100))).await;
        assert_eq!(expired, Ok(Expired::SlowFrame(Duration::from_millis(100))));
    }
}
