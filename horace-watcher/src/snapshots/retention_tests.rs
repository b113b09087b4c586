//! Retention over simulated months: an in-memory ZFS with zfsd's rules, driven by the same
//! tick code the scheduler runs, with the clock under the test's control.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use chrono::{TimeZone, Utc};
use horace_zfsd::api::{snapshot_name, SnapshotInfo, SNAPSHOT_PREFIX};

use super::*;
use crate::snapshots::tick::{tick, SnapshotOps, TickOutcome};

const DS: &str = "tank/files";

/// zfsd over an in-memory snapshot list: names from the clock, creation = the clock,
/// destroys only of existing `horace_` snapshots (one bad name: none), in order, stopping
/// at a pinned one (as zfs stops at a snapshot with a dependent clone).
#[derive(Default)]
struct SimZfs {
    snaps: Mutex<Vec<SnapshotInfo>>,
    now: Mutex<i64>,
    fail_create: Mutex<bool>,
    destroyed: Mutex<Vec<String>>,
    pinned: Mutex<BTreeSet<String>>,
}

impl SimZfs {
    fn set_now(&self, t: i64) {
        *self.now.lock().unwrap() = t;
    }
    fn add(&self, name: &str, creation: i64) {
        self.snaps.lock().unwrap().push(SnapshotInfo {
            name: name.into(),
            creation: creation as u64,
            used: 0,
        });
    }
    fn all(&self) -> Vec<SnapshotInfo> {
        let mut v = self.snaps.lock().unwrap().clone();
        v.sort_by(|a, b| (a.creation, &a.name).cmp(&(b.creation, &b.name)));
        v
    }
    fn of_label(&self, label: Label) -> Vec<SnapshotInfo> {
        let suffix = format!("_{}", label.as_str());
        self.all()
            .into_iter()
            .filter(|s| {
                s.name.starts_with(&format!("{DS}@{SNAPSHOT_PREFIX}")) && s.name.ends_with(&suffix)
            })
            .collect()
    }
}

impl SnapshotOps for SimZfs {
    async fn list(&self, dataset: &str) -> Result<Vec<SnapshotInfo>, String> {
        Ok(self
            .all()
            .into_iter()
            .filter(|s| s.name.starts_with(&format!("{dataset}@")))
            .collect())
    }
    async fn create(&self, dataset: &str, label: &str) -> Result<String, String> {
        if *self.fail_create.lock().unwrap() {
            return Err("zfs failed".into());
        }
        let now = *self.now.lock().unwrap();
        let name = format!(
            "{dataset}@{}",
            snapshot_name(label, UNIX_EPOCH + Duration::from_secs(now as u64))
        );
        if self.snaps.lock().unwrap().iter().any(|s| s.name == name) {
            return Err(format!("{name}: dataset already exists"));
        }
        self.add(&name, now);
        Ok(name)
    }
    async fn destroy(&self, dataset: &str, names: &[String]) -> Result<Vec<String>, String> {
        let mut snaps = self.snaps.lock().unwrap();
        for n in names {
            let ok = n
                .strip_prefix(&format!("{dataset}@"))
                .is_some_and(|s| s.starts_with(SNAPSHOT_PREFIX));
            if !ok || !snaps.iter().any(|s| &s.name == n) {
                return Err(format!("refusing {n}"));
            }
        }
        let mut done = Vec::new();
        for n in names {
            if self.pinned.lock().unwrap().contains(n) {
                return Err(format!(
                    "destroying {n}: snapshot has dependent clones; already destroyed: {done:?}"
                ));
            }
            snaps.retain(|s| &s.name != n);
            self.destroyed.lock().unwrap().push(n.clone());
            done.push(n.clone());
        }
        Ok(done)
    }
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .unwrap()
        .timestamp()
}

fn policy(keep: [u32; 4]) -> Policy {
    Policy {
        keep,
        hour_seconds: 3600,
    }
}

