//! Unit tests of the identity comparison, on mountinfo lines recorded on zfs-fuse (this
//! machine), OpenZFS and ext4 hosts, and a systemd `ReadWritePaths=` bind mount.

use super::*;

/// zfs-fuse, recorded here: the pool's root dataset and the files dataset.
const ZFS_FUSE: &str = "\
45 27 0:40 / /tmp/hid-jgGE/mnt rw,relatime - fuse.zfs hidm21156 rw,user_id=0,group_id=0,default_permissions,allow_other
46 45 0:41 / /tmp/hid-jgGE/mnt/files rw,relatime - fuse.zfs hidm21156/files rw,user_id=0,group_id=0,default_permissions,allow_other";

/// An OpenZFS host: root on ext4, tank/files mounted at /srv/horace/files.
const OPENZFS: &str = "\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
97 22 0:52 / /srv/horace/files rw,noatime shared:52 - zfs tank/files rw,xattr,posixacl
98 22 0:53 / /srv/with\\040space rw,noatime shared:53 - zfs tank/with\\040space rw,xattr";

/// The same host seen from inside the watcher's unit: ProtectSystem=strict plus the
/// ReadWritePaths= bind mount of the dataset onto itself.
const SANDBOXED: &str = "\
301 300 259:2 / / ro,relatime master:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
340 301 0:52 / /srv/horace/files rw,noatime master:52 - zfs tank/files rw,xattr,posixacl";

/// That host with tank/files not mounted, in the unit: the bind mount is of the empty
/// directory on the root filesystem.
const SANDBOXED_UNMOUNTED: &str = "\
301 300 259:2 / / ro,relatime master:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
341 301 259:2 /srv/horace/files /srv/horace/files rw,relatime master:1 - ext4 /dev/nvme0n1p2 rw";

fn mounts(text: &str) -> Vec<MountLine> {
    text.lines()
        .map(|l| parse_mountinfo_line(l).unwrap())
        .collect()
}

/// The identity of `path` under `text`, the mount found by device (as without statx).
fn id(text: &str, path: &str, dev: (u32, u32), fsid: u64) -> FsIdentity {
    let ms = mounts(text);
    let m = holding_mount(&ms, Path::new(path), None, dev).expect("a holding mount");
    FsIdentity::from_parts(m, Path::new(path), fsid)
}

#[test]
fn mountinfo_lines_parse_with_optional_fields_and_escapes() {
    let ms = mounts(OPENZFS);
    assert_eq!(ms[1].id, 97);
    assert_eq!(ms[1].dev, (0, 52));
    assert_eq!(ms[1].fs_type, "zfs");
    assert_eq!(ms[1].source, "tank/files");
    assert_eq!(ms[2].mount_point, Path::new("/srv/with space"));
    assert_eq!(ms[2].source, "tank/with space");
    assert_eq!(mounts(ZFS_FUSE)[1].fs_type, "fuse.zfs");
    assert!(parse_mountinfo_line("garbage").is_none());
    assert!(parse_mountinfo_line("1 2 0:1 / /x rw no-separator").is_none());
}

#[test]
fn the_holding_mount_is_found_by_id_or_by_device_and_depth() {
    let ms = mounts(ZFS_FUSE);
    let p = Path::new("/tmp/hid-jgGE/mnt/files/sub");
    assert_eq!(holding_mount(&ms, p, Some(45), (0, 41)).unwrap().id, 45);
    assert_eq!(holding_mount(&ms, p, None, (0, 41)).unwrap().id, 46);
    assert_eq!(holding_mount(&ms, p, Some(999), (0, 41)).unwrap().id, 46);
    assert!(holding_mount(&ms, Path::new("/elsewhere"), None, (0, 41)).is_none());
}

#[test]
fn a_zfs_fuse_remount_is_the_same_filesystem() {
    let root = "/tmp/hid-jgGE/mnt/files";
    let before = id(ZFS_FUSE, root, (0, 41), 0);
    assert_eq!(before.dataset(), Some("hidm21156/files"));
    assert_eq!(before.path_in_fs, Path::new("/"));
    // Remounted: another device number and mount id, same dataset.
    let again = ZFS_FUSE.replace("46 45 0:41", "52 45 0:47");
    let after = id(&again, root, (0, 47), 0);
    assert_eq!(before.differs(&after), None);
}

