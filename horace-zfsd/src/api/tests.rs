//! Unit and property tests of the name validator and snapshot naming.

use super::*;
use proptest::prelude::*;
use std::time::Duration;

#[test]
fn accepts_ordinary_names() {
    for ok in [
        "tank",
        "tank/files",
        "tank/my data/a.b:c_d-e",
        "hrt1x0/files",
        "a1",
    ] {
        validate_dataset(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    assert_eq!(
        validate_snapshot("tank/files@snap 1").unwrap(),
        ("tank/files", "snap 1")
    );
}

#[test]
fn rejects_hostile_names() {
    let long = "a".repeat(300);
    for bad in [
        "",
        "-tank",
        "tank/-rf",
        "tank/..",
        "tank/../other",
        "tank/a..b",
        "tank;rm",
        "tank/$(reboot)",
        "tank\nx",
        "tank\0x",
        "tank/'q'",
        "tank/\"q\"",
        "tank//a",
        "tank/",
        "/tank",
        "tank@x",
        "tank/.hidden",
        "tank/_x",
        long.as_str(),
    ] {
        assert!(
            matches!(validate_dataset(bad), Err(ZfsError::InvalidName(_))),
            "accepted dataset {bad:?}"
        );
    }
    for bad in [
        "tank@-x",
        "tank@a@b",
        "tank",
        "tank@",
        "@x",
        "tank@a/b",
        "tank@a;b",
        "-tank@a",
        "tank@$(id)",
        "tank@a\nb",
        "tank@a\0",
        "tank@..",
    ] {
        assert!(
            matches!(validate_snapshot(bad), Err(ZfsError::InvalidName(_))),
            "accepted snapshot {bad:?}"
        );
    }
    let long_snap = format!("tank@{}", "a".repeat(300));
    assert!(validate_snapshot(&long_snap).is_err());
}

#[test]
fn error_messages_say_what_to_do() {
    let ZfsError::InvalidName(msg) = validate_dataset("tank/-x").unwrap_err() else {
        panic!("wrong variant")
    };
    assert!(msg.contains("start with a letter or digit"), "{msg}");
}

#[test]
fn labels() {
    for ok in ["hourly", "daily", "a", "pre-upgrade-2", &"x".repeat(32)] {
        validate_label(ok).unwrap();
    }
    for bad in [
        "",
        "Hourly",
        "a_b",
        "a b",
        "a/b",
        "a@b",
        &"x".repeat(33),
        "é",
    ] {
        assert!(validate_label(bad).is_err(), "accepted label {bad:?}");
    }
}

#[test]
fn root_is_component_wise() {
    assert!(is_under_root("tank/files", "tank/files"));
    assert!(is_under_root("tank/files/a", "tank/files"));
    assert!(!is_under_root("tank/files2", "tank/files"));
    assert!(!is_under_root("tank", "tank/files"));
    assert!(!is_under_root("tank/file", "tank/files"));
}

#[test]
fn snapshot_names_round_trip() {
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let name = snapshot_name("hourly", at);
    assert_eq!(name, "horace_2023-11-14T22:13:20Z_hourly");
    assert_eq!(parse_managed(&name), Some((1_700_000_000, "hourly")));
    assert_eq!(
        snapshot_name("x", UNIX_EPOCH),
        "horace_1970-01-01T00:00:00Z_x"
    );
    // Leap day.
    assert_eq!(
        parse_managed("horace_2024-02-29T12:00:00Z_d").map(|p| p.0),
        Some(1_709_208_000)
    );
    validate_snapshot(&format!("tank@{name}")).unwrap();
}

#[test]
fn parse_managed_rejects_others() {
    for bad in [
        "hourly",
        "horace_",
        "horace_2023-11-14T22:13:20Z",
        "horace_2023-11-14T22:13:20Z_",
        "horace_2023-11-14T22:13:20Z_Bad",
        "horace_2023-13-14T22:13:20Z_x",
        "horace_2023-02-30T22:13:20Z_x",
        "horace_2023-11-14T24:13:20Z_x",
        "horace_2023-11-14 22:13:20Z_x",
        "horace_2023-1a-14T22:13:20Z_x",
        "zfs-auto-snap_hourly-2023-11-14-2213",
    ] {
        assert_eq!(parse_managed(bad), None, "{bad}");
    }
}

proptest! {
    #[test]
    fn civil_round_trip(secs in 0u64..253_402_300_799) {
        let name = snapshot_name("p", UNIX_EPOCH + Duration::from_secs(secs));
        prop_assert_eq!(parse_managed(&name), Some((secs, "p")));
    }

    #[test]
    fn nothing_starting_with_dash_is_accepted(s in "-[ -~]{0,40}") {
        prop_assert!(validate_dataset(&s).is_err());
        prop_assert!(validate_snapshot(&s).is_err());
        let snap = format!("tank@{s}");
        prop_assert!(validate_snapshot(&snap).is_err());
    }

    #[test]
    fn accepted_names_are_safe(s in "[ -~\n\0]{0,60}") {
        if validate_dataset(&s).is_ok() {
            prop_assert!(!s.starts_with('-'));
            prop_assert!(!s.contains(".."));
            for c in s.split('/') {
                prop_assert!(c.starts_with(|ch: char| ch.is_ascii_alphanumeric()));
            }
            prop_assert!(!s.contains(|c: char| "\n\0;$'\"`@\\".contains(c)));
        }
        if let Ok((ds, snap)) = validate_snapshot(&s) {
            prop_assert!(!ds.starts_with('-') && !snap.starts_with('-'));
            prop_assert!(!s.contains(|c: char| "\n\0;$'\"`\\".contains(c)));
        }
    }

    #[test]
    fn nothing_escapes_the_root(s in "[a-z./@-]{0,30}") {
        let root = "tank/files";
        if validate_dataset(&s).is_ok() && is_under_root(&s, root) {
            prop_assert!(s == root || s.starts_with("tank/files/"));
            prop_assert!(!s.contains(".."));
        }
        let full = format!("{root}/{s}");
        if validate_dataset(&full).is_ok() {
            prop_assert!(is_under_root(&full, root));
        }
    }
}