/// One tick at `now`, checking that the dry-run plan taken just before equals what the
/// run did and that the run kept every promise.
fn step(sim: &SimZfs, p: &Policy, now: i64) -> TickOutcome {
    sim.set_now(now);
    let before = sim.all();
    let dry = plan(p, DS, &before, now);
    let out = futures::executor::block_on(tick(sim, p, DS, now)).expect("tick");
    assert_eq!(out.plan, dry, "plan == run");
    let labels: Vec<&str> = out
        .created
        .iter()
        .map(|n| n.rsplit('_').next().unwrap())
        .collect();
    assert_eq!(
        labels,
        dry.create.iter().map(|l| l.as_str()).collect::<Vec<_>>()
    );
    // What zfs refused is reported, the rest destroyed, in plan order.
    let refused = |d: &String| out.refused.iter().any(|m| m.contains(d.as_str()));
    let went: Vec<&String> = dry.destroy.iter().filter(|d| !refused(d)).collect();
    assert_eq!(
        out.destroyed.iter().collect::<Vec<_>>(),
        went,
        "{:?}",
        out.refused
    );
    assert_eq!(out.destroyed.len() + out.refused.len(), dry.destroy.len());
    let newest = before
        .iter()
        .filter(|s| s.name.contains("@horace_"))
        .max_by_key(|s| (s.creation, &s.name));
    for d in &out.destroyed {
        assert!(!out.created.contains(d), "destroyed the one just taken");
        assert_ne!(Some(d), newest.map(|s| &s.name), "destroyed the newest");
    }
    let after = sim.all();
    let count = |list: &[SnapshotInfo], label: Label| {
        let suffix = format!("_{}", label.as_str());
        let prefix = format!("{DS}@{SNAPSHOT_PREFIX}");
        list.iter()
            .filter(|s| s.name.starts_with(&prefix) && s.name.ends_with(&suffix))
            .count() as u32
    };
    for label in Label::ALL {
        let (had, n) = (count(&before, label), count(&after, label));
        assert!(
            n >= p.keep(label).min(had),
            "{label:?} fell below its count: {n}"
        );
    }
    out
}

#[test]
fn periods_are_utc_hours_days_iso_weeks_and_months() {
    // 2026-03-02 is a Monday.
    let sun = utc(2026, 3, 1, 23, 59);
    let mon = utc(2026, 3, 2, 0, 0);
    assert_eq!(Label::Weekly.period(mon) - Label::Weekly.period(sun), 1);
    assert_eq!(
        Label::Weekly.period(mon),
        Label::Weekly.period(utc(2026, 3, 8, 23, 59))
    );
    assert_eq!(Label::Monthly.period(mon), Label::Monthly.period(sun));
    assert_eq!(
        Label::Monthly.period(utc(2026, 3, 1, 0, 0))
            - Label::Monthly.period(utc(2026, 2, 28, 23, 59)),
        1
    );
    assert_eq!(
        Label::Monthly.period(utc(2027, 1, 1, 0, 0))
            - Label::Monthly.period(utc(2026, 12, 31, 23, 59)),
        1
    );
    assert_eq!(Label::Daily.period(mon) - Label::Daily.period(sun), 1);
    assert_eq!(Label::Hourly.period(mon) - Label::Hourly.period(sun), 1);
    assert_eq!(Label::parse("weekly"), Some(Label::Weekly));
    assert_eq!(Label::parse("pre-upgrade"), None);
}

#[test]
fn a_year_and_more_of_ticks_keeps_exactly_the_counts() {
    let sim = SimZfs::default();
    let p = policy([24, 14, 12, 12]);
    let start = utc(2026, 1, 1, 0, 0) + 30;
    let end = start + 400 * 86_400;
    let mut created: BTreeMap<&str, usize> = BTreeMap::new();
    let mut t = start;
    while t < end {
        for n in step(&sim, &p, t).created {
            *created
                .entry(
                    Label::parse(n.rsplit('_').next().unwrap())
                        .unwrap()
                        .as_str(),
                )
                .or_default() += 1;
        }
        t += 1200;
    }
    // One per period, none missing, none twice.
    let last = t - 1200;
    for (label, n) in &created {
        let l = Label::parse(label).unwrap();
        assert_eq!(*n as i64, l.period(last) - l.period(start) + 1, "{label}");
    }
    // Exactly the newest `keep` periods of each label are kept.
    for label in Label::ALL {
        let kept = sim.of_label(label);
        assert_eq!(kept.len() as u32, p.keep(label), "{label:?}");
        let periods: Vec<i64> = kept
            .iter()
            .map(|s| label.period(s.creation as i64))
            .collect();
        let want: Vec<i64> = (0..p.keep(label) as i64)
            .rev()
            .map(|i| label.period(last) - i)
            .collect();
        assert_eq!(periods, want, "{label:?}");
    }
}

