//! Connection slots under attack, over the real watcher: a slowloris of TCP clients that
//! never present a token, and uids that hold connections open, must not lock out the
//! Unix-socket clients of other uids, nor root.

use std::time::{Duration, Instant};

use horace_client::Client;
use tokio::net::TcpSocket;

use crate::util::{free_port, Opts, Server};

/// A Unix client of the current uid answers `status` within a few seconds.
async fn unix_client_served(s: &Server) -> Result<(), String> {
    let t0 = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(3), async {
        let c = Client::connect_unix(&s.socket)
            .await
            .map_err(|e| e.to_string())?;
        c.status().await.map(|_| ()).map_err(|e| e.to_string())
    })
    .await;
    match r {
        Ok(r) => r,
        Err(_) => Err(format!("no answer after {:?}", t0.elapsed())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_slowloris_without_token_does_not_lock_out_unix_clients() {
    let addr = format!("127.0.0.1:{}", free_port());
    let s = Server::with(Opts {
        tcp: Some((addr.clone(), "tok-slots".into())),
        ..Opts::default()
    });
    // 5 source addresses × 64 connections that never send a token (320 > the old 256 total).
    let mut held = Vec::new();
    for last in 2..=6u8 {
        for _ in 0..64 {
            let sock = TcpSocket::new_v4().unwrap();
            sock.bind(format!("127.0.0.{last}:0").parse().unwrap())
                .unwrap();
            match sock.connect(addr.parse().unwrap()).await {
                Ok(st) => held.push(st),
                Err(e) => panic!("connect from 127.0.0.{last}: {e}"),
            }
        }
    }
    // Give the server time to accept them all (it accepts in a loop; nothing to wait on).
    tokio::time::sleep(Duration::from_millis(300)).await;
    unix_client_served(&s)
        .await
        .expect("a Unix client is served while TCP clients hold back their token");
    drop(held);
}

/// A process of `uid` that holds `n` connections to the socket open until dropped.
fn hold_as(s: &Server, uid: u32, n: usize) -> horace_tests::ChildGuard {
    use std::io::BufRead;
    let script = "import socket,sys\n\
        held=[]\n\
        for _ in range(int(sys.argv[2])):\n\
        \x20   c=socket.socket(socket.AF_UNIX); c.connect(sys.argv[1]); held.append(c)\n\
        print('held', flush=True)\n\
        sys.stdin.read()\n";
    let mut cmd = horace_tests::command_as(uid, uid, &[], "/usr/bin/python3");
    cmd.arg("-c")
        .arg(script)
        .arg(&s.socket)
        .arg(n.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut g = horace_tests::ChildGuard::spawn(&mut cmd);
    let out = g.child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(out).read_line(&mut line).unwrap();
    assert_eq!(
        line.trim(),
        "held",
        "uid {uid} could not open {n} connections"
    );
    g
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uids_holding_connections_lock_out_neither_root_nor_other_uids() {
    let s = Server::start();
    // Four uids each hold 64 connections (the old per-uid share, 256 = the old total).
    let holders: Vec<_> = (0..4).map(|i| hold_as(&s, 61000 + i, 64)).collect();
    // Give the server time to accept them all (no event to wait on).
    tokio::time::sleep(Duration::from_millis(300)).await;
    unix_client_served(&s)
        .await
        .expect("root is served while other uids hold connections");
    let out = s.cli_as((61010, 61010), &["status"]);
    assert!(
        out.status.success(),
        "a fifth uid is served: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(holders);
}
