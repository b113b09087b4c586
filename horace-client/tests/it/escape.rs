//! Names print escaped: a tenant's file name with newlines and terminal escapes cannot draw
//! a fake catalog row or drive the terminal in the human output; `--json` stays exact.

use crate::util::{assert_ok, Server};

const SPOOF: &str = "spoof\n#1  active  3B  2026-01-01 00:00:00  FAKE-ENTRY.txt\x1b[2K\x07\r";

fn no_controls(text: &str) {
    for line in text.lines() {
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "a control character reached the terminal: {line:?}"
        );
    }
    assert!(
        !text
            .lines()
            .any(|l| l.contains("active  3B  2026-01-01") && !l.contains("spoof")),
        "a fake row was drawn:\n{text}"
    );
}

#[test]
fn hostile_names_are_escaped_in_human_output_and_exact_in_json() {
    let s = Server::start();
    s.write(&format!("svc/{SPOOF}"), b"abc");
    s.write("svc/other.txt", b"abc");
    s.sync();
    for args in [
        vec!["search", "--glob", "svc/*"],
        vec!["info", &format!("svc/{SPOOF}")[..]],
        vec!["versions", &format!("svc/{SPOOF}")[..]],
        vec!["duplicates"],
    ] {
        let out = s.cli(&args);
        assert_ok(&out, &args);
        let text = String::from_utf8(out.stdout).unwrap();
        no_controls(&text);
        assert!(
            text.contains("FAKE-ENTRY.txt\\x1b[2K\\x07\\x0d"),
            "{args:?}:\n{text}"
        );
        assert!(text.contains("spoof\\x0a#1"), "{args:?}:\n{text}");
    }
    let v = s.json(&["search", "--glob", "svc/spoof*"]);
    assert_eq!(
        v["files"][0]["path"],
        format!("svc/{SPOOF}"),
        "--json is exact"
    );
    // An error that quotes the name is escaped too.
    let out = s.cli(&["restore", &format!("svc/{SPOOF}"), "99"]);
    assert!(!out.status.success());
    no_controls(&String::from_utf8(out.stderr).unwrap());
}