#[test]
fn dst_changes_in_local_zones_give_one_hourly_per_real_hour() {
    use chrono_tz::{America::New_York, Europe::Berlin, Tz};
    // (zone, local day of the change, local hours that day)
    let cases: [(Tz, (i32, u32, u32), i64); 4] = [
        (Berlin, (2026, 3, 29), 23),
        (Berlin, (2026, 10, 25), 25),
        (New_York, (2026, 3, 8), 23),
        (New_York, (2026, 11, 1), 25),
    ];
    for (tz, (y, m, d), hours) in cases {
        let sim = SimZfs::default();
        let p = policy([1000, 1000, 1000, 1000]);
        let day_start = tz.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap().timestamp();
        let next_day = (tz.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
            + chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap();
        let day_end = tz.from_local_datetime(&next_day).unwrap().timestamp();
        assert_eq!(day_end - day_start, hours * 3600, "{tz} {y}-{m}-{d}");
        // Tick every minute from the local day before to the local day after.
        let mut t = day_start - 86_400;
        while t < day_end + 86_400 {
            step(&sim, &p, t);
            t += 60;
        }
        let hourly = sim.of_label(Label::Hourly);
        let names: BTreeSet<&str> = hourly.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), hourly.len(), "duplicate names in {tz}");
        let in_day = hourly
            .iter()
            .filter(|s| (day_start..day_end).contains(&(s.creation as i64)))
            .count();
        assert_eq!(
            in_day as i64, hours,
            "hourlies during the {hours}-hour local day in {tz}"
        );
        let days: Vec<i64> = sim
            .of_label(Label::Daily)
            .iter()
            .map(|s| Label::Daily.period(s.creation as i64))
            .collect();
        let distinct: BTreeSet<_> = days.iter().collect();
        assert_eq!(
            days.len(),
            distinct.len(),
            "two dailies in one UTC day in {tz}"
        );
    }
}

#[test]
fn downtime_gives_one_catch_up_per_due_label_never_a_backfill() {
    let sim = SimZfs::default();
    let p = policy([24, 14, 12, 12]);
    let mut t = utc(2026, 1, 25, 0, 0);
    while t < utc(2026, 1, 28, 0, 0) {
        step(&sim, &p, t);
        t += 600;
    }
    let hourly_before = sim.of_label(Label::Hourly);
    // Down for ten days and five hours, across a month and several weeks.
    let back = utc(2026, 2, 7, 5, 17);
    let out = step(&sim, &p, back);
    assert_eq!(out.plan.create, Label::ALL.to_vec());
    assert_eq!(out.created.len(), 4);
    // The old hourlies are not all gone: counts, not ages, decide (23 old + 1 new).
    let hourly = sim.of_label(Label::Hourly);
    assert_eq!(hourly.len(), 24);
    assert_eq!(hourly[0].name, hourly_before[1].name);
    for later in [back + 60, back + 600, back + 2400] {
        assert!(
            step(&sim, &p, later).created.is_empty(),
            "backfill or duplicate at {later}"
        );
    }
    assert_eq!(
        step(&sim, &p, utc(2026, 2, 7, 6, 0)).plan.create,
        [Label::Hourly]
    );
}

