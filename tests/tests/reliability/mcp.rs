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

const WRITE_TOKEN: &str = "w-0123456789abcdef0123456789abcdef";
const READ_TOKEN: &str = "r-0123456789abcdef0123456789abcdef";

/// `horace mcp --listen` on a free loopback port, with a writer and a reader token.
struct HttpServer {
    _child: horace_tests::ChildGuard,
    url: String,
    log: PathBuf,
}

fn tokens_file(dir: &Path, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(format!("tokens-{mode:o}.toml"));
    fs::write(
        &p,
        format!(
            "[[token]]\nname = \"agent\"\ntoken = \"{WRITE_TOKEN}\"\nrights = \"write\"\n\n\
             [[token]]\nname = \"viewer\"\ntoken = \"{READ_TOKEN}\"\nrights = \"read\"\n"
        ),
    )
    .unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn mcp_http(w: &Watcher, dir: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(bin_path("horace"));
    c.arg("--socket")
        .arg(&w.socket)
        .arg("mcp")
        .arg("--tokens")
        .arg(tokens_file(dir, 0o600))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    c
}

impl HttpServer {
    fn start(w: &Watcher, dir: &Path) -> Self {
        let log = dir.join("mcp-http.log");
        let child = horace_tests::ChildGuard::spawn(
            mcp_http(w, dir, &["--listen", "127.0.0.1:0"]).stderr(fs::File::create(&log).unwrap()),
        );
        let mut url = None;
        let up = horace_tests::wait_until(Duration::from_secs(30), || {
            let text = fs::read_to_string(&log).unwrap_or_default();
            url = text
                .lines()
                .find_map(|l| l.strip_prefix("horace mcp: listening on "))
                .map(str::to_owned);
            url.is_some()
        });
        assert!(
            up,
            "mcp --listen did not start: {}",
            fs::read_to_string(&log).unwrap()
        );
        Self {
            _child: child,
            url: url.unwrap(),
            log,
        }
    }

    fn run(&self, py: &Path, w: &Watcher, token: &str, role: &str) -> serde_json::Value {
        run_script(
            py,
            "client_http.py",
            &[&self.url, token, role, w.files.to_str().unwrap(), PREFIX],
        )
    }
}

#[test]
fn http_writer_token_every_tool_and_no_token_is_401() {
    let Some(py) = python() else { return };
    let t0 = Instant::now();
    let (dir, mut w) = setup();
    let server = HttpServer::start(&w, dir.path());
    let ids = server.run(&py, &w, WRITE_TOKEN, "writer");
    assert_eq!(ids["tools"], 12);
    assert_eq!(ids["unauthorized"], serde_json::json!([401, 401, 401, 401]));
    assert_catalog_after_writes(&w, &ids);
    w.sync(3);
    w.assert_consistent("after the MCP calls over HTTP");
    let log = fs::read_to_string(&server.log).unwrap();
    assert!(!log.contains(WRITE_TOKEN), "a token reached the log");
    eprintln!(
        "figure: mcp http: {} tool calls, 5 refused requests, {:?} in all",
        ids["calls"],
        t0.elapsed()
    );
    w.stop();
}

#[test]
fn http_reader_token_cannot_write() {
    let Some(py) = python() else { return };
    let (dir, mut w) = setup();
    // Refused at start: a tokens file others can read, a public address without
    // --allow-remote.
    let out = Command::new(bin_path("horace"))
        .arg("--socket")
        .arg(&w.socket)
        .args(["mcp", "--listen", "127.0.0.1:0", "--tokens"])
        .arg(tokens_file(dir.path(), 0o644))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("chmod 600"), "{err}");
    let out = mcp_http(&w, dir.path(), &["--listen", "0.0.0.0:0"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--allow-remote"),
        "{err}"
    );

    let before = w.catalog_active();
    let a_bytes = fs::read(w.files.join("svc/a.txt")).unwrap();
    let server = HttpServer::start(&w, dir.path());
    let ids = server.run(&py, &w, READ_TOKEN, "reader");
    assert_eq!(ids["tools"], 12);
    assert_eq!(fs::read(w.files.join("svc/a.txt")).unwrap(), a_bytes);
    w.sync(3);
    let conn = w.catalog();
    let (tags, cols, a_versions): (i64, i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM tags), (SELECT count(*) FROM collections), \
             (SELECT count(*) FROM versions v JOIN files f ON f.id = v.file_id \
              WHERE f.path = 'svc/a.txt')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (tags, cols, a_versions),
        (0, 0, 2),
        "a reader changed the catalog"
    );
    // Only the file the reader wrote on disk itself (cataloged by the watcher) is new.
    let mut after = w.catalog_active();
    after.remove("svc/reader.txt");
    assert_eq!(after, before);
    w.stop();
}

/// A raw JSON-RPC line session with `horace mcp` over stdio.
struct RawSession {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    id: u64,
}

impl RawSession {
    fn start(w: &Watcher) -> Self {
        let mut child = Command::new(bin_path("horace"))
            .arg("--socket")
            .arg(&w.socket)
            .args(["--timeout", "10", "mcp"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut s = Self {
            stdin: child.stdin.take().unwrap(),
            stdout: std::io::BufReader::new(child.stdout.take().unwrap()),
            child,
            id: 0,
        };
        s.request(
            "initialize",
            serde_json::json!({"protocolVersion": "2025-06-18", "capabilities": {},
                               "clientInfo": {"name": "raw", "version": "0"}}),
        );
        s.send(serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        s
    }

    fn send(&mut self, v: serde_json::Value) {
        use std::io::Write;
        writeln!(self.stdin, "{v}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn request(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        use std::io::BufRead;
        self.id += 1;
        let id = self.id;
        self.send(
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method,
                                     "params": params}),
        );
        let mut line = String::new();
        assert!(
            self.stdout.read_line(&mut line).unwrap() > 0,
            "horace mcp exited"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], id, "{v}");
        v
    }

    /// `horace_get_status`: Ok(files_active) or Err(the error text).
    fn status(&mut self) -> Result<u64, String> {
        let v = self.request(
            "tools/call",
            serde_json::json!({"name": "horace_get_status", "arguments": {}}),
        );
        let r = &v["result"];
        if r["isError"] == true {
            return Err(r["content"][0]["text"].as_str().unwrap().to_owned());
        }
        Ok(r["structuredContent"]["files_active"].as_u64().unwrap())
    }
}

/// The watcher restarting under a session: calls in between are tool errors
/// (`Unavailable`), the server stays up, and the first call after the restart reconnects.
#[test]
fn stdio_session_survives_a_watcher_restart() {
    let (_dir, mut w) = setup();
    let mut s = RawSession::start(&w);
    assert_eq!(s.status(), Ok(4));
    w.stop();
    for _ in 0..2 {
        let e = s.status().unwrap_err();
        assert!(e.starts_with("Unavailable: "), "{e}");
    }
    w.start();
    assert_eq!(s.status(), Ok(4));
    drop(s.stdin);
    let st = s.child.wait().unwrap();
    assert!(st.success(), "{st:?}");
    w.stop();
}
