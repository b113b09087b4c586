//! `horace check` and `horace metrics` against the real watcher binary (issue 16): OK with
//! its one line and perfdata on a healthy watcher, CRITICAL (exit 2) with a damaged store
//! object, UNKNOWN (exit 3) when the watcher is gone; the Prometheus exposition with the
//! catalog's figures, and `horace_up 0` when nothing answers.

use std::fs;
use std::process::Output;

use horace_tests::bin_path;

use crate::fixture::Watcher;

fn horace(w: &Watcher, args: &[&str]) -> Output {
    std::process::Command::new(bin_path("horace"))
        .arg("--socket")
        .arg(&w.socket)
        .args(args)
        .output()
        .expect("run horace")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_and_metrics_report_a_real_watcher() {
    let dir = horace_tests::shared_tempdir();
    let (files, meta) = (dir.path().join("files"), dir.path().join("meta"));
    fs::create_dir_all(files.join("svc")).unwrap();
    fs::create_dir_all(&meta).unwrap();
    for i in 0..25 {
        fs::write(files.join(format!("svc/f{i}.txt")), format!("content {i}")).unwrap();
    }
    let mut w = Watcher::new(&files, &meta, "");
    w.start();
    w.sync(3);

    // Healthy: exit 0, one line, perfdata. (No backup assumption: --backup-warn 0.)
    let o = horace(&w, &["check", "--backup-warn", "0"]);
    let line = text(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{line}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.starts_with("HORACE OK - 25 files, queue 0"), "{line}");
    assert!(line.contains("| files=25 queue=0;"), "{line}");
    // Thresholds are options: with --queue-warn 0 an empty queue already warns.
    let o = horace(&w, &["check", "--backup-warn", "0", "--queue-warn", "0"]);
    assert_eq!(o.status.code(), Some(1), "queue 0 >= 0 warns: {}", text(&o));
    assert!(
        text(&o).starts_with("HORACE WARNING - WARNING: queue 0"),
        "{}",
        text(&o)
    );

    // The exposition: every sample a horace_ metric with a number, and the figures.
    let o = horace(&w, &["metrics"]);
    assert_eq!(o.status.code(), Some(0));
    let m = text(&o);
    assert!(m.contains("\nhorace_up 1\n"), "{m}");
    assert!(m.contains("\nhorace_ready 1\n"), "{m}");
    assert!(m.contains("\nhorace_files{status=\"active\"} 25\n"), "{m}");
    assert!(
        m.contains("# TYPE horace_files_hashed_total counter\n"),
        "{m}"
    );
    assert!(m.contains("\nhorace_damaged_objects 0\n"), "{m}");
    for l in m.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = l.rsplit_once(' ').unwrap();
        assert!(name.starts_with("horace_"), "{l}");
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("not a number: {l}"));
    }

    // A damaged store object (what the scrub moves aside): CRITICAL, and the metric says 1.
    let damaged = meta.join("objects/damaged");
    fs::create_dir_all(&damaged).unwrap();
    fs::write(damaged.join("0".repeat(64)), b"bad").unwrap();
    let o = horace(&w, &["check", "--backup-warn", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).starts_with("HORACE CRITICAL - CRITICAL: 1 store objects damaged"),
        "{}",
        text(&o)
    );
    assert!(text(&horace(&w, &["metrics"])).contains("\nhorace_damaged_objects 1\n"));
    assert!(text(&horace(&w, &["metrics"])).contains("\nhorace_degraded 1\n"));
    fs::remove_file(damaged.join("0".repeat(64))).unwrap();

    // Gone: UNKNOWN, exit 3; the exposition says so and still succeeds.
    w.stop();
    let o = horace(&w, &["check"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).starts_with("HORACE UNKNOWN - cannot ask the watcher"),
        "{}",
        text(&o)
    );
    let o = horace(&w, &["metrics"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).ends_with("horace_up 0\n"), "{}", text(&o));
}
