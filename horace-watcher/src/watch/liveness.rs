//! systemd's watchdog, pinged only while the watcher works: `WATCHDOG=1` is sent when both
//! the watch loop and the catalog writer made progress since the last ping, or are idle
//! by choice (issue 16 item 4). A loop or writer thread that hangs is then restarted by
//! systemd (`WatchdogSec=` in the unit), where a timer of its own would keep pinging.
//!
//! Progress is seen two ways, so that long work counts as well as idleness:
//! - a probe: the loop is sent a sync cookie of its own (no file), which it answers once
//!   it has taken every message before it and committed it through the writer; the writer
//!   is sent an empty job. An idle loop or writer answers within a tick.
//! - work figures: bytes hashed and files probed for cataloging ([`note_work`]), versions
//!   cataloged, and, while a reconcile scan runs, the writer's jobs (the scan commits every
//!   few thousand files). A loop busy for minutes with one big file or one big scan keeps
//!   moving these without answering its probe.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::cookie::{PendingSync, Syncs};
use super::{Msg, Op};
use crate::Context;

/// Work done for cataloging: bytes hashed, files probed, directories listed.
static WORK: AtomicU64 = AtomicU64::new(0);

/// Counts work done for cataloging (bytes hashed, a file probed, a directory listed): the
/// watchdog sees the loop working although it is too busy to answer its probe.
pub(crate) fn note_work(n: u64) {
    WORK.fetch_add(n, Ordering::Relaxed);
}

/// What one look at the loop and the writer found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Look {
    /// The loop answered its probe since the last look.
    pub loop_answered: bool,
    /// A figure that moves while the loop works.
    pub loop_work: u64,
    /// The writer ran its probe job since the last look.
    pub writer_answered: bool,
    /// A figure that moves while the writer works (jobs run).
    pub writer_work: u64,
}

/// Decides at each look whether to ping: only when both the loop and the writer made
/// progress since the last ping.
#[derive(Debug)]
pub(crate) struct Gate {
    /// The work figures at the last ping (or at the start).
    at_ping: (u64, u64),
    loop_moved: bool,
    writer_moved: bool,
}

impl Gate {
    /// A gate whose figures start at `first` (no ping is owed yet).
    pub fn new(first: Look) -> Self {
        Self {
            at_ping: (first.loop_work, first.writer_work),
            loop_moved: first.loop_answered,
            writer_moved: first.writer_answered,
        }
    }

    /// Takes one look; returns whether to send `WATCHDOG=1` now.
    pub fn look(&mut self, l: Look) -> bool {
        self.loop_moved |= l.loop_answered || l.loop_work != self.at_ping.0;
        self.writer_moved |= l.writer_answered || l.writer_work != self.at_ping.1;
        if !(self.loop_moved && self.writer_moved) {
            return false;
        }
        self.at_ping = (l.loop_work, l.writer_work);
        self.loop_moved = false;
        self.writer_moved = false;
        true
    }
}

/// Where looks come from: the live loop and writer, or a test's script.
pub(crate) trait Probes {
    /// Looks at the loop and the writer (and sends new probes where the last were
    /// answered).
    fn look(&mut self) -> Look;
}

/// The probes of a running watcher.
pub(super) struct Live {
    pub ctx: Arc<Context>,
    pub tx: Sender<Msg>,
    pub cookies: Arc<Syncs>,
    /// Set while scanning: odd (see `reader::ListingWindow`).
    pub scan_epoch: Arc<AtomicU64>,
    pub loop_probe: Option<oneshot::Receiver<horace_client::SyncReport>>,
    pub writer_probe: Option<oneshot::Receiver<()>>,
}

impl Live {
    fn send_loop_probe(&mut self) {
        let (tx, rx) = oneshot::channel();
        let n = {
            let mut map = self.cookies.lock().unwrap_or_else(|e| e.into_inner());
            let mut n = crate::random_u64().unwrap_or(0) | 1 << 63;
            while map.contains_key(&n) {
                n = n.wrapping_add(1) | 1 << 63;
            }
            map.insert(
                n,
                PendingSync {
                    tx,
                    open: Vec::new(),
                },
            );
            n
        };
        // Counted like the reader's events: the loop takes it off queue_depth.
        self.ctx.status.queue_depth.fetch_add(1, Ordering::Relaxed);
        if self
            .tx
            .send(Msg::Events(vec![Op::Cookie(n)], Instant::now()))
            .is_ok()
        {
            self.loop_probe = Some(rx);
        } else {
            self.ctx.status.queue_depth.fetch_sub(1, Ordering::Relaxed);
            self.cookies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&n);
        }
    }
}

/// Whether a probe was answered; a probe dropped unanswered (the loop cleared its syncs)
/// is sent again.
fn answered<T>(probe: &mut Option<oneshot::Receiver<T>>) -> bool {
    let Some(rx) = probe.as_mut() else {
        return false;
    };
    match rx.try_recv() {
        Ok(_) => {
            *probe = None;
            true
        }
        Err(oneshot::error::TryRecvError::Empty) => false,
        Err(oneshot::error::TryRecvError::Closed) => {
            *probe = None;
            false
        }
    }
}

