//! `horace check` (one line and the exit status of a Nagios/Icinga plugin: 0 OK,
//! 1 WARNING, 2 CRITICAL, 3 UNKNOWN) and `horace metrics` (the Prometheus text exposition
//! of the status figures), both from one `status` and one `snapshots` call.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use horace_client::{SnapshotEntry, StatusReport};

/// A plugin's verdict, in order of gravity (UNKNOWN last: it says nothing was learnt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Exit status 0.
    Ok = 0,
    /// Exit status 1.
    Warning = 1,
    /// Exit status 2.
    Critical = 2,
    /// Exit status 3: the watcher could not be asked.
    Unknown = 3,
}

impl Level {
    /// The word plugins print.
    pub fn word(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
            Level::Unknown => "UNKNOWN",
        }
    }
}

/// Thresholds of `horace check` (its flags).
#[derive(Debug, Clone, clap::Args)]
pub struct Thresholds {
    /// WARNING when this many events or paths wait to be cataloged.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub queue_warn: u64,
    /// CRITICAL when this many wait.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub queue_crit: u64,
    /// WARNING when the last event took this many seconds from seen to cataloged.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub lag_warn: f64,
    /// CRITICAL at this lag, seconds.
    #[arg(long, default_value_t = 600.0, value_name = "SECS")]
    pub lag_crit: f64,
    /// WARNING when this many paths keep failing to be cataloged.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub failures_warn: u64,
    /// CRITICAL when this many fail.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub failures_crit: u64,
    /// CRITICAL when this many store objects are damaged (0: only WARNING).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub damaged_crit: u64,
    /// WARNING when the newest snapshot of a label is older than this many of its
    /// intervals (hourly: 1 h, daily: 1 d, weekly: 7 d, monthly: 31 d).
    #[arg(long, default_value_t = 1.5, value_name = "INTERVALS")]
    pub snapshot_warn: f64,
    /// CRITICAL at this many intervals.
    #[arg(long, default_value_t = 3.0, value_name = "INTERVALS")]
    pub snapshot_crit: f64,
    /// WARNING when the last catalog backup is older than this many hours (0: not
    /// checked, e.g. with backup_interval = 0).
    #[arg(long, default_value_t = 48.0, value_name = "HOURS")]
    pub backup_warn: f64,
    /// CRITICAL at this age, hours.
    #[arg(long, default_value_t = 168.0, value_name = "HOURS")]
    pub backup_crit: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            queue_warn: 10_000,
            queue_crit: 100_000,
            lag_warn: 60.0,
            lag_crit: 600.0,
            failures_warn: 1,
            failures_crit: 100,
            damaged_crit: 1,
            snapshot_warn: 1.5,
            snapshot_crit: 3.0,
            backup_warn: 48.0,
            backup_crit: 168.0,
        }
    }
}

/// The interval of a snapshot label, seconds.
fn interval_of(label: &str) -> Option<i64> {
    Some(match label {
        "hourly" => 3_600,
        "daily" => 86_400,
        "weekly" => 7 * 86_400,
        "monthly" => 31 * 86_400,
        _ => return None,
    })
}

/// Nanoseconds in a second (the wire's times are nanoseconds; the check and the
/// Prometheus timestamps count seconds).
const NS_PER_SEC: i64 = 1_000_000_000;

/// The newest managed snapshot of each label: creation time, unix seconds.
fn newest_by_label(snaps: &[SnapshotEntry]) -> BTreeMap<String, i64> {
    let mut newest = BTreeMap::new();
    for s in snaps.iter().filter(|s| s.managed) {
        if let Some(label) = &s.label {
            let created = s.created_ns.div_euclid(NS_PER_SEC);
            let e = newest.entry(label.clone()).or_insert(created);
            *e = (*e).max(created);
        }
    }
    newest
}

