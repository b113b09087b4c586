//! The hand-written man pages (packaging/man/) checked against the binaries' clap
//! definitions, through their `--help`: every option and subcommand is documented, no
//! page documents an option the binary does not have, every page has the sections a
//! user looks for, and the examples use the shipped configuration's datasets.
//!
//! Needs the binaries built (`cargo build --workspace --bins`, as scripts/test.sh does).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use horace_tests::{bin_path, workspace_root};

/// The sections every page must have.
const SECTIONS: &[&str] = &[
    "NAME",
    "SYNOPSIS",
    "DESCRIPTION",
    "OPTIONS",
    "EXIT STATUS",
    "ENVIRONMENT",
    "FILES",
    "SEE ALSO",
];

/// Options of other programs that the pages name (`busctl --system`, `zfs rollback -R`…).
const FOREIGN_OPTIONS: &[&str] = &[
    "--system",
    "--user",
    "--root",
    "--now",
    "--xml-interface",
    "--monitor-snapshots", // sanoid
];

fn page(name: &str) -> String {
    let path: PathBuf = workspace_root().join("packaging/man").join(name);
    let roff = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Roff escapes of the characters options are made of.
    roff.replace("\\-", "-").replace("\\&", "")
}

fn help(bin: &str, args: &[&str]) -> String {
    let out = Command::new(bin_path(bin))
        .args(args)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(out.status.success(), "{bin} {args:?} --help failed");
    String::from_utf8(out.stdout).expect("utf-8 help")
}

/// The long options a help text lists (lines `  -x, --name <V>` or `      --name`).
fn help_options(help: &str) -> BTreeSet<String> {
    help.lines()
        .filter_map(|l| {
            let t = l.trim_start();
            let t = t
                .strip_prefix('-')
                .filter(|r| !r.starts_with('-'))
                .map_or(t, |r| r.split_once(", ").map_or(r, |(_, rest)| rest));
            let name = t.strip_prefix("--")?;
            let name: String = name
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            (!name.is_empty()).then(|| format!("--{name}"))
        })
        .collect()
}

/// The subcommands a help text lists under `Commands:`, `help` aside.
fn help_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// The long options a page names anywhere.
fn page_options(page: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let bytes = page.as_bytes();
    let mut i = 0;
    while let Some(at) = page[i..].find("--") {
        let start = i + at;
        let before = start.checked_sub(1).map(|b| bytes[b]);
        let name: String = page[start + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if !name.is_empty()
            && name.as_bytes()[0].is_ascii_lowercase()
            && !matches!(before, Some(b) if b.is_ascii_alphanumeric() || b == b'-')
        {
            found.insert(format!("--{}", name.trim_end_matches('-')));
        }
        i = start + 2 + name.len();
    }
    found
}

fn sections(page: &str) -> Vec<String> {
    page.lines()
        .filter_map(|l| l.strip_prefix(".SH "))
        .map(|s| s.trim().trim_matches('"').to_string())
        .collect()
}

fn check_page(name: &str, bin: &str, helps: &[String]) {
    let text = page(name);
    let have = sections(&text);
    for s in SECTIONS {
        assert!(
            have.iter().any(|h| h == s),
            "{name} has no {s} section (has {have:?})"
        );
    }
    let mut options = BTreeSet::new();
    for h in helps {
        options.extend(help_options(h));
    }
    let documented = page_options(&text);
    let missing: Vec<_> = options.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "{name} does not document {bin}'s {missing:?}"
    );
    let stale: Vec<_> = documented
        .difference(&options)
        .filter(|o| !FOREIGN_OPTIONS.contains(&o.as_str()))
        .collect();
    assert!(
        stale.is_empty(),
        "{name} documents {stale:?}, which {bin} does not have"
    );
}

#[test]
fn horace_zfsd_page_matches_its_options() {
    check_page("horace-zfsd.8", "horace-zfsd", &[help("horace-zfsd", &[])]);
}

#[test]
fn horace_watcher_page_matches_its_options() {
    check_page(
        "horace-watcher.8",
        "horace-watcher",
        &[help("horace-watcher", &[])],
    );
}

#[test]
fn horace_page_matches_its_commands_and_options() {
    let top = help("horace", &[]);
    let commands = help_commands(&top);
    assert!(commands.len() > 10, "no subcommands found in: {top}");
    let mut helps = vec![top];
    let text = page("horace.1");
    for c in &commands {
        let sub = help("horace", &[c]);
        for s in help_commands(&sub) {
            helps.push(help("horace", &[c, &s]));
            assert!(
                text.lines()
                    .any(|l| l.contains(c.as_str()) && l.contains(&s)),
                "horace.1 does not document `horace {c} {s}`"
            );
        }
        helps.push(sub);
        assert!(
            text.lines()
                .any(|l| l.starts_with(".B") && l.contains(c.as_str())),
            "horace.1 has no entry for the command {c}"
        );
    }
    check_page("horace.1", "horace", &helps);
    // Every variable a help text names is in ENVIRONMENT, every exit code in EXIT STATUS.
    let env = section(&text, "ENVIRONMENT");
    for h in &helps {
        for var in h.split('$').skip(1).map(|v| {
            v.chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect::<String>()
        }) {
            assert!(
                var.is_empty() || env.contains(&var),
                "ENVIRONMENT lacks {var}"
            );
        }
    }
    let exit = section(&text, "EXIT STATUS");
    let codes = helps[0]
        .split("Exit codes:")
        .nth(1)
        .expect("Exit codes in horace --help");
    for code in codes.lines().filter_map(|l| l.split_whitespace().next()) {
        if code.chars().all(|c| c.is_ascii_digit()) {
            assert!(
                exit.contains(&format!(".B {code}\n")),
                "EXIT STATUS lacks {code}"
            );
        }
    }
}

/// The text of one section, up to the next.
fn section<'a>(page: &'a str, name: &str) -> &'a str {
    page.split(&format!(".SH {name}\n"))
        .nth(1)
        .and_then(|t| t.split("\n.SH ").next())
        .unwrap_or_else(|| panic!("no {name} section"))
}

#[test]
fn global_options_are_apart_in_subcommand_help() {
    let h = help("horace", &["search"]);
    let (own, global) = h
        .split_once("Global options:")
        .expect("a Global options heading");
    for o in ["--socket", "--tcp", "--token-file", "--json", "--timeout"] {
        assert!(global.contains(o), "{o} not under Global options");
        assert!(
            !own.contains(&format!("  {o}")),
            "{o} among search's own options"
        );
    }
}

#[test]
fn zfsd_examples_use_the_shipped_root() {
    let shipped = std::fs::read_to_string(workspace_root().join("packaging/zfsd.toml")).unwrap();
    let root = shipped
        .lines()
        .find_map(|l| l.strip_prefix("root = \""))
        .and_then(|r| r.strip_suffix('"'))
        .expect("root in packaging/zfsd.toml");
    let text = page("horace-zfsd.8");
    let examples = section(&text, "EXAMPLES");
    let mut datasets = 0;
    for word in examples
        .split_whitespace()
        .filter(|w| w.starts_with("tank"))
    {
        datasets += 1;
        assert!(
            word == root
                || word.starts_with(&format!("{root}/"))
                || word.starts_with(&format!("{root}@")),
            "horace-zfsd.8's example names {word}, outside the shipped root {root}"
        );
    }
    assert!(datasets > 0, "no dataset in the examples");
}
