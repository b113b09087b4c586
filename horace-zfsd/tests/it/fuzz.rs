//! Property tests (fuzzing with proptest) of the daemon's pure parsers: the `zfs get`
//! output parser and the configuration parser never panic on any input, the parser only
//! ever returns snapshots of the asked dataset, and whatever a configuration accepts as a
//! root is a valid dataset name that `zfs` cannot read as an option. Cases:
//! `PROPTEST_CASES` (proptest's default 256 in CI; the soak raises it).

use horace_zfsd::api::{is_under_root, validate_dataset, validate_snapshot};
use horace_zfsd::config;
use horace_zfsd::zfs::parse_get;
use proptest::prelude::*;

/// A row of `zfs get -H -p` output, possibly hostile.
fn row() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("tank/files".to_string()),
        "tank/files@[ -~]{0,20}",
        "tank/files/[a-z]{1,5}@[a-z_ ]{0,10}",
        "tank/filesx@[a-z]{1,5}",
        "[ -~]{0,20}",
    ];
    let prop = prop_oneof![Just("creation"), Just("used"), Just("userrefs"), Just("x")];
    let value = prop_oneof![Just("-".to_string()), "[0-9]{1,22}", "[ -~]{0,8}"];
    (name, prop, value, any::<u8>()).prop_map(|(n, p, v, shape)| match shape % 8 {
        0 => format!("{n}\t{p}"),
        1 => format!("{n}\t{p}\t{v}\textra"),
        _ => format!("{n}\t{p}\t{v}"),
    })
}

proptest! {
    #[test]
    fn parse_get_never_panics_on_bytes(out in "(?s).{0,400}") {
        let _ = parse_get("tank/files", &out);
    }

    #[test]
    fn parse_get_returns_only_the_datasets_own_snapshots(rows in prop::collection::vec(row(), 0..30)) {
        let out = rows.join("\n");
        if let Ok(snaps) = parse_get("tank/files", &out) {
            for s in snaps {
                prop_assert!(s.name.starts_with("tank/files@"), "{:?}", s.name);
                prop_assert!(!s.name[..s.name.find('@').unwrap()].contains('/') || s.name.starts_with("tank/files@"));
            }
        }
    }

    #[test]
    fn well_formed_output_round_trips(
        snaps in prop::collection::vec(("[a-z0-9_ :-]{1,20}", 0u64..u64::MAX / 2, 0u64..u64::MAX / 2), 0..10)
    ) {
        let mut out = String::from("tank/files\tcreation\t1\ntank/files\tused\t2\n");
        let mut names: Vec<String> = Vec::new();
        for (n, c, u) in &snaps {
            let name = format!("tank/files@{n}");
            if names.contains(&name) {
                continue;
            }
            out.push_str(&format!("{name}\tcreation\t{c}\n{name}\tused\t{u}\n{name}\tuserrefs\t-\n"));
            names.push(name);
        }
        let parsed = parse_get("tank/files", &out).map_err(TestCaseError::fail)?;
        prop_assert_eq!(parsed.iter().map(|s| s.name.clone()).collect::<Vec<_>>(), names);
    }

    #[test]
    fn config_parser_never_panics(text in "(?s).{0,300}") {
        let _ = config::parse(&text);
    }

    #[test]
    fn accepted_roots_are_valid_and_contain_only_their_subtree(
        root in prop_oneof![
            "[ -~]{0,24}",
            "[a-z]{1,6}(/[a-z0-9._ :-]{1,6}){0,3}",
            "-[a-z]{1,6}",
            "[a-z]{1,4}/\\.\\./[a-z]{1,4}",
            "[a-z]{1,4}@[a-z]{1,4}",
        ],
        uid in any::<u32>(),
        timeout in any::<i64>(),
        probe in "[a-z/@._-]{0,24}",
    ) {
        let text = format!(
            "root = {root:?}\nzfs_path = \"/usr/sbin/zfs\"\nallow_uids = [{uid}]\ncommand_timeout = {timeout}\n"
        );
        if let Ok(cfg) = config::parse(&text) {
            for r in &cfg.roots {
                prop_assert!(validate_dataset(r).is_ok(), "accepted root {:?}", r);
                prop_assert!(!r.starts_with('-'));
                // Anything the daemon would act on under this root stays in its subtree.
                if validate_dataset(&probe).is_ok() && is_under_root(&probe, r) {
                    prop_assert!(probe == *r || probe.starts_with(&(r.clone() + "/")));
                }
                if let Ok((ds, _)) = validate_snapshot(&probe) {
                    if is_under_root(ds, r) {
                        prop_assert!(ds == r || ds.starts_with(&(r.clone() + "/")));
                    }
                }
            }
            prop_assert!(cfg.command_timeout.as_secs() > 0);
        }
    }
}
