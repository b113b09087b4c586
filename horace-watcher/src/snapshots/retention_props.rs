//! Property tests of the retention plan over random snapshot lists, clocks and counts.

use proptest::prelude::*;

use super::*;

/// (dataset index, kind index, creation offset): kinds 0-3 are the schedule labels,
/// 4 an unscheduled horace_ label, 5 a foreign name.
fn snapshot_list() -> impl Strategy<Value = Vec<(usize, usize, i64)>> {
    prop::collection::vec((0..2usize, 0..6usize, 0..(40 * 86_400i64)), 0..60)
}

fn build(raw: &[(usize, usize, i64)]) -> Vec<SnapshotInfo> {
    let t0 = utc(2026, 1, 1, 0, 0);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for &(ds, kind, off) in raw {
        let dataset = ["tank/files", "tank/other"][ds];
        let at = UNIX_EPOCH + Duration::from_secs((t0 + off) as u64);
        let snap = match kind {
            0..=3 => snapshot_name(Label::ALL[kind].as_str(), at),
            4 => snapshot_name("pre-upgrade", at),
            _ => format!("manual-{off}"),
        };
        let name = format!("{dataset}@{snap}");
        if seen.insert(name.clone()) {
            out.push(SnapshotInfo {
                name,
                creation: (t0 + off) as u64,
                used: 0,
            });
        }
    }
    out
}

proptest! {
    #[test]
    fn plans_keep_every_promise(
        raw in snapshot_list(),
        keep in prop::array::uniform4(0..5u32),
        later in -3600i64..(20 * 86_400),
    ) {
        let snaps = build(&raw);
        let p = Policy { keep, hour_seconds: 3600 };
        let newest_any = snaps.iter().filter(|s| s.name.starts_with("tank/files@")).map(|s| s.creation as i64).max();
        let now = newest_any.unwrap_or(utc(2026, 1, 1, 0, 0)) + later;
        let got = plan(&p, DS, &snaps, now);
        let managed: Vec<&SnapshotInfo> = snaps
            .iter()
            .filter(|s| s.name.starts_with("tank/files@horace_") && Label::ALL.iter().any(|l| s.name.ends_with(&format!("_{}", l.as_str()))))
            .collect();
        // Only scheduled horace_ snapshots of the dataset, oldest first.
        for d in &got.destroy {
            prop_assert!(managed.iter().any(|m| &m.name == d), "{} is not ours", d);
        }
        let created: Vec<i64> = got.destroy.iter().map(|d| snaps.iter().find(|s| &s.name == d).unwrap().creation as i64).collect();
        prop_assert!(created.windows(2).all(|w| w[0] <= w[1]));
        // Never the newest.
        let newest = managed.iter().max_by_key(|m| (m.creation, &m.name));
        if let Some(n) = newest {
            prop_assert!(!got.destroy.contains(&n.name));
        }
        // A clock behind the newest snapshot destroys nothing and says so.
        if newest_any.is_some_and(|n| now < n) {
            prop_assert!(got.destroy.is_empty() && got.prune_refused.is_some());
        }
        // No label below its count (counting the snapshot about to be taken).
        for label in Label::ALL {
            let suffix = format!("_{}", label.as_str());
            let had = managed.iter().filter(|m| m.name.ends_with(&suffix)).count();
            let gone = got.destroy.iter().filter(|d| d.ends_with(&suffix)).count();
            let new = usize::from(got.create.contains(&label));
            prop_assert!(had - gone + new >= (p.keep(label) as usize).min(had + new), "{:?}", label);
            if got.prune_refused.is_none() {
                prop_assert!(had - gone + new <= p.keep(label) as usize + 1, "{:?} kept too many", label);
            }
            prop_assert!(!(got.create.contains(&label) && p.keep(label) == 0));
        }
    }
}
