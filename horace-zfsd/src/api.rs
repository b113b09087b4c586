//! D-Bus API of horace-zfsd: the bus name, object path and interface, the `#[proxy]`
//! trait clients (the watcher) call, the wire types, the named errors, and the ZFS name
//! validator that both sides use.
//!
//! Depends on zbus and serde only, so a client never links the daemon.
//!
//! **Invariant:** no name that [`validate_dataset`] or [`validate_snapshot`] accepts can
//! be read by `zfs` as an option (every component begins with an ASCII letter or digit),
//! and none contains a character a shell or a log line would treat specially.

use std::time::{SystemTime, UNIX_EPOCH};

/// Well-known bus name the daemon owns.
pub const BUS_NAME: &str = "org.horace.Zfs1";
/// Object path of the one object the daemon serves.
pub const OBJECT_PATH: &str = "/org/horace/Zfs1";
/// Interface name of that object.
pub const INTERFACE: &str = "org.horace.Zfs1";
/// Prefix of every snapshot Horace makes; only these can be destroyed through the bus.
pub const SNAPSHOT_PREFIX: &str = "horace_";

/// Longest name (dataset or `dataset@snapshot`) accepted, in bytes (ZFS's own limit).
pub const MAX_NAME_LEN: usize = 255;
/// Longest label accepted by `CreateSnapshot`.
pub const MAX_LABEL_LEN: usize = 32;
/// Most names one `DestroySnapshots` call may carry.
pub const MAX_DESTROY_BATCH: usize = 1000;

/// One snapshot as `ListSnapshots` returns it (D-Bus signature `(stt)`).
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, zbus::zvariant::Type,
)]
pub struct SnapshotInfo {
    /// Full name, `dataset@snapshot`.
    pub name: String,
    /// Creation time, seconds since the Unix epoch (from ZFS, not from the name).
    pub creation: u64,
    /// Bytes used by the snapshot alone.
    pub used: u64,
}

/// The `org.horace.Zfs1` interface as a client sees it; generates [`Zfs1Proxy`].
#[zbus::proxy(
    interface = "org.horace.Zfs1",
    default_service = "org.horace.Zfs1",
    default_path = "/org/horace/Zfs1"
)]
pub trait Zfs1 {
    /// Snapshots of `dataset` (the root or under it), oldest first.
    fn list_snapshots(&self, dataset: &str) -> zbus::Result<Vec<SnapshotInfo>>;

    /// Creates `dataset@horace_<UTC time>_<label>` and returns its full name.
    fn create_snapshot(&self, dataset: &str, label: &str) -> zbus::Result<String>;

    /// Destroys the named `horace_` snapshots of `dataset` (full names `dataset@snap`),
    /// all or none; returns what was (or, with `dry_run`, would be) destroyed.
    fn destroy_snapshots(
        &self,
        dataset: &str,
        names: &[&str],
        dry_run: bool,
    ) -> zbus::Result<Vec<String>>;

    /// Rolls the snapshot's dataset back to it; refuses when newer snapshots exist unless
    /// `destroy_newer`. Returns the snapshots destroyed (or that would be).
    fn rollback(
        &self,
        snapshot: &str,
        destroy_newer: bool,
        dry_run: bool,
    ) -> zbus::Result<Vec<String>>;

    /// The rollback serial of `dataset`: grows with every rollback of it through zfsd once
    /// that rollback is over (0: never). A changed value means the dataset may have gone
    /// back, whether or not `RolledBack` was seen.
    fn rollback_serial(&self, dataset: &str) -> zbus::Result<u64>;

    /// The configured root dataset(s), comma separated.
    #[zbus(property)]
    fn root(&self) -> zbus::Result<String>;

    /// The daemon's version.
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;

    /// A snapshot was created (full name).
    #[zbus(signal)]
    fn snapshot_created(&self, name: String) -> zbus::Result<()>;

    /// Snapshots were destroyed (full names).
    #[zbus(signal)]
    fn snapshots_destroyed(&self, names: Vec<String>) -> zbus::Result<()>;

    /// A dataset was rolled back to this snapshot (full name).
    #[zbus(signal)]
    fn rolled_back(&self, snapshot: String) -> zbus::Result<()>;
}

/// Named D-Bus errors `org.horace.Zfs1.Error.<Name>`; each message says what to do.
/// (Not `Eq`: `zbus::Error` is only `PartialEq`.)
#[derive(Debug, Clone, PartialEq, zbus::DBusError)]
#[zbus(prefix = "org.horace.Zfs1.Error")]
pub enum ZfsError {
    /// A transport or protocol error (never sent by the daemon as such).
    #[zbus(error)]
    ZBus(zbus::Error),
    /// A dataset, snapshot or label does not follow the grammar.
    InvalidName(String),
    /// A dataset is not the configured root or under it.
    OutsideRoot(String),
    /// A snapshot was not made by Horace (no `horace_` prefix) and may not be destroyed.
    NotManaged(String),
    /// A dataset or snapshot does not exist.
    NotFound(String),
    /// ZFS refused because something holds or depends on it, or rollback needs consent.
    Busy(String),
    /// The caller is not allowed to call this method.
    PermissionDenied(String),
    /// `zfs` failed for another reason; the message carries its stderr.
    ZfsFailed(String),
    /// `zfs` did not finish in time and was killed.
    Timeout(String),
}

