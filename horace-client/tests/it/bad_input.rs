//! Bad input: malformed and oversized frames, invalid paths, unknown ids, a pruned
//! version, a snapshot plan with snapshots off — each a named error or a closed
//! connection, and the server keeps serving.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use horace_client::{ClientError, FileRef, QueryError, SearchQuery};

use crate::util::{assert_fails, Opts, Server};

/// Sends raw bytes on the socket and returns what came back before the server closed it.
fn raw(s: &Server, bytes: &[u8]) -> Vec<u8> {
    let mut stream = UnixStream::connect(&s.socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut got = Vec::new();
    let r = stream.read_to_end(&mut got);
    assert!(
        r.is_ok() || r.unwrap_err().kind() == std::io::ErrorKind::ConnectionReset,
        "server must close, not hang"
    );
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_frames_close_only_that_connection() {
    let s = Server::start();
    s.write("svc/a.txt", b"data");
    let c = s.client().await;
    c.sync().await.unwrap();

    // A frame of garbage that does not decode as a request.
    let mut garbage = 16u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[
        0xff, 0x13, 0x37, 0x00, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8,
    ]);
    assert!(raw(&s, &garbage).is_empty());
    // Bytes that are not even a whole frame, then EOF.
    assert!(raw(&s, b"\x00\x00").is_empty());
    // A frame header announcing 2 MiB (over the 1 MiB request limit), and one of 4 GiB.
    for len in [2u32 << 20, u32::MAX] {
        let mut big = len.to_be_bytes().to_vec();
        big.extend_from_slice(&[0u8; 4096]);
        assert!(raw(&s, &big).is_empty());
    }
    // The established client was not disturbed.
    assert_eq!(c.search(SearchQuery::default()).await.unwrap().total, 1);

    // An oversized request from the library is refused before it is sent; one under the
    // frame limit but over a field limit is refused by the server; both are TooLarge.
    for len in [2 << 20, 100_000] {
        let q = SearchQuery {
            path_glob: Some("x".repeat(len)),
            ..Default::default()
        };
        let e = c.search(q).await.unwrap_err();
        assert!(
            matches!(e, ClientError::Query(QueryError::TooLarge { .. })),
            "{e}"
        );
    }
    // ... and the server still serves everyone else.
    assert_eq!(
        c.file_info(FileRef::Path("svc/a.txt".into()))
            .await
            .unwrap()
            .file
            .path,
        "svc/a.txt"
    );
    assert_eq!(s.client().await.status().await.unwrap().files_active, 1);
}

#[test]
fn invalid_paths_and_unknown_ids_are_named() {
    let s = Server::start();
    s.write("svc/a.txt", b"data");
    s.sync();
    for bad in [
        "../etc/passwd",
        "svc/../../x",
        "/etc/passwd",
        "/mnt/irina_storage/files/../x",
        "a\\x00b",
        "a\\q",
        "",
    ] {
        assert_fails(&s.cli(&["info", bad]), 1, "invalid path");
    }
    // A path with a NUL byte cannot even reach argv; the library sends it.
    assert_fails(&s.cli(&["info", "#987654"]), 3, "file #987654 not found");
    assert_fails(&s.cli(&["info", "svc/nope.txt"]), 3, "not found");
    assert_fails(&s.cli(&["versions", "#987654"]), 3, "not found");
    assert_fails(&s.cli(&["restore", "svc/a.txt", "99"]), 3, "version 99");
    assert_fails(
        &s.cli(&["collections", "members", "nope"]),
        3,
        "collection \"nope\" not found",
    );
    assert_fails(&s.cli(&["tag", "#987654", "--add", "x"]), 3, "not found");
    assert_fails(&s.cli(&["search", "--sha256", "abc"]), 1, "64 hex digits");
    assert_fails(
        &s.cli(&["update", "svc/a.txt", "--owner", ""]),
        1,
        "must not be empty",
    );
    // The server is still serving.
    assert_eq!(s.json(&["info", "svc/a.txt"])["file"]["path"], "svc/a.txt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_a_path_is_invalid() {
    let s = Server::start();
    let c = s.client().await;
    let e = c
        .file_info(FileRef::Path("svc/a\0b".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::Query(QueryError::InvalidPath { .. })),
        "{e}"
    );
}

#[test]
fn restore_of_a_pruned_version_is_named() {
    let s = Server::with(Opts {
        versions: Some("keep = 1\nmin_age_days = 0".into()),
        ..Default::default()
    });
    for content in ["one", "two", "three"] {
        s.write("svc/a.txt", content.as_bytes());
        s.sync();
    }
    let v = s.json(&["versions", "svc/a.txt"]);
    assert_eq!(
        v[0]["content_stored"], false,
        "version 1 should be pruned with keep = 1: {v}"
    );
    assert_fails(&s.cli(&["restore", "svc/a.txt", "1"]), 1, "pruned");
    assert_eq!(std::fs::read(s.files.join("svc/a.txt")).unwrap(), b"three");
    // Still serving.
    assert_eq!(s.json(&["info", "svc/a.txt"])["file"]["current_version"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_plan_with_snapshots_off_is_named() {
    let s = Server::start();
    assert_fails(
        &s.cli(&["snapshots", "--plan"]),
        1,
        "snapshots are off in the config",
    );
    // With --json the error is a JSON object on stderr.
    let out = s.cli(&["snapshots", "--plan", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let e: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error"], "InvalidArgument", "{e}");
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("snapshots are off in the config"));
    let e = s.client().await.snapshot_plan().await.unwrap_err();
    assert!(
        matches!(&e, ClientError::Query(QueryError::InvalidArgument { message }) if message.contains("snapshots are off")),
        "{e:?}"
    );
    // The list still answers (empty).
    assert!(s.client().await.snapshots().await.unwrap().is_empty());
}

/// `horace --json`: errors are one JSON object on stderr (name, message, exit code), the
/// answers' times are nanoseconds with `_ns` names, absent ones null, no tuples; usage
/// errors (a negative limit, a malformed --tcp address) exit 2.
#[test]
fn json_errors_and_answers_follow_one_rule() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_horace"))
            .args(args)
            .output()
            .unwrap();
        (out.status.code(), out.stdout, out.stderr)
    };
    let s = Server::start();
    s.write("svc/a.txt", b"same");
    s.write("svc/b.txt", b"same");
    let socket = s.socket.to_str().unwrap();
    let (code, _, err) = run(&["--json", "--socket", socket, "info", "svc/none.txt"]);
    assert_eq!(code, Some(3));
    let e: serde_json::Value = serde_json::from_slice(&err).unwrap();
    assert_eq!(e["error"], "FileNotFound", "{e}");
    assert_eq!(e["exit_code"], 3);
    assert!(
        e["message"].as_str().unwrap().contains("svc/none.txt"),
        "{e}"
    );
    let (code, _, err) = run(&["--json", "--socket", "/nonexistent/sock", "status"]);
    assert_eq!(code, Some(5));
    let e: serde_json::Value = serde_json::from_slice(&err).unwrap();
    assert_eq!(e["error"], "Unavailable", "{e}");

    let (code, out, _) = run(&["--json", "--socket", socket, "sync"]);
    assert_eq!(code, Some(0));
    drop(out);
    let (_, out, _) = run(&["--json", "--socket", socket, "status"]);
    let st: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(st["last_snapshot_ns"].is_null(), "{st}");
    assert!(st.get("last_snapshot").is_none(), "{st}");
    assert!(st["failures"].is_array());
    let (_, out, _) = run(&["--json", "--socket", socket, "duplicates"]);
    let d: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let f = &d["groups"][0]["files"][0];
    assert!(f["id"].is_i64() && f["path"] == "svc/a.txt", "{d}");
    let (_, out, _) = run(&["--json", "--socket", socket, "versions", "svc/a.txt"]);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(v[0]["file_id"].is_i64(), "{v}");

    for bad in [
        &["--socket", socket, "search", "--limit", "-1"][..],
        &["--tcp", "not-a-host", "status"][..],
        &["--tcp", "host:notaport", "status"][..],
    ] {
        assert_eq!(run(bad).0, Some(2), "{bad:?}");
    }
}