/// "3h12m" for a number of seconds.
fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7_199 => format!("{}m", s / 60),
        7_200..=172_799 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The verdict on a status (and the snapshot list, when snapshots are enabled) at `now`
/// (unix seconds): the gravest level found and one line saying why, with Nagios
/// performance data after `|`.
pub fn verdict(
    r: &StatusReport,
    snaps: &[SnapshotEntry],
    now: i64,
    t: &Thresholds,
) -> (Level, String) {
    let mut level = Level::Ok;
    let mut why: Vec<String> = Vec::new();
    let mut note = |l: Level, s: String| {
        level = level.max(l);
        why.push(format!("{}: {s}", l.word()));
    };
    if !r.ready {
        note(Level::Warning, "startup scan still running".into());
    }
    if r.snapshots_enabled && !r.zfsd_reachable {
        let e = r.zfsd_error.as_deref().unwrap_or("no answer");
        note(Level::Critical, format!("zfsd unreachable ({e})"));
    }
    if r.damaged_objects > 0 {
        let l = if t.damaged_crit > 0 && r.damaged_objects >= t.damaged_crit {
            Level::Critical
        } else {
            Level::Warning
        };
        note(l, format!("{} store objects damaged", r.damaged_objects));
    }
    let fail = r.failures_total.max(r.failures.len() as u64);
    if fail >= t.failures_crit {
        note(Level::Critical, format!("{fail} paths failing"));
    } else if t.failures_warn > 0 && fail >= t.failures_warn {
        note(Level::Warning, format!("{fail} paths failing"));
    }
    if r.queue_depth >= t.queue_crit {
        note(Level::Critical, format!("queue {}", r.queue_depth));
    } else if r.queue_depth >= t.queue_warn {
        note(Level::Warning, format!("queue {}", r.queue_depth));
    }
    let lag = r.event_lag_us as f64 / 1e6;
    if lag >= t.lag_crit {
        note(Level::Critical, format!("event lag {lag:.0}s"));
    } else if lag >= t.lag_warn {
        note(Level::Warning, format!("event lag {lag:.0}s"));
    }
    if r.watch_failures > 0 {
        note(
            Level::Warning,
            format!("{} watches failed", r.watch_failures),
        );
    }
    if let Some(p) = &r.prune_refused {
        note(Level::Warning, format!("pruning refused ({p})"));
    }
    if r.snapshots_enabled {
        let newest = newest_by_label(snaps);
        if newest.is_empty() && r.zfsd_reachable {
            note(Level::Warning, "no Horace snapshot yet".into());
        }
        for (label, at) in &newest {
            let Some(every) = interval_of(label) else {
                continue;
            };
            let old = (now - at) as f64 / every as f64;
            let s = format!("newest {label} snapshot {} old", age(now - at));
            if old >= t.snapshot_crit {
                note(Level::Critical, s);
            } else if old >= t.snapshot_warn {
                note(Level::Warning, s);
            }
        }
    }
    if t.backup_warn > 0.0 {
        match r.last_backup_ns.map(|n| n.div_euclid(NS_PER_SEC)) {
            None => note(Level::Warning, "no catalog backup yet".into()),
            Some(b) => {
                let hours = (now - b) as f64 / 3600.0;
                let s = format!("last catalog backup {} old", age(now - b));
                if t.backup_crit > 0.0 && hours >= t.backup_crit {
                    note(Level::Critical, s);
                } else if hours >= t.backup_warn {
                    note(Level::Warning, s);
                }
            }
        }
    }
    let summary = if why.is_empty() {
        format!(
            "{} files, queue {}, lag {lag:.1}s",
            r.files_active, r.queue_depth
        )
    } else {
        why.join("; ")
    };
    let perf = format!(
        "files={} queue={};{};{} lag={lag:.3}s;{};{} failures={};{};{} damaged={} snapshots={}",
        r.files_active,
        r.queue_depth,
        t.queue_warn,
        t.queue_crit,
        t.lag_warn,
        t.lag_crit,
        fail,
        t.failures_warn,
        t.failures_crit,
        r.damaged_objects,
        r.snapshots,
    );
    (
        level,
        format!("HORACE {} - {summary} | {perf}", level.word()),
    )
}

