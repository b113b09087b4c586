//! Rights: another uid reads but may not write; TCP demands the token and is read-only.

use std::io::{Read, Write};
use std::time::Duration;

use horace_client::{Client, ClientError, SearchQuery};
use horace_tests::{require_root, NOBODY};

use crate::util::{assert_fails, assert_ok, free_port, Opts, Server};

#[test]
fn another_uid_reads_but_is_refused_writes() {
    require_root("running the CLI as nobody");
    let s = Server::start();
    s.write("svc/a.txt", b"one");
    s.sync();
    s.write("svc/a.txt", b"two");
    s.sync();
    // Reads work.
    for args in [
        &["info", "svc/a.txt"][..],
        &["search"],
        &["versions", "svc/a.txt"],
        &["status"],
        &["sync"],
    ] {
        assert_ok(&s.cli_as(NOBODY, args), args);
    }
    // Every write is refused with PermissionDenied (exit 4), and nothing changed.
    for args in [
        &["restore", "svc/a.txt", "1"][..],
        &["tag", "svc/a.txt", "--add", "x"],
        &["update", "svc/a.txt", "--status", "archived"],
        &["register", "svc/a.txt"],
        &["collections", "create", "c"],
    ] {
        assert_fails(&s.cli_as(NOBODY, args), 4, "permission denied");
    }
    let info = s.json(&["info", "svc/a.txt"]);
    assert_eq!(info["file"]["current_version"], 2);
    assert_eq!(info["file"]["tags"].as_array().unwrap().len(), 0);
    assert_eq!(std::fs::read(s.files.join("svc/a.txt")).unwrap(), b"two");
}

#[test]
fn a_configured_writer_uid_may_write() {
    require_root("running the CLI as nobody");
    let s = Server::with(Opts {
        writers: vec![format!("uid:{}", NOBODY.0)],
        ..Default::default()
    });
    s.write("svc/a.txt", b"one");
    s.sync();
    assert_ok(
        &s.cli_as(NOBODY, &["tag", "svc/a.txt", "--add", "ok"]),
        &["tag"],
    );
    let s = Server::with(Opts {
        writers: vec![format!("gid:{}", NOBODY.1)],
        ..Default::default()
    });
    s.write("svc/a.txt", b"one");
    s.sync();
    assert_ok(
        &s.cli_as(NOBODY, &["collections", "create", "c"]),
        &["collections"],
    );
}

/// Connects, sends `bytes`, and returns everything the server sent before closing.
fn raw_tcp(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_requires_the_token_and_is_read_only() {
    let addr = format!("127.0.0.1:{}", free_port());
    let token = "7f3a9c1e-token-for-tests";
    let s = Server::with(Opts {
        tcp: Some((addr.clone(), token.into())),
        ..Default::default()
    });
    s.write("svc/secret.txt", b"catalog data");
    s.sync();

    // Wrong or missing token: refused, and not one byte comes back.
    let wrong = Client::connect_tcp(&addr, "not-the-token")
        .await
        .unwrap_err();
    assert!(matches!(wrong, ClientError::Unauthenticated), "{wrong}");
    let empty = Client::connect_tcp(&addr, "").await.unwrap_err();
    assert!(matches!(empty, ClientError::Unauthenticated), "{empty}");
    let mut frame = 5u32.to_be_bytes().to_vec();
    frame.extend_from_slice(b"guess");
    assert!(raw_tcp(&addr, &frame).is_empty());
    // A tarpc request sent without a handshake is taken as a (wrong) token.
    let mut big = 100_000u32.to_be_bytes().to_vec();
    big.extend_from_slice(&[0u8; 64]);
    assert!(raw_tcp(&addr, &big).is_empty());

    // The right token reads.
    let c = Client::connect_tcp(&addr, token).await.unwrap();
    assert_eq!(c.search(SearchQuery::default()).await.unwrap().total, 1);
    let token_file = s.path().join("token");
    let tcp_args = ["--tcp", &addr, "--token-file", token_file.to_str().unwrap()];
    let mut args = tcp_args.to_vec();
    args.extend(["info", "svc/secret.txt"]);
    assert_ok(&s.cli(&args), &args);
    // ... but does not write.
    let mut args = tcp_args.to_vec();
    args.extend(["tag", "svc/secret.txt", "--add", "x"]);
    assert_fails(&s.cli(&args), 4, "permission denied");
    // The CLI with a wrong token file: exit 4.
    let bad = s.path().join("bad-token");
    std::fs::write(&bad, "nope\n").unwrap();
    assert_fails(
        &s.cli(&[
            "--tcp",
            &addr,
            "--token-file",
            bad.to_str().unwrap(),
            "search",
        ]),
        4,
        "refused the token",
    );
}

#[test]
fn tcp_without_a_token_file_refuses_to_start() {
    let dir = horace_tests::shared_tempdir();
    let config = dir.path().join("horace.toml");
    std::fs::create_dir_all(dir.path().join("files")).unwrap();
    let token = dir.path().join("empty-token");
    std::fs::write(&token, "\n").unwrap();
    std::fs::write(
        &config,
        format!(
            "files_root = {:?}\nmetadata_dir = {:?}\n[query]\nsocket = {:?}\ntcp = \"127.0.0.1:{}\"\ntoken_file = {:?}\n",
            dir.path().join("files"),
            dir.path().join("meta"),
            dir.path().join("q.sock"),
            free_port(),
            token
        ),
    )
    .unwrap();
    let log = dir.path().join("log");
    let mut child = horace_tests::ChildGuard::spawn(
        std::process::Command::new(horace_tests::bin_path("horace-watcher"))
            .arg("--config")
            .arg(&config)
            .arg("--no-snapshots")
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    let status = child
        .wait_timeout(Duration::from_secs(30))
        .expect("the watcher must exit");
    assert!(!status.success());
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(err.contains("token_file") && err.contains("empty"), "{err}");
}

/// One uid holding its share of connections open does not lock other users out.
#[test]
fn one_caller_cannot_take_every_connection() {
    require_root("running the CLI as nobody");
    let s = Server::start();
    let mut held: Vec<std::os::unix::net::UnixStream> = (0..65)
        .map(|_| std::os::unix::net::UnixStream::connect(&s.socket).unwrap())
        .collect();
    // Another uid is still served. Its connection is accepted after the 65 above, so once
    // it has an answer the server has dealt with all of them.
    assert_ok(&s.cli_as(NOBODY, &["status"]), &["status as nobody"]);
    // Over root's own 32, connections are answered `TooManyConnections` for 2 s
    // (`refuse::REFUSE_FOR`), then closed.
    std::thread::sleep(Duration::from_millis(2500));
    let mut closed = 0;
    for c in &mut held {
        c.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 1];
        match c.read(&mut buf) {
            Ok(0) => closed += 1,
            Ok(_) => panic!("the server sent data unasked"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
        }
    }
    assert!(
        closed >= 1 && held.len() - closed <= 32,
        "{closed} of {} closed",
        held.len()
    );
    // Closing the held connections frees their slots (the server notices asynchronously).
    drop(held);
    assert!(horace_tests::wait_until(Duration::from_secs(20), || s
        .cli(&["status"])
        .status
        .success()));
}