impl Probes for Live {
    fn look(&mut self) -> Look {
        let loop_answered = answered(&mut self.loop_probe);
        if self.loop_probe.is_none() {
            self.send_loop_probe();
        }
        let writer_answered = answered(&mut self.writer_probe);
        if self.writer_probe.is_none() {
            self.writer_probe = self.ctx.writer.probe().ok();
        }
        let st = &self.ctx.status;
        let writer_work = self.ctx.writer.generation();
        let scanning = self.scan_epoch.load(Ordering::Relaxed) % 2 == 1;
        let loop_work = WORK
            .load(Ordering::Relaxed)
            .wrapping_add(st.versions_cataloged.load(Ordering::Relaxed))
            .wrapping_add(if scanning { writer_work } else { 0 });
        Look {
            loop_answered,
            loop_work,
            writer_answered,
            writer_work,
        }
    }
}

/// Pings systemd's watchdog while `probes` show progress, looking four times per
/// interval (no-op unless `WATCHDOG_USEC` is set for this process).
pub(super) async fn run(probes: impl Probes, cancel: tokio_util::sync::CancellationToken) {
    let Some(usec) = watchdog_usec() else { return };
    let every = Duration::from_micros(usec / 4).max(Duration::from_millis(10));
    pace(probes, every, cancel, || {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
    })
    .await
}

/// The loop of [`run`]: a look every `every`, `ping` when the gate opens.
async fn pace(
    mut probes: impl Probes,
    every: Duration,
    cancel: tokio_util::sync::CancellationToken,
    mut ping: impl FnMut(),
) {
    let mut gate = Gate::new(probes.look());
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut quiet_since = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = cancel.cancelled() => return,
        }
        if gate.look(probes.look()) {
            ping();
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= every * 3 {
            tracing::warn!(
                quiet_secs = quiet_since.elapsed().as_secs(),
                "watchdog not pinged: the watch loop or the catalog writer made no progress"
            );
            quiet_since = Instant::now();
        }
    }
}

/// The watchdog interval, as `sd_watchdog_enabled(3)` reads it: `WATCHDOG_USEC`, and
/// `WATCHDOG_PID`, when set, must be this process.
fn watchdog_usec() -> Option<u64> {
    let usec: u64 = std::env::var("WATCHDOG_USEC")
        .ok()?
        .parse()
        .ok()
        .filter(|u| *u > 0)?;
    match std::env::var("WATCHDOG_PID") {
        Ok(pid) if pid.parse::<u32>().ok() != Some(std::process::id()) => None,
        _ => Some(usec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn look(loop_answered: bool, loop_work: u64, writer_answered: bool, writer_work: u64) -> Look {
        Look {
            loop_answered,
            loop_work,
            writer_answered,
            writer_work,
        }
    }

    #[test]
    fn pings_only_when_both_made_progress_since_the_last_ping() {
        let mut g = Gate::new(look(false, 0, false, 0));
        // Idle by choice: both answer their probes.
        assert!(g.look(look(true, 0, true, 0)));
        // Nothing answered, nothing moved: stuck.
        assert!(!g.look(look(false, 0, false, 0)));
        // The loop hashes a big file (work moves, no answer), the writer idles.
        assert!(g.look(look(false, 4096, true, 0)));
        // The loop hangs while the writer answers: no ping, however long.
        for _ in 0..5 {
            assert!(!g.look(look(false, 4096, true, 0)));
        }
        // The writer hangs while the loop answers: no ping either.
        let mut g = Gate::new(look(false, 0, false, 0));
        for _ in 0..5 {
            assert!(!g.look(look(true, 0, false, 0)));
        }
        // Progress seen at different looks adds up until the ping.
        let mut g = Gate::new(look(false, 0, false, 0));
        assert!(!g.look(look(true, 0, false, 0)));
        assert!(g.look(look(false, 0, false, 7)));
        // …and is spent by it.
        assert!(!g.look(look(false, 0, false, 7)));
    }

    /// Looks from a script; then, when it runs out, nothing moves any more. Counts looks.
    struct Script(VecDeque<Look>, Look, Arc<AtomicU64>);

    impl Probes for Script {
        fn look(&mut self) -> Look {
            self.2.fetch_add(1, Ordering::Relaxed);
            let next = self.0.pop_front();
            if let Some(l) = next {
                self.1 = l;
            }
            Look {
                loop_answered: next.is_some_and(|l| l.loop_answered),
                writer_answered: next.is_some_and(|l| l.writer_answered),
                ..self.1
            }
        }
    }

    #[tokio::test]
    async fn pings_stop_when_progress_stops() {
        let idle = look(true, 0, true, 0);
        let looks = Arc::new(AtomicU64::new(0));
        let pings = Arc::new(AtomicU64::new(0));
        let cancel = tokio_util::sync::CancellationToken::new();
        let p = pings.clone();
        let task = tokio::spawn(pace(
            Script(
                VecDeque::from(vec![idle; 6]),
                Look::default(),
                looks.clone(),
            ),
            Duration::from_millis(5),
            cancel.clone(),
            move || {
                p.fetch_add(1, Ordering::Relaxed);
            },
        ));
        // The first look is the baseline: five more answered looks give five pings; then
        // the probes go unanswered and the pings stop, however many looks follow.
        while looks.load(Ordering::Relaxed) < 20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(pings.load(Ordering::Relaxed), 5);
        cancel.cancel();
        task.await.unwrap();
    }
}
