//! Whether `files_root` and `metadata_dir` overlap, judged on the paths they really name:
//! symlinks are resolved for the part of each path that exists (`canonicalize` of its
//! longest existing ancestor) and `.`/`..` are removed lexically from the rest. A catalog
//! inside the tree it catalogs would be cataloged as tenant files (and writable by
//! tenants); a tree inside the metadata directory would let tenants reach the store.

use std::path::{Component, Path, PathBuf};

/// Which way two directories overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// `metadata_dir` is `files_root` or lies beneath it.
    MetadataInFiles,
    /// `files_root` lies beneath `metadata_dir`.
    FilesInMetadata,
}

impl std::fmt::Display for Nesting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Nesting::MetadataInFiles => "metadata_dir is inside files_root",
            Nesting::FilesInMetadata => "files_root is inside metadata_dir",
        })
    }
}

/// The overlap of `files_root` and `metadata_dir` after resolving both, if any, with the
/// two resolved paths.
pub fn nesting(files_root: &Path, metadata_dir: &Path) -> Option<(Nesting, PathBuf, PathBuf)> {
    let (f, m) = (resolve(files_root), resolve(metadata_dir));
    let found = if m.starts_with(&f) {
        Some(Nesting::MetadataInFiles)
    } else if f.starts_with(&m) {
        Some(Nesting::FilesInMetadata)
    } else {
        None
    };
    found.map(|n| (n, f, m))
}

/// `path` (absolute) resolved one component at a time, as the kernel would: each prefix
/// that exists is canonicalized (symlinks followed), so a `..` after a link climbs from the
/// link's target; past the first missing component `.` and `..` are applied lexically.
pub fn resolve(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => {
                let next = out.join(name);
                out = std::fs::canonicalize(&next).unwrap_or(next);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_dotdot_is_seen_through() {
        let n = nesting(Path::new("/nx-a/files"), Path::new("/nx-a/x/../files/meta"));
        assert_eq!(n.map(|n| n.0), Some(Nesting::MetadataInFiles));
        let n = nesting(Path::new("/nx-a/m/./f"), Path::new("/nx-a/m"));
        assert_eq!(n.map(|n| n.0), Some(Nesting::FilesInMetadata));
        assert!(nesting(Path::new("/nx-a/files"), Path::new("/nx-a/files2")).is_none());
    }

    #[test]
    fn symlinks_are_resolved_both_ways() {
        let d = tempfile::tempdir().unwrap();
        let files = d.path().join("files");
        std::fs::create_dir(&files).unwrap();
        std::fs::create_dir(files.join("sub")).unwrap();
        // A link outside the tree that points into it, with a missing tail.
        std::os::unix::fs::symlink(files.join("sub"), d.path().join("meta")).unwrap();
        let n = nesting(&files, &d.path().join("meta/catalog"));
        assert_eq!(n.map(|n| n.0), Some(Nesting::MetadataInFiles));
        // files_root given through a link into metadata_dir.
        let meta = d.path().join("realmeta");
        std::fs::create_dir_all(meta.join("t")).unwrap();
        std::os::unix::fs::symlink(meta.join("t"), d.path().join("tree")).unwrap();
        let n = nesting(&d.path().join("tree"), &meta);
        assert_eq!(n.map(|n| n.0), Some(Nesting::FilesInMetadata));
        // `..` after a link climbs from the link's target, as the kernel does.
        std::os::unix::fs::symlink(files.join("sub"), d.path().join("l")).unwrap();
        let n = nesting(&files, &d.path().join("l/../m2"));
        assert_eq!(n.map(|n| n.0), Some(Nesting::MetadataInFiles));
        assert!(nesting(&files, &meta).is_none());
    }

    #[test]
    fn config_refuses_metadata_through_a_link_or_dotdot() {
        use crate::config::{Config, ConfigError};
        let d = tempfile::tempdir().unwrap();
        let files = d.path().join("files");
        std::fs::create_dir(&files).unwrap();
        std::os::unix::fs::symlink(&files, d.path().join("link")).unwrap();
        let root = d.path().display();
        for meta in [
            format!("{root}/link/meta"),
            format!("{root}/x/../files/meta"),
        ] {
            let text = format!("files_root = \"{root}/files\"\nmetadata_dir = \"{meta}\"\n");
            match Config::parse(&text) {
                Err(ConfigError::Nested { nesting, .. }) => {
                    assert_eq!(nesting, Nesting::MetadataInFiles, "{meta}")
                }
                other => panic!("{meta}: accepted or wrong error: {other:?}"),
            }
        }
        let text = format!("files_root = \"{root}/link/t\"\nmetadata_dir = \"{root}/files\"\n");
        assert!(matches!(
            Config::parse(&text),
            Err(ConfigError::Nested {
                nesting: Nesting::FilesInMetadata,
                ..
            })
        ));
    }
}
