//! The snapshot schedule and retention policy as pure functions of the snapshot list and
//! the time: what to create and what to destroy *now*.
//!
//! [`plan`] is what a dry run shows and what a real tick executes unchanged. Decisions come
//! from the snapshots' creation times (from ZFS, never from their names) and UTC periods
//! (hour, day, ISO week, month), so a DST change or a restart cannot cause a duplicate; a
//! label is due once per period, so downtime gives one catch-up snapshot per label and
//! never a backfill; a clock behind the newest snapshot suspends pruning.

use chrono::{DateTime, Datelike};
use horace_zfsd::api::{parse_managed, SnapshotInfo};

use crate::config::SnapshotsConfig;

/// Where "now" comes from; injectable so the schedule can be tested over simulated months.
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp()
    }
}

/// A schedule label; each has its own count to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Label {
    /// Once per UTC hour.
    Hourly,
    /// Once per UTC day.
    Daily,
    /// Once per ISO week (Monday to Sunday, UTC).
    Weekly,
    /// Once per UTC calendar month.
    Monthly,
}

impl Label {
    /// Every label, in the order snapshots are created within one tick.
    pub const ALL: [Label; 4] = [Label::Hourly, Label::Daily, Label::Weekly, Label::Monthly];

    /// The label as it appears in snapshot names.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Hourly => "hourly",
            Label::Daily => "daily",
            Label::Weekly => "weekly",
            Label::Monthly => "monthly",
        }
    }

    /// The label a snapshot name carries, if it is one of the schedule's.
    pub fn parse(s: &str) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// Index of the UTC period (of this label's length) that contains unix time `t`.
    pub fn period(self, t: i64) -> i64 {
        let day = t.div_euclid(86_400);
        match self {
            Label::Hourly => t.div_euclid(3600),
            Label::Daily => day,
            // 1970-01-01 was a Thursday: shift so weeks start on Monday (ISO).
            Label::Weekly => (day + 3).div_euclid(7),
            Label::Monthly => DateTime::from_timestamp(t, 0)
                .map(|d| i64::from(d.year()) * 12 + i64::from(d.month0()))
                .unwrap_or(i64::MAX),
        }
    }
}

/// How many snapshots of each label to keep, and the length of an hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Counts to keep, indexed like [`Label::ALL`]; 0 turns a label off.
    pub keep: [u32; 4],
    /// Seconds in a schedule hour: 3600, except under the test knob
    /// `snapshots.test_hour_seconds`, which makes every period proportionally shorter.
    pub hour_seconds: i64,
}

/// An arbitrary fixed origin for scaled (test) time, so scaled dates stay plausible.
const SCALE_ORIGIN: i64 = 1_700_000_000;

impl Policy {
    /// The policy the configuration asks for.
    pub fn from_config(c: &SnapshotsConfig) -> Self {
        Self {
            keep: [c.hourly, c.daily, c.weekly, c.monthly],
            hour_seconds: c.test_hour_seconds.map_or(3600, |s| i64::from(s.max(1))),
        }
    }

    /// How many snapshots of `label` to keep.
    pub fn keep(&self, label: Label) -> u32 {
        self.keep[label as usize]
    }

    /// Unix time as the calendar sees it: identity for real hours, stretched under the
    /// test knob so an "hour" lasts `hour_seconds`.
    pub fn calendar_time(&self, t: i64) -> i64 {
        if self.hour_seconds == 3600 {
            t
        } else {
            SCALE_ORIGIN + ((t - SCALE_ORIGIN) * 3600).div_euclid(self.hour_seconds)
        }
    }

    /// Whether `a` and `b` fall in the same period of `label`.
    fn same_period(&self, label: Label, a: i64, b: i64) -> bool {
        label.period(self.calendar_time(a)) == label.period(self.calendar_time(b))
    }
}

