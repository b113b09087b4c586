//! `horace mcp` (issue 15) driven by an MCP client this project did not write: the
//! official Python SDK (`mcp` from PyPI, installed by `scripts/setup.sh` into
//! `target/mcp-venv`). The scripts under `tests/mcp/` list the tools, call every one with
//! good and bad input and check the answers against the disk; this side prepares the
//! files tree and the real watcher, and checks the catalog afterwards.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use horace_tests::bin_path;

use crate::fixture::{sha256_hex, Watcher};

/// The prefix the watcher's default config maps onto its files root.
const PREFIX: &str = "/mnt/irina_storage/files";

/// The venv's python, or `None` outside CI when it is not installed (in CI, a failure).
fn python() -> Option<PathBuf> {
    let target = bin_path("horace")
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let py = target.join("mcp-venv/bin/python");
    if py.exists() {
        return Some(py);
    }
    let hint = format!(
        "{} is missing: run scripts/setup.sh (it installs the Python MCP SDK the MCP tests drive)",
        py.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{hint}");
    eprintln!("skipped: {hint}");
    None
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp").join(name)
}

/// A watcher over a small tree: svc/a.txt with two versions ("one", "two"), two
/// duplicates and a document.
fn setup() -> (tempfile::TempDir, Watcher) {
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(files.join("svc")).unwrap();
    fs::create_dir_all(files.join("gates")).unwrap();
    fs::create_dir_all(&meta).unwrap();
    fs::write(files.join("svc/a.txt"), b"one").unwrap();
    fs::write(files.join("svc/b.txt"), b"dup").unwrap();
    fs::write(files.join("svc/c.txt"), b"dup").unwrap();
    fs::write(files.join("gates/report.odt"), b"report").unwrap();
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    fs::write(files.join("svc/a.txt"), b"two").unwrap();
    w.sync(3);
    (dir, w)
}

/// Runs a client script; its stdout's last line is a JSON object.
fn run_script(py: &Path, name: &str, args: &[&str]) -> serde_json::Value {
    let t0 = Instant::now();
    let out = Command::new(py)
        .arg(script(name))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    eprintln!("{name}: {:?}", t0.elapsed());
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("result line")
}

fn id(v: &serde_json::Value, k: &str) -> i64 {
    v[k].as_str().unwrap().parse().unwrap()
}

/// What the write half of the checks left in the catalog.
fn assert_catalog_after_writes(w: &Watcher, ids: &serde_json::Value) {
    let conn = w.catalog();
    let (a, new) = (id(ids, "a"), id(ids, "new"));
    let tags = |f: i64| -> Vec<String> {
        let mut s = conn
            .prepare("SELECT tag FROM tags WHERE file_id = ?1 ORDER BY tag")
            .unwrap();
        s.query_map([f], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(tags(new), ["paper", "v3"]);
    assert_eq!(tags(a), ["y"]);
    let (purpose, corr, owner): (String, String, String) = conn
        .query_row(
            "SELECT purpose, correlation_id, owner FROM files WHERE id = ?1",
            [new],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (purpose.as_str(), corr.as_str(), owner.as_str()),
        ("ICCM v3 Paper", "a1b2c3d4", "gates")
    );
    let members: i64 = conn
        .query_row(
            "SELECT count(*) FROM collection_members m JOIN collections c \
             ON c.id = m.collection_id WHERE c.name = 'papers'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(members, 3);
    let ghost: i64 = conn
        .query_row(
            "SELECT count(*) FROM collections WHERE name = 'ghost'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ghost, 0, "a failed create_collection left its collection");
    let (cur, sha): (i64, String) = conn
        .query_row(
            "SELECT f.current_version, v.sha256 FROM files f JOIN versions v \
             ON v.file_id = f.id AND v.version = f.current_version WHERE f.id = ?1",
            [a],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((cur, sha), (4, sha256_hex(b"one")));
    assert_eq!(fs::read(w.files.join("svc/a.txt")).unwrap(), b"one");
}

#[test]
fn stdio_every_tool_through_the_python_sdk() {
    let Some(py) = python() else { return };
    let t0 = Instant::now();
    let (_dir, mut w) = setup();
    let horace = bin_path("horace");
    let ids = run_script(
        &py,
        "client_stdio.py",
        &[
            horace.to_str().unwrap(),
            w.socket.to_str().unwrap(),
            w.files.to_str().unwrap(),
            PREFIX,
        ],
    );
    assert_eq!(ids["tools"], 12);
    assert_catalog_after_writes(&w, &ids);
    w.sync(3);
    w.assert_consistent("after the MCP calls");
    eprintln!(
        "figure: mcp stdio: {} tool calls, {:?} in all",
        ids["calls"],
        t0.elapsed()
    );
    assert!(t0.elapsed() < Duration::from_secs(60));
    w.stop();
}