#[test]
fn clock_jumping_back_refuses_pruning_and_reports() {
    let sim = SimZfs::default();
    let p = policy([3, 2, 2, 2]);
    let mut t = utc(2026, 4, 1, 0, 5);
    while t < utc(2026, 4, 3, 0, 0) {
        step(&sim, &p, t);
        t += 600;
    }
    let newest = sim.all().last().unwrap().creation as i64;
    let count_before = sim.all().len();
    // Back two hours: every hour it passes already has its hourly, nothing is pruned.
    let mut t = newest - 2 * 3600;
    while t < newest {
        let out = step(&sim, &p, t);
        assert!(out.destroyed.is_empty());
        let why = out.plan.prune_refused.expect("refusal reported");
        assert!(why.contains("behind the newest snapshot"), "{why}");
        assert!(
            out.created.is_empty(),
            "duplicate in an hour that has one: {:?}",
            out.created
        );
        t += 300;
    }
    assert_eq!(sim.all().len(), count_before);
    // Back thirty days: snapshots go on once per period, pruning waits.
    let far = newest - 30 * 86_400 - 12 * 3600;
    let out = step(&sim, &p, far);
    assert_eq!(out.plan.create, Label::ALL.to_vec());
    assert!(out.destroyed.is_empty() && out.plan.prune_refused.is_some());
    assert!(step(&sim, &p, far + 600).created.is_empty());
    assert_eq!(step(&sim, &p, far + 3600).created.len(), 1);
    // The clock is fixed: pruning resumes and brings every label back to its count,
    // oldest by creation first (the snapshots taken under the wrong clock).
    let out = step(&sim, &p, newest + 3600);
    assert!(out.plan.prune_refused.is_none());
    assert!(
        out.destroyed.iter().any(|d| d.contains("2026-03-0")),
        "{:?}",
        out.destroyed
    );
    for label in Label::ALL {
        assert_eq!(sim.of_label(label).len() as u32, p.keep(label), "{label:?}");
    }
}

#[test]
fn a_forward_jump_takes_one_per_due_label_and_keeps_the_counts() {
    let sim = SimZfs::default();
    let p = policy([24, 14, 12, 12]);
    let mut t = utc(2026, 6, 1, 0, 0);
    while t < utc(2026, 6, 5, 0, 0) {
        step(&sim, &p, t);
        t += 900;
    }
    let out = step(&sim, &p, utc(2027, 9, 1, 12, 0));
    assert_eq!(out.created.len(), 4);
    assert_eq!(sim.of_label(Label::Hourly).len(), 24);
    assert_eq!(
        sim.of_label(Label::Daily).len(),
        5,
        "4 old dailies + 1 new, all within the count"
    );
}

#[test]
fn foreign_snapshots_are_never_touched() {
    let sim = SimZfs::default();
    let p = policy([2, 2, 1, 1]);
    let t0 = utc(2026, 1, 1, 0, 0);
    let foreign = [
        format!("{DS}@manual-before-upgrade"),
        format!("{DS}@horace_bogus"),
        format!("{DS}@horace_2025-12-01T00:00:00Z_pre-upgrade"),
        format!("{DS}@autosnap_2025-12-01_hourly"),
    ];
    for (i, f) in foreign.iter().enumerate() {
        sim.add(f, t0 - 86_400 * (i as i64 + 1));
    }
    // Another dataset's horace_ snapshots are not ours either.
    let other = SnapshotInfo {
        name: "tank/other@horace_2025-12-01T00:00:00Z_hourly".into(),
        creation: 1,
        used: 0,
    };
    let mut t = t0;
    while t < t0 + 60 * 86_400 {
        let out = step(&sim, &p, t);
        for d in &out.destroyed {
            assert!(!foreign.contains(d), "destroyed foreign {d}");
        }
        let mut with_other = sim.all();
        with_other.push(other.clone());
        assert!(!plan(&p, DS, &with_other, t).destroy.contains(&other.name));
        t += 1800;
    }
    let left: BTreeSet<String> = sim.all().into_iter().map(|s| s.name).collect();
    for f in &foreign {
        assert!(left.contains(f), "{f} is gone");
    }
    assert_eq!(left.len(), foreign.len() + 2 + 2 + 1 + 1);
}

