//! Baselines run in the same session: `find -print0 | xargs -0 -P2 sha256sum` (built with
//! std pipes, no shell), the hashing limit from `openssl speed`, and the speed of the
//! `sha2` crate Horace hashes with (to tell whether SHA-NI is in use).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use sha2::{Digest, Sha256};

/// Runs `find ROOT -type f -print0 | xargs -0 -P2 sha256sum > /dev/null`; returns the
/// wall time of the whole pipeline.
pub fn find_xargs_sha256sum(root: &Path) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let mut find = Command::new("find")
        .arg(root)
        .args(["-type", "f", "-print0"])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run find")?;
    let pipe = find.stdout.take().context("find stdout")?;
    let xargs = Command::new("xargs")
        .args(["-0", "-P2", "sha256sum"])
        .stdin(Stdio::from(pipe))
        .stdout(Stdio::null())
        .status()
        .context("cannot run xargs sha256sum")?;
    let found = find.wait()?;
    let took = t0.elapsed();
    if !found.success() || !xargs.success() {
        bail!("find ({found}) | xargs sha256sum ({xargs}) failed");
    }
    Ok(took)
}

/// Times `find ROOT -type f -printf '%s %T@ %C@ %i\n'`: a walk that stats every file for
/// the fingerprint the watcher compares on restart (size, mtime, ctime, inode).
pub fn find_stat_walk(root: &Path) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let out = Command::new("find")
        .arg(root)
        .args(["-type", "f", "-printf", "%s %T@ %C@ %i\\n"])
        .stdout(Stdio::null())
        .status()
        .context("cannot run find")?;
    let took = t0.elapsed();
    anyhow::ensure!(out.success(), "find -printf failed ({out})");
    Ok(took)
}

/// CPU time (user + system) of the children this process has waited for so far (and of
/// their waited-for descendants), seconds.
pub fn children_cpu_secs() -> f64 {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// Parses the `sha256` line of `openssl speed -evp sha256 -bytes N` (1000s of bytes per
/// second, suffix `k`); returns bytes per second.
pub fn parse_openssl_speed(out: &str) -> Option<f64> {
    out.lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("sha256") || l.starts_with("sha2-256"))
        .filter_map(|l| l.split_whitespace().last())
        .filter_map(|v| v.strip_suffix('k'))
        .filter_map(|v| v.parse::<f64>().ok())
        .map(|k| k * 1000.0)
        .next_back()
}

/// Best of three runs of [`openssl_sha256_once`] (the machine is shared).
pub fn openssl_sha256(seconds: u32) -> anyhow::Result<f64> {
    let mut best: f64 = 0.0;
    for _ in 0..3 {
        best = best.max(openssl_sha256_once(seconds)?);
    }
    Ok(best)
}

/// Best of three runs of [`sha2_speed_once`].
pub fn sha2_speed(seconds: f64) -> f64 {
    (0..3).map(|_| sha2_speed_once(seconds)).fold(0.0, f64::max)
}

/// Single-core SHA-256 speed per `openssl speed -evp sha256 -bytes 16384 -seconds S`,
/// bytes per second.
pub fn openssl_sha256_once(seconds: u32) -> anyhow::Result<f64> {
    let out = Command::new("openssl")
        .args(["speed", "-evp", "sha256", "-bytes", "16384", "-seconds"])
        .arg(seconds.to_string())
        .stderr(Stdio::null())
        .output()
        .context("cannot run openssl speed")?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_openssl_speed(&text).with_context(|| format!("no sha256 line in openssl output: {text}"))
}

/// Single-core speed of the `sha2` crate (what the watcher hashes with) over 16 KiB
/// blocks for about `seconds`, bytes per second.
pub fn sha2_speed_once(seconds: f64) -> f64 {
    let block = vec![0x5au8; 16384];
    let mut hasher = Sha256::new();
    let t0 = Instant::now();
    let mut bytes = 0u64;
    while t0.elapsed().as_secs_f64() < seconds {
        for _ in 0..256 {
            hasher.update(&block);
        }
        bytes += 256 * block.len() as u64;
    }
    std::hint::black_box(hasher.finalize());
    bytes as f64 / t0.elapsed().as_secs_f64()
}

/// Whether `perf` can count instructions here (for the notes of a missed target).
pub fn perf_available() -> bool {
    Command::new("perf")
        .args(["stat", "-e", "instructions", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openssl_3_output() {
        let out = "Doing sha256 ops for 3s on 16384 size blocks: 100 sha256 ops in 3.00s\n\
                   version: 3.0.11\n\
                   The 'numbers' are in 1000s of bytes per second processed.\n\
                   type          16384 bytes\n\
                   sha256         1784331.61k\n";
        let v = parse_openssl_speed(out).unwrap();
        assert!((v - 1_784_331_610.0).abs() < 1.0);
        assert_eq!(parse_openssl_speed("nothing here"), None);
    }

    #[test]
    fn pipeline_hashes_a_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"x").unwrap();
        assert!(find_xargs_sha256sum(dir.path()).is_ok());
    }
}
