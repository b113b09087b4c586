//! Hostile input against the watcher's pure parsers (proptest, `PROPTEST_CASES`) and
//! against the real query socket (random frames, `HORACE_FUZZ_FRAMES`): no panic, no
//! accepted path that escapes the files root, the server keeps serving.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Component, Path};
use std::time::{Duration, Instant};

use horace_watcher::config::Config;
use horace_watcher::path::{escape_bytes, unescape_bytes};
use horace_watcher::query::paths::normalize;
use proptest::prelude::*;

use crate::fixture::{knob, Rng, Watcher};

/// Request paths built from hostile pieces.
fn request_path() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just("".to_string()),
        Just("\\x00".to_string()),
        Just("\\x2e\\x2e".to_string()),
        Just("\\x2f".to_string()),
        Just("\\".to_string()),
        Just("\\\\".to_string()),
        Just("\0".to_string()),
        "[a-z.]{1,5}",
        "[ -~]{0,6}",
    ];
    let start = prop_oneof![
        Just(""),
        Just("/"),
        Just("/mnt/irina_storage/files/"),
        Just("/mnt/irina_storage/files/../"),
        Just("/srv/files/"),
        Just("/mnt/irina_storage/filesX/"),
    ];
    (start, prop::collection::vec(piece, 0..6)).prop_map(|(s, p)| format!("{s}{}", p.join("/")))
}

proptest! {
    #[test]
    fn escape_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        prop_assert_eq!(unescape_bytes(&escape_bytes(&bytes)), Some(bytes));
    }

    #[test]
    fn unescape_never_panics(text in "(?s).{0,64}") {
        let _ = unescape_bytes(&text);
    }

    #[test]
    fn accepted_request_paths_stay_under_the_root(input in request_path()) {
        let prefixes = [Path::new("/mnt/irina_storage/files"), Path::new("/srv/files")];
        if let Ok(rel) = normalize(&input, &prefixes) {
            let bytes = unescape_bytes(&rel).expect("normalized form unescapes");
            prop_assert!(!bytes.is_empty() && !bytes.contains(&0), "{:?} -> {:?}", input, rel);
            let p = Path::new(std::ffi::OsStr::from_encoded_bytes_unchecked_safe(&bytes));
            prop_assert!(p.is_relative(), "{:?} -> {:?}", input, rel);
            prop_assert!(p.components().all(|c| matches!(c, Component::Normal(_))), "{:?} -> {:?}", input, rel);
            // Idempotent: the stored form normalizes to itself.
            prop_assert_eq!(normalize(&rel, &prefixes).ok(), Some(rel.clone()));
        }
    }

    #[test]
    fn config_parser_never_panics(text in "(?s).{0,300}") {
        let _ = Config::parse(&text);
    }

    #[test]
    fn config_parser_on_near_valid_files(
        key in prop_oneof![
            Just("files_root".to_string()),
            Just("metadata_dir".to_string()),
            Just("container_prefix".to_string()),
            Just("ignore".to_string()),
            Just("bogus".to_string()),
            "[a-z_]{1,12}",
        ],
        value in prop_oneof![Just("\"/srv/files\"".to_string()), Just("\"relative\"".to_string()), Just("[\"*.tmp\", \"[\"]".to_string()), "[ -~]{0,16}"],
        table in prop_oneof![Just(""), Just("[versions]\n"), Just("[query]\n"), Just("[snapshots]\n"), Just("[catalog]\n")],
        tail in "(?s)[ -~\n\u{e9}\u{1F600}]{0,40}",
    ) {
        let text = format!("files_root = \"/srv/files\"\nmetadata_dir = \"/var/lib/horace\"\n{table}{key} = {value}\n{tail}");
        if let Ok(c) = Config::parse(&text) {
            prop_assert!(c.files_root.is_absolute());
        }
    }
}

/// `OsStr` from bytes on Unix (a named helper so the property reads plainly).
trait FromBytes {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> &std::ffi::OsStr;
}

impl FromBytes for std::ffi::OsStr {
    fn from_encoded_bytes_unchecked_safe(b: &[u8]) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}

/// One random frame: a length prefix (right, wrong or huge) and random bytes, sometimes
/// a bincode-looking body (small integers, lengths, strings).
fn frame(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(300) as usize;
    let mut body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    if rng.below(3) == 0 {
        // Bincode-ish: a variant tag, a u64 id, a string length and some text.
        body = Vec::new();
        body.extend_from_slice(&(rng.below(4) as u32).to_le_bytes());
        body.extend_from_slice(&rng.next().to_le_bytes());
        body.extend_from_slice(&(rng.below(3)).to_le_bytes());
        body.extend_from_slice(&rng.below(40).to_le_bytes());
        body.extend_from_slice(b"status search file_info ../../etc/passwd");
    }
    let prefix: u32 = match rng.below(6) {
        0 => u32::MAX,
        1 => rng.next() as u32,
        2 => body.len() as u32 + 7,
        _ => body.len() as u32,
    };
    let mut out = prefix.to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    if rng.below(5) == 0 {
        out.truncate(rng.below(out.len() as u64 + 1) as usize);
    }
    out
}

/// Random frames on the real socket, each on its own connection and some on one shared
/// connection: the watcher answers a real client after every batch and never dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_frames_on_the_query_socket() {
    let n = knob("HORACE_FUZZ_FRAMES", 2000);
    let mut rng = Rng::from_env("random_frames_on_the_query_socket");
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    std::fs::create_dir_all(&files).unwrap();
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(files.join("secret.txt"), b"catalog data").unwrap();
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    let started = Instant::now();
    let mut shared = UnixStream::connect(&w.socket).unwrap();
    for i in 0..n {
        let f = frame(&mut rng);
        if i % 4 == 0 {
            // The shared connection may be closed by the server after a bad frame.
            if shared.write_all(&f).is_err() {
                shared = UnixStream::connect(&w.socket).unwrap();
            }
        } else {
            let mut s = UnixStream::connect(&w.socket).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let _ = s.write_all(&f);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
        if i % 50 == 49 {
            let client = w.client().await;
            let st = client
                .status()
                .await
                .unwrap_or_else(|e| panic!("frame {i}: {e}\n{}", w.log()));
            assert_eq!(st.files_active, 1);
            assert!(w.is_running(), "watcher died\n{}", w.log());
        }
    }
    let client = w.client().await;
    client.sync().await.unwrap();
    assert!(w.is_running(), "{}", w.log());
    assert!(!w.log().contains("panicked"), "{}", w.log());
    eprintln!(
        "query socket: {n} random frames in {:?}, server kept serving",
        started.elapsed()
    );
    w.stop();
}
