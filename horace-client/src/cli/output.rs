//! Printing answers: aligned tables for people, JSON (`--json`) for scripts.

use std::io::{self, BufWriter, Stdout, Write};

use horace_client::*;
use serde::Serialize;

/// Where answers go.
pub struct Out {
    json: bool,
    w: BufWriter<Stdout>,
}

/// A UTC time from unix nanoseconds.
fn time(ns: i64) -> String {
    if ns == 0 {
        return "-".into();
    }
    chrono::DateTime::from_timestamp(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
    .unwrap_or_else(|| ns.to_string())
}

/// Bytes in a short human form.
fn size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_else(|| "-".into())
}

/// Prints rows with columns padded to the widest cell (the last column is not padded).
fn table(w: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    // Escaped before measuring, so the columns line up with what is printed.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| super::escape(c).into_owned()).collect())
        .collect();
    let rows = &rows[..];
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let head: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    for r in std::iter::once(&head).chain(rows) {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<width$}  ", width = widths[i]));
            }
        }
        super::line(w, line.trim_end())?;
    }
    Ok(())
}

impl Out {
    /// Output to stdout, as JSON or tables.
    pub fn new(json: bool) -> Self {
        Self {
            json,
            w: BufWriter::new(io::stdout()),
        }
    }

    fn json<T: Serialize + ?Sized>(&mut self, v: &T) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut self.w, v)?;
        self.w.write_all(b"\n")
    }

    /// Flushes stdout.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    /// A search page.
    pub fn search(&mut self, r: &SearchResult) -> io::Result<()> {
        if self.json {
            return self.json(r);
        }
        // A search by content lists, for each file, the versions that held it.
        let by_content = r.files.iter().any(|f| !f.matched_versions.is_empty());
        let rows: Vec<Vec<String>> = r
            .files
            .iter()
            .map(|f| {
                let mut row = vec![
                    format!("#{}", f.id),
                    f.status.as_str().into(),
                    size(f.size),
                    opt(&f.current_version),
                    time(f.updated_ns),
                    f.tags.join(","),
                ];
                if by_content {
                    let matched = f
                        .matched_versions
                        .iter()
                        .map(|v| format!("v{} {}", v.version, time(v.cataloged_ns)));
                    row.push(matched.collect::<Vec<_>>().join(", "));
                }
                row.push(f.path.clone());
                row
            })
            .collect();
        if !rows.is_empty() {
            let mut head = vec!["ID", "STATUS", "SIZE", "VER", "UPDATED (UTC)", "TAGS"];
            if by_content {
                head.push("MATCHING VERSIONS (UTC)");
            }
            head.push("PATH");
            table(&mut self.w, &head, &rows)?;
        }
        let count = match (r.files.len(), r.total) {
            // --limit 0 (only the total), or an --offset past the end.
            (0, 1) => "1 matching file, none listed".to_string(),
            (0, total) if total > 0 => format!("{total} matching files, none listed"),
            (shown, total) => format!("{shown} of {total} files"),
        };
        super::line(&mut self.w, &count)
    }

    /// One file.
    pub fn info(&mut self, i: &FileInfo) -> io::Result<()> {
        if self.json {
            return self.json(i);
        }
        let f = &i.file;
        let w = &mut self.w;
        for (k, v) in [
            ("path", f.path.clone()),
            ("id", format!("#{}", f.id)),
            ("status", f.status.as_str().into()),
            ("owner", f.owner.clone()),
            ("mime", opt(&f.mime)),
            ("size", format!("{} ({} bytes)", size(f.size), f.size)),
            ("version", opt(&f.current_version)),
            ("sha256", opt(&f.sha256)),
            ("created", time(f.created_ns)),
            ("updated", time(f.updated_ns)),
            (
                "deleted",
                i.deleted_ns.map(time).unwrap_or_else(|| "-".into()),
            ),
            ("purpose", opt(&i.purpose)),
            ("correlation", opt(&i.correlation_id)),
            ("tags", f.tags.join(", ")),
            ("collections", i.collections.join(", ")),
        ] {
            super::line(w, &format!("{k:<12} {v}"))?;
        }
        super::line(w, "")?;
        self.versions(&i.versions)?;
        if !i.events.is_empty() {
            super::line(&mut self.w, "")?;
            let rows: Vec<Vec<String>> = i
                .events
                .iter()
                .map(|e| {
                    let what = match (&e.old_path, &e.new_path) {
                        (Some(o), Some(n)) => format!("{o} -> {n}"),
                        (None, Some(p)) | (Some(p), None) => p.clone(),
                        (None, None) => String::new(),
                    };
                    vec![time(e.at_ns), e.kind.clone(), opt(&e.version), what]
                })
                .collect();
            table(&mut self.w, &["WHEN (UTC)", "EVENT", "VER", "PATH"], &rows)?;
        }
        Ok(())
    }

    /// A version list.
    pub fn versions(&mut self, v: &[VersionInfo]) -> io::Result<()> {
        if self.json {
            return self.json(v);
        }
        let rows: Vec<Vec<String>> = v
            .iter()
            .map(|v| {
                vec![
                    v.version.to_string(),
                    time(v.cataloged_ns),
                    size(v.size),
                    if v.content_stored {
                        "yes".into()
                    } else {
                        "pruned".into()
                    },
                    v.restored_from
                        .map(|r| format!("v{r}"))
                        .unwrap_or_else(|| "-".into()),
                    v.sha256
                        .as_deref()
                        .map_or_else(|| "(hidden)".into(), |s| s.chars().take(16).collect()),
                    v.path.clone(),
                ]
            })
            .collect();
        table(
            &mut self.w,
            &[
                "VER",
                "CATALOGED (UTC)",
                "SIZE",
                "STORED",
                "RESTORED",
                "SHA256",
                "PATH",
            ],
            &rows,
        )
    }

    /// A restore.
    pub fn restore(&mut self, r: &RestoreResult) -> io::Result<()> {
        if self.json {
            return self.json(r);
        }
        super::line(
            &mut self.w,
            &format!(
                "restored #{} to version {} as new version {}",
                r.file_id, r.restored_from, r.new_version
            ),
        )
    }

    /// Collections.
    pub fn collections(&mut self, c: &[CollectionInfo]) -> io::Result<()> {
        if self.json {
            return self.json(c);
        }
        let rows: Vec<Vec<String>> = c
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.members.to_string(),
                    time(c.created_ns),
                    opt(&c.description),
                ]
            })
            .collect();
        table(
            &mut self.w,
            &["NAME", "FILES", "CREATED (UTC)", "DESCRIPTION"],
            &rows,
        )
    }

    /// A count of changed items.
    pub fn count(&mut self, what: &str, n: u64) -> io::Result<()> {
        if self.json {
            return self.json(&serde_json::json!({ what: n }));
        }
        super::line(&mut self.w, &format!("{what} {n}"))
    }

    /// A call with no answer.
    pub fn done(&mut self, what: &str) -> io::Result<()> {
        if self.json {
            return self.json(&serde_json::json!({ "ok": what }));
        }
        super::line(&mut self.w, what)
    }

    /// A sync's answer: `synced`, or what is not cataloged and why.
    pub fn sync(&mut self, r: &SyncReport) -> io::Result<()> {
        if self.json {
            return self.json(r);
        }
        if r.is_synced() {
            return super::line(&mut self.w, "synced");
        }
        for m in &r.missing {
            let path = if m.path.is_empty() { "-" } else { &m.path };
            super::line(
                &mut self.w,
                &format!("not cataloged  {}  {path}  {}", m.why.as_str(), m.detail),
            )?;
        }
        if r.more > 0 {
            super::line(&mut self.w, &format!("… and {} more", r.more))?;
        }
        Ok(())
    }

    /// Duplicate groups.
    pub fn duplicates(&mut self, d: &DuplicatesResult) -> io::Result<()> {
        if self.json {
            return self.json(d);
        }
        for g in &d.groups {
            super::line(
                &mut self.w,
                &format!("{} × {} ({})", g.count, size(g.size), g.sha256),
            )?;
            for f in &g.files {
                super::line(
                    &mut self.w,
                    &format!("  #{} {}", f.id, super::escape(&f.path)),
                )?;
            }
        }
        super::line(
            &mut self.w,
            &format!("{} of {} groups", d.groups.len(), d.total_groups),
        )
    }

    /// Snapshots.
    pub fn snapshots(&mut self, s: &[SnapshotEntry]) -> io::Result<()> {
        if self.json {
            return self.json(s);
        }
        let rows: Vec<Vec<String>> = s
            .iter()
            .map(|s| {
                vec![
                    time(s.created_ns),
                    opt(&s.label),
                    size(s.used),
                    s.name.clone(),
                ]
            })
            .collect();
        table(
            &mut self.w,
            &["CREATED (UTC)", "LABEL", "USED", "NAME"],
            &rows,
        )
    }

    /// A snapshot plan: one row per action, then the time and any pruning refusal.
    pub fn snapshot_plan(&mut self, p: &SnapshotPlan) -> io::Result<()> {
        if self.json {
            return self.json(p);
        }
        let rows: Vec<Vec<String>> = p
            .create
            .iter()
            .map(|label| vec!["create".into(), label.clone(), format!("{}@…", p.dataset)])
            .chain(p.destroy.iter().map(|n| {
                let label = n.rsplit_once('_').map_or("-", |(_, l)| l);
                vec!["destroy".into(), label.to_string(), n.clone()]
            }))
            .collect();
        table(&mut self.w, &["ACTION", "LABEL", "SNAPSHOT"], &rows)?;
        let at = time(p.now_ns);
        super::line(
            &mut self.w,
            &format!(
                "{} to create, {} to destroy, if a tick ran at {at} UTC",
                p.create.len(),
                p.destroy.len()
            ),
        )?;
        if let Some(why) = &p.prune_refused {
            super::line(&mut self.w, &format!("pruning refused: {why}"))?;
        }
        Ok(())
    }

    /// Status.
    pub fn status(&mut self, s: &StatusReport) -> io::Result<()> {
        if self.json {
            return self.json(s);
        }
        let scan = s.last_scan.as_ref().map(|l| {
            format!(
                "{} at {}: {} seen, {} hashed, {} deleted",
                l.reason,
                time(l.started_ns),
                l.files_seen,
                l.files_hashed,
                l.files_deleted
            )
        });
        let zfsd = if !s.snapshots_enabled {
            "snapshots off".to_string()
        } else if s.zfsd_reachable {
            "reachable".into()
        } else {
            format!(
                "unreachable{}",
                s.zfsd_error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )
        };
        for (k, v) in [
            ("version", s.version.clone()),
            ("ready", s.ready.to_string()),
            (
                "files",
                format!(
                    "{} active, {} archived, {} deleted",
                    s.files_active, s.files_archived, s.files_deleted
                ),
            ),
            (
                "bytes",
                format!(
                    "{} active, {} in the store",
                    size(s.bytes_active),
                    size(s.bytes_stored)
                ),
            ),
            (
                "versions",
                format!("{} ({} with content stored)", s.versions, s.versions_stored),
            ),
            ("collections", s.collections.to_string()),
            (
                "queue",
                format!("{} waiting, last lag {} µs", s.queue_depth, s.event_lag_us),
            ),
            (
                "since start",
                format!(
                    "{} versions cataloged, {} files hashed",
                    s.versions_cataloged, s.files_hashed
                ),
            ),
            (
                "recrawls",
                format!(
                    "{} ({} overflows, {} watch failures)",
                    s.recrawls, s.overflows, s.watch_failures
                ),
            ),
            (
                "lease fallbacks",
                format!("{} saves pinned without a read lease", s.lease_fallbacks),
            ),
            ("last scan", scan.unwrap_or_else(|| "-".into())),
            ("zfsd", zfsd),
            (
                "snapshots",
                format!(
                    "{} (last taken {})",
                    s.snapshots,
                    s.last_snapshot_ns.map_or_else(|| "-".into(), time)
                ),
            ),
            (
                "last backup",
                s.last_backup_ns.map_or_else(|| "-".into(), time),
            ),
            (
                "prune",
                s.prune_refused.clone().unwrap_or_else(|| "ok".into()),
            ),
            (
                "store gc",
                s.collection_held.as_deref().map_or_else(
                    || "ok".into(),
                    |why| format!("held: {}", super::escape(why)),
                ),
            ),
            (
                "content not stored",
                match s.not_stored.first() {
                    None => "none".into(),
                    Some(last) => format!(
                        "{} versions cataloged without content; last: {}: {}",
                        s.versions_not_stored,
                        super::escape(&last.path),
                        super::escape(&last.cause)
                    ),
                },
            ),
            (
                "store objects",
                if s.damaged_objects == 0 {
                    "ok".into()
                } else {
                    format!(
                        "{} damaged (in objects/damaged; healed when saved again)",
                        s.damaged_objects
                    )
                },
            ),
            ("failures", {
                let total = s.failures_total.max(s.failures.len() as u64);
                if total > s.failures.len() as u64 {
                    format!("{total} (the last {} below)", s.failures.len())
                } else {
                    total.to_string()
                }
            }),
        ] {
            super::line(&mut self.w, &format!("{k:<12} {v}"))?;
        }
        for f in &s.failures {
            super::line(
                &mut self.w,
                &format!("  {}: {}", super::escape(&f.path), super::escape(&f.cause)),
            )?;
        }
        Ok(())
    }
}