fn invalid(name: &str, why: &str) -> ZfsError {
    ZfsError::InvalidName(format!(
        "{:?} is not a valid ZFS name: {why}; use letters, digits and _ . : - or space, \
         each component starting with a letter or digit",
        name
    ))
}

fn check_component(full: &str, comp: &str, what: &str) -> Result<(), ZfsError> {
    let Some(first) = comp.chars().next() else {
        return Err(invalid(full, &format!("empty {what} component")));
    };
    if !first.is_ascii_alphanumeric() {
        return Err(invalid(
            full,
            &format!("{what} component {comp:?} must start with a letter or digit"),
        ));
    }
    if let Some(bad) = comp
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.: -".contains(*c)))
    {
        return Err(invalid(full, &format!("character {bad:?} is not allowed")));
    }
    Ok(())
}

fn check_whole(name: &str) -> Result<(), ZfsError> {
    if name.is_empty() {
        return Err(invalid(name, "the name is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ZfsError::InvalidName(format!(
            "name of {} bytes is longer than {MAX_NAME_LEN}; use a shorter name",
            name.len()
        )));
    }
    if name.contains("..") {
        return Err(invalid(name, "\"..\" is not allowed"));
    }
    Ok(())
}

/// Checks a dataset name (`pool/a/b`) against the ZFS grammar (stricter than `zfs`).
pub fn validate_dataset(name: &str) -> Result<(), ZfsError> {
    check_whole(name)?;
    if name.contains('@') {
        return Err(invalid(name, "a dataset name has no '@'"));
    }
    name.split('/')
        .try_for_each(|c| check_component(name, c, "dataset"))
}

/// Checks a full snapshot name `dataset@snap` and returns `(dataset, snap)`.
pub fn validate_snapshot(full: &str) -> Result<(&str, &str), ZfsError> {
    check_whole(full)?;
    let mut parts = full.split('@');
    let (Some(dataset), Some(snap), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid(
            full,
            "a snapshot name has exactly one '@' (dataset@snapshot)",
        ));
    };
    validate_dataset(dataset)?;
    if snap.contains('/') {
        return Err(invalid(full, "the snapshot part has no '/'"));
    }
    check_component(full, snap, "snapshot")?;
    Ok((dataset, snap))
}

/// Checks a snapshot label: `[a-z0-9-]{1,32}`.
pub fn validate_label(label: &str) -> Result<(), ZfsError> {
    let ok = (1..=MAX_LABEL_LEN).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ZfsError::InvalidName(format!(
            "label {label:?} is not valid; use 1 to {MAX_LABEL_LEN} characters of a-z, 0-9 and -"
        )))
    }
}

/// Whether `dataset` is `root` or below it, component-wise (`tank/files2` is not under
/// `tank/files`). Both names should already be validated.
pub fn is_under_root(dataset: &str, root: &str) -> bool {
    dataset == root
        || (dataset.len() > root.len()
            && dataset.starts_with(root)
            && dataset.as_bytes()[root.len()] == b'/')
}

/// The snapshot part of a Horace snapshot: `horace_<YYYY-MM-DDTHH:MM:SSZ>_<label>` (UTC).
pub fn snapshot_name(label: &str, at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{SNAPSHOT_PREFIX}{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z_{label}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Parses the part after '@' of a Horace snapshot into (unix seconds, label); `None` for
/// any other name.
pub fn parse_managed(snap: &str) -> Option<(u64, &str)> {
    let rest = snap.strip_prefix(SNAPSHOT_PREFIX)?;
    let (ts, label) = (rest.get(..20)?, rest.get(20..)?);
    let label = label.strip_prefix('_')?;
    validate_label(label).ok()?;
    let b = ts.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:ddZ";
    let digits_ok = shape.iter().zip(b).all(|(s, c)| {
        if *s == b'd' {
            c.is_ascii_digit()
        } else {
            s == c
        }
    });
    if !digits_ok {
        return None;
    }
    let num = |r: std::ops::Range<usize>| ts[r].parse::<u32>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59
    {
        return None;
    }
    let days = days_from_civil(y as i64, mo, d);
    let secs = days * 86_400 + (h * 3600 + mi * 60 + s) as i64;
    u64::try_from(secs).ok().map(|s| (s, label))
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's civil_from_days.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) to days since 1970-01-01; Howard Hinnant's days_from_civil.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
