//! Which filesystem a directory is on, in terms that survive a remount: the mount's
//! filesystem type and source (on ZFS the dataset name) from `/proc/self/mountinfo`, the
//! `statfs` filesystem id, and where the directory sits inside its filesystem.
//!
//! Measured on zfs-fuse (issue 13 item 3): `f_fsid` is 0 (FUSE), `st_dev` and the mount id
//! are allocated per mount (they happened to come back equal after a remount, which
//! nothing promises), the `guid` property needs `zfs`; the mountinfo source is the dataset
//! name and is what stays. On OpenZFS `f_fsid` comes from the dataset's guid, on ext4,
//! XFS and btrfs from the filesystem UUID, so where it is not 0 it is compared too, and a
//! block device renumbered at boot (`/dev/sdb1` → `/dev/sdc1`) does not count as another
//! filesystem. `st_dev` is never compared.
//!
//! Where the directory sits inside its filesystem (the mount's root joined with the path
//! below its mount point) rather than the mount point itself, so that the same dataset
//! seen through systemd's `ReadWritePaths=` bind mount and seen directly compare equal,
//! while the directory beneath an unmounted dataset (`/srv/horace/files` on the root
//! filesystem instead of `/` of `tank/files`) does not.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What identifies the filesystem a directory is on (see the module doc for why these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsIdentity {
    /// The filesystem type as mountinfo names it: `zfs`, `fuse.zfs` (zfs-fuse), `ext4`.
    pub fs_type: String,
    /// The mount source: the dataset name on ZFS, a device or a name otherwise.
    pub source: String,
    /// `statfs` `f_fsid`, as one number; 0 where the filesystem reports none (FUSE).
    pub fsid: u64,
    /// Where the directory is inside its filesystem (`/` for a dataset's mountpoint).
    pub path_in_fs: PathBuf,
    /// Where that filesystem is mounted (for messages only; never compared).
    pub mount_point: PathBuf,
}

/// One line of `/proc/self/mountinfo`, unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountLine {
    /// Mount id (as `statx` reports it in `stx_mnt_id`).
    pub id: u64,
    /// `major:minor` of the filesystem's `st_dev`.
    pub dev: (u32, u32),
    /// The directory of the filesystem that is mounted (`/` unless a bind mount).
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Filesystem type.
    pub fs_type: String,
    /// Mount source.
    pub source: String,
}

/// Undoes mountinfo's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).filter(|d| {
            b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3'
        });
        match oct {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses one mountinfo line (`proc_pid_mountinfo(5)`): `id parent maj:min root point
/// options [optional…] - type source superoptions`.
pub fn parse_mountinfo_line(line: &str) -> Option<MountLine> {
    let mut f = line.split(' ');
    let id = f.next()?.parse().ok()?;
    let _parent = f.next()?;
    let (maj, min) = f.next()?.split_once(':')?;
    let dev = (maj.parse().ok()?, min.parse().ok()?);
    let root = PathBuf::from(unescape(f.next()?));
    let mount_point = PathBuf::from(unescape(f.next()?));
    let _options = f.next()?;
    f.by_ref().find(|x| *x == "-")?;
    let fs_type = unescape(f.next()?);
    let source = unescape(f.next()?);
    Some(MountLine {
        id,
        dev,
        root,
        mount_point,
        fs_type,
        source,
    })
}

/// The mount that holds `canonical` (an absolute path without symlinks): the one with
/// `mnt_id` when the kernel reports it, else the last, deepest mount of device `dev`
/// whose mount point is a prefix of the path.
pub fn holding_mount<'a>(
    mounts: &'a [MountLine],
    canonical: &Path,
    mnt_id: Option<u64>,
    dev: (u32, u32),
) -> Option<&'a MountLine> {
    if let Some(m) = mnt_id.and_then(|id| mounts.iter().find(|m| m.id == id)) {
        return Some(m);
    }
    mounts
        .iter()
        .filter(|m| m.dev == dev && canonical.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.components().count())
}

impl FsIdentity {
    /// The identity of the filesystem `dir` is on, from mountinfo and `statfs` (nothing
    /// here needs privileges).
    pub fn of(dir: &Path) -> io::Result<Self> {
        let canonical = std::fs::canonicalize(dir)?;
        let md = std::fs::metadata(&canonical)?;
        let st = rustix::fs::statx(
            rustix::fs::CWD,
            &canonical,
            rustix::fs::AtFlags::empty(),
            rustix::fs::StatxFlags::MNT_ID,
        )
        .ok();
        let mnt_id = st
            .filter(|s| s.stx_mask & rustix::fs::StatxFlags::MNT_ID.bits() != 0)
            .map(|s| s.stx_mnt_id);
        let dev = (
            rustix::fs::major(md.dev()) as u32,
            rustix::fs::minor(md.dev()) as u32,
        );
        let text = std::fs::read_to_string("/proc/self/mountinfo")?;
        let mounts: Vec<MountLine> = text.lines().filter_map(parse_mountinfo_line).collect();
        let m = holding_mount(&mounts, &canonical, mnt_id, dev).ok_or_else(|| {
            io::Error::other(format!(
                "no mount in /proc/self/mountinfo holds {}",
                canonical.display()
            ))
        })?;
        let fs = rustix::fs::statfs(&canonical)?;
        // SAFETY: `__kernel_fsid_t` is two ints with no invalid bit patterns.
        let halves: [u32; 2] = unsafe { std::mem::transmute(fs.f_fsid) };
        let fsid = (u64::from(halves[0]) << 32) | u64::from(halves[1]);
        Ok(Self::from_parts(m, &canonical, fsid))
    }