/// What a tick does now: the dry-run answer and the real run's instructions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// The time the plan is for (unix seconds).
    pub now: i64,
    /// Labels to snapshot, in this order.
    pub create: Vec<Label>,
    /// Full names to destroy in one batch, oldest first (only if every create succeeded).
    pub destroy: Vec<String>,
    /// Why pruning is suspended (the clock is behind the newest snapshot), if it is.
    pub prune_refused: Option<String>,
}

/// A `horace_` snapshot of the managed dataset with a schedule label.
struct Managed<'a> {
    name: &'a str,
    creation: i64,
    label: Label,
}

/// The managed snapshots of `dataset` among `snaps` (others are never touched).
fn managed<'a>(dataset: &str, snaps: &'a [SnapshotInfo]) -> Vec<Managed<'a>> {
    snaps
        .iter()
        .filter_map(|s| {
            let (ds, snap) = s.name.split_once('@')?;
            if ds != dataset {
                return None;
            }
            let (_, label) = parse_managed(snap)?;
            Some(Managed {
                name: &s.name,
                creation: i64::try_from(s.creation).ok()?,
                label: Label::parse(label)?,
            })
        })
        .collect()
}

/// Decides what to create and destroy at `now`, given `dataset`'s snapshots `snaps` (as
/// zfsd lists them).
///
/// A label is due when it has a count and none of its snapshots was created (by ZFS's
/// creation time) in `now`'s period. While the clock is right that is "its newest snapshot
/// is from an earlier period"; with the clock set back, snapshots are still taken once per
/// period (never two in one), and pruning waits. Pruning counts the snapshots about to be created: per
/// label the newest `keep` (by creation, then name) stay; the newest existing managed
/// snapshot and the new ones always stay; foreign and unlabelled snapshots are never
/// considered. If `now` is before the newest snapshot's creation, nothing is destroyed and
/// `prune_refused` says why.
pub fn plan(policy: &Policy, dataset: &str, snaps: &[SnapshotInfo], now: i64) -> Plan {
    let managed = managed(dataset, snaps);
    let create: Vec<Label> = Label::ALL
        .into_iter()
        .filter(|&label| policy.keep(label) > 0)
        .filter(|&label| {
            !managed
                .iter()
                .any(|m| m.label == label && policy.same_period(label, m.creation, now))
        })
        .collect();

    let newest_any = snaps
        .iter()
        .filter(|s| s.name.split_once('@').is_some_and(|(ds, _)| ds == dataset))
        .max_by_key(|s| (s.creation, &s.name));
    if let Some(n) = newest_any.filter(|n| i64::try_from(n.creation).map_or(true, |c| now < c)) {
        let why = format!(
            "the clock ({now}) is {} s behind the newest snapshot {} (created {}); \
             pruning is suspended until the clock passes it (check NTP)",
            i64::try_from(n.creation)
                .unwrap_or(i64::MAX)
                .saturating_sub(now),
            n.name,
            n.creation
        );
        return Plan {
            now,
            create,
            destroy: Vec::new(),
            prune_refused: Some(why),
        };
    }

    let newest_existing = managed.iter().map(|m| (m.creation, m.name)).max();
    let mut destroy: Vec<(i64, &str)> = Vec::new();
    for label in Label::ALL {
        let mut of_label: Vec<(i64, &str)> = managed
            .iter()
            .filter(|m| m.label == label)
            .map(|m| (m.creation, m.name))
            .collect();
        of_label.sort_unstable_by(|a, b| b.cmp(a));
        // The snapshot about to be taken counts towards the label's keep.
        let new_ones = usize::from(create.contains(&label));
        let keep = (policy.keep(label) as usize).saturating_sub(new_ones);
        destroy.extend(
            of_label
                .into_iter()
                .skip(keep)
                .filter(|s| Some(*s) != newest_existing),
        );
    }
    destroy.sort_unstable();
    Plan {
        now,
        create,
        destroy: destroy.into_iter().map(|(_, n)| n.to_string()).collect(),
        prune_refused: None,
    }
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