/// The line of a watcher that could not be asked.
pub fn unknown(e: &anyhow::Error) -> String {
    format!("HORACE UNKNOWN - cannot ask the watcher: {}", one_line(e))
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

/// The Prometheus text exposition (format 0.0.4) of a status and the snapshot list;
/// `None` (the watcher did not answer) gives `horace_up 0` only.
pub fn exposition(r: Option<&StatusReport>, snaps: &[SnapshotEntry]) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
        let _ = writeln!(out, "# HELP horace_{name} {help}");
        let _ = writeln!(out, "# TYPE horace_{name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "horace_{name}{labels} {v}");
        }
    };
    let b = |x: bool| if x { 1.0 } else { 0.0 };
    metric(
        "up",
        "gauge",
        "Whether the watcher answered the status call.",
        &[("", b(r.is_some()))],
    );
    let Some(r) = r else { return out };
    let n = |x: u64| x as f64;
    metric(
        "ready",
        "gauge",
        "Whether the startup scan has finished.",
        &[("", b(r.ready))],
    );
    metric(
        "degraded",
        "gauge",
        "Whether the watcher is degraded (horace status exits 8).",
        &[("", b(!r.degradation().is_empty()))],
    );
    metric(
        "files",
        "gauge",
        "Cataloged files by status.",
        &[
            (r#"{status="active"}"#, n(r.files_active)),
            (r#"{status="archived"}"#, n(r.files_archived)),
            (r#"{status="deleted"}"#, n(r.files_deleted)),
        ],
    );
    metric(
        "versions",
        "gauge",
        "Versions cataloged in all.",
        &[("", n(r.versions))],
    );
    metric(
        "versions_stored",
        "gauge",
        "Versions whose content the store holds.",
        &[("", n(r.versions_stored))],
    );
    metric(
        "active_bytes",
        "gauge",
        "Sum of the current sizes of active files.",
        &[("", n(r.bytes_active))],
    );
    metric(
        "stored_bytes",
        "gauge",
        "Bytes held by the content store.",
        &[("", n(r.bytes_stored))],
    );
    metric(
        "collections",
        "gauge",
        "Collections.",
        &[("", n(r.collections))],
    );
    metric(
        "queue_depth",
        "gauge",
        "Events and paths waiting to be cataloged.",
        &[("", n(r.queue_depth))],
    );
    metric(
        "event_lag_seconds",
        "gauge",
        "Lag of the last processed event, seen to committed.",
        &[("", r.event_lag_us as f64 / 1e6)],
    );
    metric(
        "versions_cataloged_total",
        "counter",
        "Versions cataloged since the watcher started.",
        &[("", n(r.versions_cataloged))],
    );
    metric(
        "files_hashed_total",
        "counter",
        "Files hashed since the watcher started.",
        &[("", n(r.files_hashed))],
    );
    metric(
        "recrawls_total",
        "counter",
        "Reconcile scans forced by an overflow, failed watch, unmount or rollback.",
        &[("", n(r.recrawls))],
    );
    metric(
        "overflows_total",
        "counter",
        "inotify queue overflows.",
        &[("", n(r.overflows))],
    );
    metric(
        "watch_failures",
        "gauge",
        "Directories that could not be watched.",
        &[("", n(r.watch_failures))],
    );
    metric(
        "failing_paths",
        "gauge",
        "Paths whose cataloging keeps failing.",
        &[("", n(r.failures_total.max(r.failures.len() as u64)))],
    );
    metric(
        "damaged_objects",
        "gauge",
        "Store objects found damaged and not healed yet.",
        &[("", n(r.damaged_objects))],
    );
    metric(
        "snapshots_enabled",
        "gauge",
        "Whether snapshots are scheduled.",
        &[("", b(r.snapshots_enabled))],
    );
    metric(
        "zfsd_reachable",
        "gauge",
        "Whether horace-zfsd answered the last call.",
        &[("", b(r.zfsd_reachable))],
    );
    metric(
        "snapshots",
        "gauge",
        "Snapshots in the catalog's mirror.",
        &[("", n(r.snapshots))],
    );
    let newest = newest_by_label(snaps);
    let labels: Vec<(String, f64)> = newest
        .iter()
        .map(|(l, at)| (format!("{{label=\"{l}\"}}"), *at as f64))
        .collect();
    let samples: Vec<(&str, f64)> = labels.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    metric(
        "snapshot_newest_timestamp_seconds",
        "gauge",
        "Creation time of the newest Horace snapshot of each label.",
        &samples,
    );
    if let Some(t) = r.last_snapshot_ns {
        metric(
            "last_snapshot_timestamp_seconds",
            "gauge",
            "When the newest Horace snapshot was taken.",
            &[("", t as f64 / NS_PER_SEC as f64)],
        );
    }
    if let Some(t) = r.last_backup_ns.map(|n| n.div_euclid(NS_PER_SEC)) {
        metric(
            "last_backup_timestamp_seconds",
            "gauge",
            "When the last catalog backup was written.",
            &[("", t as f64)],
        );
    }
    if let Some(s) = &r.last_scan {
        metric(
            "last_scan_files_seen",
            "gauge",
            "Files the last reconcile scan looked at.",
            &[("", n(s.files_seen))],
        );
        if s.finished_ns > 0 {
            metric(
                "last_scan_duration_seconds",
                "gauge",
                "How long the last reconcile scan took.",
                &[("", (s.finished_ns - s.started_ns) as f64 / 1e9)],
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn healthy() -> StatusReport {
        StatusReport {
            ready: true,
            files_active: 12,
            snapshots_enabled: true,
            zfsd_reachable: true,
            last_backup_ns: Some((NOW - 3600) * NS_PER_SEC),
            ..Default::default()
        }
    }

    fn snap(label: &str, ago: i64) -> SnapshotEntry {
        SnapshotEntry {
            name: format!("tank/files@horace_x_{label}"),
            dataset: "tank/files".into(),
            created_ns: (NOW - ago) * NS_PER_SEC,
            used: 0,
            label: Some(label.into()),
            managed: true,
        }
    }

    fn level(r: &StatusReport, snaps: &[SnapshotEntry]) -> (Level, String) {
        verdict(r, snaps, NOW, &Thresholds::default())
    }

    #[test]
    fn healthy_is_ok_with_perfdata() {
        let (l, line) = level(&healthy(), &[snap("hourly", 600), snap("daily", 3600)]);
        assert_eq!(l, Level::Ok, "{line}");
        assert!(line.starts_with("HORACE OK - 12 files, queue 0"), "{line}");
        assert!(line.contains("| files=12 queue=0;10000;100000"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn each_problem_has_its_level() {
        let s = [snap("hourly", 600)];
        let mut r = healthy();
        r.zfsd_reachable = false;
        r.zfsd_error = Some("no bus".into());
        let (l, line) = level(&r, &s);
        assert_eq!(l, Level::Critical);
        assert!(
            line.contains("CRITICAL: zfsd unreachable (no bus)"),
            "{line}"
        );
        // zfsd does not matter with snapshots off.
        r.snapshots_enabled = false;
        assert_eq!(level(&r, &s).0, Level::Ok);

        let mut r = healthy();
        r.ready = false;
        assert_eq!(level(&r, &s).0, Level::Warning);

        let mut r = healthy();
        r.damaged_objects = 1;
        assert_eq!(level(&r, &s).0, Level::Critical);

        let mut r = healthy();
        r.failures_total = 3;
        assert_eq!(level(&r, &s).0, Level::Warning);
        r.failures_total = 100;
        assert_eq!(level(&r, &s).0, Level::Critical);

        let mut r = healthy();
        r.queue_depth = 10_000;
        assert_eq!(level(&r, &s).0, Level::Warning);
        r.queue_depth = 100_000;
        assert_eq!(level(&r, &s).0, Level::Critical);

        let mut r = healthy();
        r.event_lag_us = 61_000_000;
        assert_eq!(level(&r, &s).0, Level::Warning);

        let mut r = healthy();
        r.last_backup_ns = Some((NOW - 49 * 3600) * NS_PER_SEC);
        assert_eq!(level(&r, &s).0, Level::Warning);
        r.last_backup_ns = Some((NOW - 8 * 86_400) * NS_PER_SEC);
        assert_eq!(level(&r, &s).0, Level::Critical);
        r.last_backup_ns = None;
        assert_eq!(level(&r, &s).0, Level::Warning);
        let off = Thresholds {
            backup_warn: 0.0,
            ..Default::default()
        };
        assert_eq!(verdict(&r, &s, NOW, &off).0, Level::Ok);
    }

    #[test]
    fn snapshots_are_judged_against_their_label_interval() {
        let r = healthy();
        // An hourly snapshot 2 h old is 2 intervals: WARNING; a daily one 2 h old is fine.
        let (l, line) = level(&r, &[snap("hourly", 7200), snap("daily", 7200)]);
        assert_eq!(l, Level::Warning, "{line}");
        assert!(line.contains("newest hourly snapshot 2h00m old"), "{line}");
        assert_eq!(level(&r, &[snap("hourly", 4 * 3600)]).0, Level::Critical);
        // The newest of a label counts, not the oldest kept.
        assert_eq!(
            level(&r, &[snap("hourly", 30 * 3600), snap("hourly", 60)]).0,
            Level::Ok
        );
        assert_eq!(level(&r, &[]).0, Level::Warning, "no snapshot at all");
        // Unmanaged snapshots are not Horace's schedule.
        let mut other = snap("hourly", 9 * 3600);
        other.managed = false;
        assert_eq!(level(&r, &[other, snap("hourly", 60)]).0, Level::Ok);
    }

    #[test]
    fn the_gravest_level_wins() {
        let mut r = healthy();
        r.ready = false;
        r.damaged_objects = 2;
        let (l, line) = level(&r, &[snap("hourly", 60)]);
        assert_eq!(l, Level::Critical);
        assert!(
            line.starts_with("HORACE CRITICAL - WARNING: startup scan"),
            "{line}"
        );
        assert!(line.contains("CRITICAL: 2 store objects damaged"), "{line}");
    }

    #[test]
    fn exposition_is_prometheus_text() {
        let text = exposition(Some(&healthy()), &[snap("hourly", 60)]);
        assert!(
            text.contains("# TYPE horace_up gauge\nhorace_up 1\n"),
            "{text}"
        );
        assert!(
            text.contains("horace_files{status=\"active\"} 12\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE horace_versions_cataloged_total counter\n"));
        assert!(text.contains(&format!(
            "horace_snapshot_newest_timestamp_seconds{{label=\"hourly\"}} {}\n",
            NOW - 60
        )));
        for line in text.lines() {
            if line.starts_with('#') {
                assert!(line.starts_with("# HELP horace_") || line.starts_with("# TYPE horace_"));
            } else {
                let (name, value) = line.rsplit_once(' ').unwrap();
                assert!(name.starts_with("horace_"), "{line}");
                value.parse::<f64>().unwrap();
            }
        }
        assert_eq!(
            exposition(None, &[]),
            "# HELP horace_up Whether the watcher answered the status call.\n\
             # TYPE horace_up gauge\nhorace_up 0\n"
        );
    }
}