    /// The identity of `canonical` held by mount `m` with filesystem id `fsid`.
    pub fn from_parts(m: &MountLine, canonical: &Path, fsid: u64) -> Self {
        let below = canonical
            .strip_prefix(&m.mount_point)
            .unwrap_or(Path::new(""));
        let path_in_fs = if below.as_os_str().is_empty() {
            m.root.clone()
        } else {
            m.root.join(below)
        };
        Self {
            fs_type: m.fs_type.clone(),
            source: m.source.clone(),
            fsid,
            path_in_fs,
            mount_point: m.mount_point.clone(),
        }
    }

    /// Whether this is a ZFS filesystem (OpenZFS or zfs-fuse), whose source is a dataset.
    pub fn is_zfs(&self) -> bool {
        self.fs_type == "zfs" || self.fs_type == "fuse.zfs"
    }

    /// The dataset, on ZFS.
    pub fn dataset(&self) -> Option<&str> {
        self.is_zfs().then_some(self.source.as_str())
    }

    /// For messages: `ZFS dataset tank/files (mounted at /srv/horace/files)`.
    pub fn describe(&self) -> String {
        let what = match self.dataset() {
            Some(ds) => format!("ZFS dataset {ds}"),
            None => format!("{} filesystem {}", self.fs_type, self.source),
        };
        let inside = if self.path_in_fs == Path::new("/") {
            String::new()
        } else {
            format!(", at {} inside it", self.path_in_fs.display())
        };
        format!("{what} (mounted at {}{inside})", self.mount_point.display())
    }

    /// Why `now` is not the filesystem `self` was recorded from, or `None` when it is.
    ///
    /// Type and place inside the filesystem must match. The source must match on ZFS
    /// (it is the dataset) and wherever either side has no filesystem id; elsewhere the
    /// id decides (a renumbered device keeps its UUID-derived id). Ids that both sides
    /// have must match.
    pub fn differs(&self, now: &FsIdentity) -> Option<String> {
        if self.fs_type != now.fs_type {
            return Some(format!(
                "the filesystem type was {}, is {}",
                self.fs_type, now.fs_type
            ));
        }
        if self.path_in_fs != now.path_in_fs {
            return Some(format!(
                "it was {} inside its filesystem, is {}",
                self.path_in_fs.display(),
                now.path_in_fs.display()
            ));
        }
        let source_decides = self.is_zfs() || self.fsid == 0 || now.fsid == 0;
        if source_decides && self.source != now.source {
            let what = if self.is_zfs() { "dataset" } else { "source" };
            return Some(format!("the {what} was {}, is {}", self.source, now.source));
        }
        if self.fsid != 0 && now.fsid != 0 && self.fsid != now.fsid {
            return Some(format!(
                "the filesystem id was {:016x}, is {:016x}",
                self.fsid, now.fsid
            ));
        }
        None
    }

    /// The catalog `meta` rows this identity is kept in, under `prefix`.
    pub fn to_meta(&self, prefix: &str) -> Vec<(String, String)> {
        vec![
            (format!("{prefix}.fs_type"), self.fs_type.clone()),
            (format!("{prefix}.source"), self.source.clone()),
            (format!("{prefix}.fsid"), format!("{:016x}", self.fsid)),
            (
                format!("{prefix}.path_in_fs"),
                self.path_in_fs.to_string_lossy().into_owned(),
            ),
            (
                format!("{prefix}.mount_point"),
                self.mount_point.to_string_lossy().into_owned(),
            ),
        ]
    }

    /// Reads an identity back from `meta` rows (`get(key)`); `None` unless all are there.
    pub fn from_meta(prefix: &str, get: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let key = |k: &str| get(&format!("{prefix}.{k}"));
        Some(Self {
            fs_type: key("fs_type")?,
            source: key("source")?,
            fsid: u64::from_str_radix(&key("fsid")?, 16).ok()?,
            path_in_fs: PathBuf::from(key("path_in_fs")?),
            mount_point: PathBuf::from(key("mount_point")?),
        })
    }
}

/// Whether `dir` holds no entry at all (the directory beneath an unmounted dataset).
pub fn is_empty_dir(dir: &Path) -> io::Result<bool> {
    Ok(std::fs::read_dir(dir)?.next().is_none())
}

#[cfg(test)]
mod tests;