#[test]
fn the_directory_beneath_an_unmounted_zfs_fuse_dataset_is_another() {
    let root = "/tmp/hid-jgGE/mnt/files";
    let before = id(ZFS_FUSE, root, (0, 41), 0);
    let unmounted = ZFS_FUSE.lines().next().unwrap();
    let after = id(unmounted, root, (0, 40), 0);
    assert_eq!(after.path_in_fs, Path::new("/files"));
    let why = before.differs(&after).expect("differs");
    assert!(why.contains("/files"), "{why}");
}

#[test]
fn another_dataset_at_the_same_mountpoint_is_another() {
    let root = "/tmp/hid-jgGE/mnt/files";
    let before = id(ZFS_FUSE, root, (0, 41), 0);
    let other = ZFS_FUSE.replace("hidm21156/files", "hidm21156/files2");
    let why = before.differs(&id(&other, root, (0, 41), 0)).unwrap();
    assert_eq!(why, "the dataset was hidm21156/files, is hidm21156/files2");
}

#[test]
fn openzfs_seen_directly_and_through_the_units_bind_mount_is_the_same() {
    let root = "/srv/horace/files";
    let direct = id(OPENZFS, root, (0, 52), 0x1234_5678_9abc_def0);
    let sandboxed = id(SANDBOXED, root, (0, 52), 0x1234_5678_9abc_def0);
    assert_eq!(direct.differs(&sandboxed), None);
    // A files_root below the dataset's mountpoint compares by its place in the dataset.
    let sub_direct = id(OPENZFS, "/srv/horace/files/tenants", (0, 52), 1);
    assert_eq!(sub_direct.path_in_fs, Path::new("/tenants"));
}

#[test]
fn openzfs_unmounted_in_the_unit_is_the_root_filesystem() {
    let root = "/srv/horace/files";
    let was = id(SANDBOXED, root, (0, 52), 0x1234_5678_9abc_def0);
    let now = id(SANDBOXED_UNMOUNTED, root, (259, 2), 0x0bad_cafe_0000_0001);
    assert_eq!(now.path_in_fs, Path::new("/srv/horace/files"));
    let why = was.differs(&now).unwrap();
    assert!(why.contains("ext4"), "{why}");
}

#[test]
fn a_renumbered_block_device_keeps_its_filesystem_id() {
    let a = "22 1 8:17 / /data rw - ext4 /dev/sdb1 rw";
    let b = "22 1 8:33 / /data rw - ext4 /dev/sdc1 rw";
    let was = id(a, "/data", (8, 17), 0xfeed);
    assert_eq!(was.differs(&id(b, "/data", (8, 33), 0xfeed)), None);
    let why = was.differs(&id(b, "/data", (8, 33), 0xbeef)).unwrap();
    assert!(why.contains("filesystem id"), "{why}");
}

#[test]
fn without_a_filesystem_id_the_source_decides() {
    let a = "30 1 0:30 / /data rw - tmpfs tmpfs rw";
    let again = "31 1 0:31 / /data rw - tmpfs tmpfs rw";
    let b = "31 1 0:31 / /data rw - tmpfs scratch rw";
    let was = id(a, "/data", (0, 30), 0);
    assert_eq!(was.differs(&id(again, "/data", (0, 31), 0)), None);
    assert!(was.differs(&id(b, "/data", (0, 31), 0)).is_some());
}

#[test]
fn zfs_compares_the_dataset_even_with_equal_ids() {
    let was = id(OPENZFS, "/srv/horace/files", (0, 52), 7);
    let renamed = OPENZFS.replace("tank/files", "tank/files-new");
    assert!(was
        .differs(&id(&renamed, "/srv/horace/files", (0, 52), 7))
        .is_some());
}

#[test]
fn identity_round_trips_through_meta_rows() {
    let was = id(OPENZFS, "/srv/with space", (0, 53), u64::MAX);
    let rows: std::collections::HashMap<String, String> =
        was.to_meta("files_root").into_iter().collect();
    let back = FsIdentity::from_meta("files_root", |k| rows.get(k).cloned()).unwrap();
    assert_eq!(back, was);
    assert!(FsIdentity::from_meta("other", |k| rows.get(k).cloned()).is_none());
    assert!(was.describe().contains("ZFS dataset tank/with space"));
}

#[test]
fn identity_of_a_real_directory_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let a = FsIdentity::of(dir.path()).unwrap();
    let b = FsIdentity::of(dir.path()).unwrap();
    assert_eq!(a.differs(&b), None);
    assert!(a.path_in_fs.is_absolute());
    assert!(is_empty_dir(dir.path()).unwrap());
    std::fs::write(dir.path().join("x"), b"x").unwrap();
    assert!(!is_empty_dir(dir.path()).unwrap());
}