#[test]
fn pruning_goes_by_creation_time_not_by_name() {
    let p = policy([1, 0, 0, 0]);
    let s = |name: &str, creation: i64| SnapshotInfo {
        name: format!("{DS}@{name}"),
        creation: creation as u64,
        used: 0,
    };
    let t = utc(2026, 5, 5, 11, 0);
    let snaps = [
        // Names say the opposite of the creation times.
        s("horace_2026-05-05T11:00:00Z_hourly", t - 3600),
        s("horace_2026-05-05T09:00:00Z_hourly", t - 7200),
        s("horace_2026-05-05T10:00:00Z_hourly", t + 60),
    ];
    let got = plan(&p, DS, &snaps, t + 120);
    assert!(got.create.is_empty());
    assert_eq!(got.destroy, [snaps[1].name.clone(), snaps[0].name.clone()]);
}

#[test]
fn a_failed_create_prunes_nothing_and_a_zero_count_never_snapshots() {
    let sim = SimZfs::default();
    let p = policy([1, 1, 0, 0]);
    let t = utc(2026, 2, 2, 2, 2);
    step(&sim, &p, t);
    step(&sim, &p, t + 3600);
    assert_eq!(
        sim.all().len(),
        3,
        "hourly, daily, and the newest hourly kept one tick longer"
    );
    *sim.fail_create.lock().unwrap() = true;
    sim.set_now(t + 7200);
    let err = futures::executor::block_on(tick(&sim, &p, DS, t + 7200)).unwrap_err();
    assert_eq!(err.stage, "create");
    assert!(sim.destroyed.lock().unwrap().is_empty());
    assert_eq!(sim.of_label(Label::Hourly).len(), 2);
    assert!(sim.of_label(Label::Weekly).is_empty() && sim.of_label(Label::Monthly).is_empty());
}

#[test]
fn the_test_knob_shrinks_every_period_in_proportion() {
    let p = Policy {
        keep: [24, 14, 12, 12],
        hour_seconds: 2,
    };
    let t = SCALE_ORIGIN + 1000;
    assert_eq!(p.calendar_time(t + 2) - p.calendar_time(t), 3600);
    assert!(p.same_period(Label::Hourly, t, t + 1) || p.same_period(Label::Hourly, t + 1, t + 2));
    assert!(!p.same_period(Label::Daily, t, t + 48));
    assert_eq!(
        Policy::from_config(&SnapshotsConfig::default()).hour_seconds,
        3600
    );
}

#[path = "retention_props.rs"]
mod properties;

#[test]
fn a_snapshot_zfs_cannot_destroy_does_not_stop_the_rest_of_pruning() {
    let sim = SimZfs::default();
    let p = policy([2, 0, 0, 0]);
    let mut t = utc(2026, 5, 1, 0, 5);
    for _ in 0..3 {
        step(&sim, &p, t);
        t += 3600;
    }
    // An operator clones the oldest hourly; two more hours pass.
    let oldest = sim.of_label(Label::Hourly)[0].name.clone();
    sim.pinned.lock().unwrap().insert(oldest.clone());
    step(&sim, &p, t);
    let out = step(&sim, &p, t + 3600);
    assert!(!out.destroyed.contains(&oldest), "{:?}", out.destroyed);
    assert!(!out.destroyed.is_empty(), "the others are pruned");
    assert_eq!(out.refused.len(), 1, "{:?}", out.refused);
    assert!(out.refused[0].contains(&oldest) && out.refused[0].contains("dependent clones"));
    let hourly: Vec<String> = sim
        .of_label(Label::Hourly)
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        hourly.len(),
        3,
        "the pinned one and the two newest: {hourly:?}"
    );
    assert_eq!(hourly[0], oldest);
    // The clone is gone: the next tick destroys it.
    sim.pinned.lock().unwrap().clear();
    let out = step(&sim, &p, t + 3600 + 600);
    assert_eq!(out.destroyed, [oldest]);
    assert!(out.refused.is_empty());
    assert_eq!(sim.of_label(Label::Hourly).len(), 2);
}
