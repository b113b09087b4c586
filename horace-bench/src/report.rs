//! The results: one [`Figure`] per measurement, the machine it ran on, and the Markdown
//! page (docs/benchmarks.md) they become.

use std::fmt::Write as _;
use std::fs;
use std::process::Command;
use std::time::Duration;

/// One measured figure with its baseline from the same run.
#[derive(Debug, Clone, Default)]
pub struct Figure {
    /// Number and short name, e.g. "1. Initial catalog".
    pub name: String,
    /// What Horace did, with units.
    pub value: String,
    /// The baseline and its measurement, with units.
    pub baseline: String,
    /// Horace relative to the baseline, with what the number means.
    pub ratio: String,
    /// The target from the issue.
    pub target: String,
    /// Whether the target held; `None` when it does not apply or was not measured.
    pub pass: Option<bool>,
    /// How it was measured, and what dominates where the target is missed.
    pub notes: Vec<String>,
}

impl Figure {
    /// A figure with a name and target; the rest is filled in by the measurement.
    pub fn new(name: &str, target: &str) -> Self {
        Self {
            name: name.into(),
            target: target.into(),
            ..Default::default()
        }
    }

    /// A figure that could not be measured here, saying why.
    pub fn skipped(name: &str, target: &str, why: &str) -> Self {
        let mut f = Self::new(name, target);
        f.value = format!("not measured: {why}");
        f
    }

    /// Adds a note line.
    pub fn note(&mut self, s: impl Into<String>) {
        self.notes.push(s.into());
    }

    fn verdict(&self) -> &'static str {
        match self.pass {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "n/a",
        }
    }
}

/// The machine the run used.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `nproc`.
    pub cores: usize,
    /// CPU model name.
    pub cpu: String,
    /// Whether /proc/cpuinfo lists `sha_ni`.
    pub sha_ni: bool,
    /// Total memory, MiB.
    pub mem_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// Filesystem type of the temp dir holding the data.
    pub filesystem: String,
    /// 1-minute load average at start (the machine is shared).
    pub load: String,
}

fn cmd_out(prog: &str, args: &[&str]) -> String {
    Command::new(prog)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

impl Machine {
    /// Reads the machine's figures; `data_dir` is where the benchmark keeps its data.
    pub fn probe(data_dir: &std::path::Path) -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .unwrap_or("unknown")
            .trim()
            .to_string();
        let sha_ni = cpuinfo
            .lines()
            .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "sha_ni"));
        let mem_mib = fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse::<u64>().ok())
            .unwrap_or(0)
            / 1024;
        let dir = data_dir.to_string_lossy().into_owned();
        let filesystem = cmd_out("stat", &["-f", "-c", "%T", &dir]);
        let load = fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            sha_ni,
            mem_mib,
            kernel: cmd_out("uname", &["-r"]),
            filesystem,
            load,
        }
    }
}

/// Formats a duration in ms with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Formats a count with thousands separators.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Everything the page needs.
pub struct Report<'a> {
    /// The machine.
    pub machine: &'a Machine,
    /// The command that produced it.
    pub command: &'a str,
    /// Size preset and what it means.
    pub size: &'a str,
    /// Start time (UTC, text).
    pub started: &'a str,
    /// Wall time of the whole run.
    pub took: Duration,
    /// The figures, in order.
    pub figures: &'a [Figure],
    /// Lines about the run as a whole (scaling, SHA-NI, caveats).
    pub preamble: &'a [String],
}

/// Renders the Markdown page.
pub fn render(r: &Report<'_>) -> String {
    let m = r.machine;
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(
        s,
        "Generated by `horace-bench`; every figure is measured against a baseline in the \
         same run, so the ratio matters more than the absolute time on a shared machine.\n"
    );
    let _ = writeln!(s, "Command: `{}`  ", r.command);
    let _ = writeln!(s, "Size: {}  ", r.size);
    let _ = writeln!(
        s,
        "Run: {} UTC, {:.0} s in all\n",
        r.started,
        r.took.as_secs_f64()
    );
    let _ = writeln!(s, "## Machine\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| cores (nproc) | {} |", m.cores);
    let _ = writeln!(
        s,
        "| CPU | {} (sha_ni: {}) |",
        m.cpu,
        if m.sha_ni { "yes" } else { "no" }
    );
    let _ = writeln!(s, "| memory | {} MiB |", count(m.mem_mib));
    let _ = writeln!(s, "| kernel | {} |", m.kernel);
    let _ = writeln!(s, "| filesystem of the data | {} |", m.filesystem);
    let _ = writeln!(s, "| load average at start | {} |\n", m.load);
    for p in r.preamble {
        let _ = writeln!(s, "- {p}");
    }
    let _ = writeln!(s, "\n## Summary\n");
    let _ = writeln!(
        s,
        "| figure | Horace | baseline (same run) | ratio | target | result |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for f in r.figures {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            f.name,
            f.value,
            f.baseline,
            f.ratio,
            f.target,
            f.verdict()
        );
    }
    let _ = writeln!(s, "\n## Details\n");
    for f in r.figures {
        let _ = writeln!(s, "### {} — {}\n", f.name, f.verdict());
        for n in &f.notes {
            let _ = writeln!(s, "- {n}");
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "## Analysis\n\nWhat dominates each figure, what was changed to meet the targets, and \
         what is left: [benchmarks-analysis.md](benchmarks-analysis.md) (written by hand; \
         this page is generated)."
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_groups_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }
}
