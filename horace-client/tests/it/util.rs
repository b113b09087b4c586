//! A real `horace-watcher` on a temp directory with its query socket, and helpers to run
//! the real `horace` CLI (also as another uid) and the client library against it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use horace_client::Client;
use horace_tests::{bin_path, command_as, shared_tempdir, wait_until, ChildGuard};

/// A running watcher and its directories.
pub struct Server {
    /// The watcher process (killed on drop, before the directory goes).
    _child: ChildGuard,
    /// Keeps the temp dir alive.
    pub dir: tempfile::TempDir,
    /// The files root.
    pub files: PathBuf,
    /// The query socket.
    pub socket: PathBuf,
}

/// Extra config: `[versions]`/`[query]` TOML tables appended to a generated config file.
#[derive(Default)]
pub struct Opts {
    /// `query.writers` entries.
    pub writers: Vec<String>,
    /// `query.tcp` address and the token to put in `query.token_file`.
    pub tcp: Option<(String, String)>,
    /// `[versions]` table body.
    pub versions: Option<String>,
}

impl Server {
    /// A watcher with only command-line flags.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A watcher with a config file built from `opts`.
    pub fn with(opts: Opts) -> Self {
        Self::start_with(Some(opts))
    }

    fn start_with(opts: Option<Opts>) -> Self {
        let dir = shared_tempdir();
        let files = dir.path().join("files");
        let meta = dir.path().join("meta");
        std::fs::create_dir_all(&files).unwrap();
        std::fs::create_dir_all(&meta).unwrap();
        let socket = dir.path().join("q.sock");
        let mut cmd = Command::new(bin_path("horace-watcher"));
        cmd.arg("--files")
            .arg(&files)
            .arg("--metadata")
            .arg(&meta)
            .arg("--socket")
            .arg(&socket)
            .arg("--no-snapshots");
        if let Some(o) = opts {
            let mut text = format!("files_root = {:?}\nmetadata_dir = {:?}\n", files, meta);
            if let Some(v) = &o.versions {
                text.push_str(&format!("[versions]\n{v}\n"));
            }
            text.push_str(&format!(
                "[query]\nsocket = {socket:?}\nwriters = {:?}\n",
                o.writers
            ));
            if let Some((addr, token)) = &o.tcp {
                let token_file = dir.path().join("token");
                std::fs::write(&token_file, format!("{token}\n")).unwrap();
                text.push_str(&format!("tcp = {addr:?}\ntoken_file = {token_file:?}\n"));
            }
            let config = dir.path().join("horace.toml");
            std::fs::write(&config, text).unwrap();
            cmd.arg("--config").arg(&config);
        }
        cmd.env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let mut child = ChildGuard::spawn(&mut cmd);
        // Process start-up has no event to wait on: poll until the socket answers.
        let up = wait_until(Duration::from_secs(30), || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        });
        assert!(
            up && child.is_running(),
            "watcher did not start listening on {}",
            socket.display()
        );
        Self {
            _child: child,
            dir,
            files,
            socket,
        }
    }

    /// Writes a file under the files root (temp file + rename, like a service would).
    pub fn write(&self, rel: &str, content: &[u8]) {
        let path = self.files.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        horace_tests::atomic_write(&path, content);
    }

    /// The library client over the Unix socket.
    pub async fn client(&self) -> Client {
        Client::connect_unix(&self.socket).await.expect("connect")
    }

    /// Runs the CLI as the current user.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_horace"));
        cmd.arg("--socket").arg(&self.socket).args(args);
        cmd.output().expect("run horace")
    }

    /// Runs the CLI as `uid:gid` (setpriv).
    pub fn cli_as(&self, (uid, gid): (u32, u32), args: &[&str]) -> Output {
        let mut cmd = command_as(uid, gid, &[], env!("CARGO_BIN_EXE_horace"));
        cmd.arg("--socket").arg(&self.socket).args(args);
        cmd.output().expect("run horace as another uid")
    }

    /// Runs the CLI and returns its JSON output, asserting success.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        assert_ok(&out, args);
        serde_json::from_slice(&out.stdout).expect("json output")
    }

    /// `horace sync`.
    pub fn sync(&self) {
        assert_ok(&self.cli(&["sync"]), &["sync"]);
    }

    /// The temp dir.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Asserts that the CLI succeeded.
pub fn assert_ok(out: &Output, args: &[&str]) {
    assert!(
        out.status.success(),
        "horace {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts the CLI's exit code and that stderr is one `horace: …` line containing `needle`.
pub fn assert_fails(out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stderr: {err} stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.starts_with("horace: ") && err.trim_end().lines().count() == 1,
        "{err}"
    );
    assert!(err.contains(needle), "{err:?} lacks {needle:?}");
}

/// Paths of a search result in JSON.
pub fn paths(v: &serde_json::Value) -> Vec<String> {
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

/// A free TCP port on localhost.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
