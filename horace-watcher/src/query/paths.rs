//! Turning a path from a request into the catalog's escaped relative form.
//!
//! A request path is the escaped text form (see `crate::path`), relative to the files root
//! or absolute under the container prefix (or the files root itself). Empty paths, NUL
//! bytes, malformed escapes, `..` components and absolute paths elsewhere are refused with
//! [`QueryError::InvalidPath`]; `.` components and repeated slashes are dropped.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use horace_client::QueryError;

use crate::path::{escape_bytes, unescape_bytes};

/// Longest path a request may carry, in bytes (Linux PATH_MAX).
pub const MAX_PATH_LEN: usize = 4096;

fn invalid(path: &str, reason: &str) -> QueryError {
    QueryError::InvalidPath {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

/// Normalizes a request path to the escaped form stored in `files.path`.
///
/// `prefixes` are the absolute directories a caller may see the files root as
/// (`container_prefix` and `files_root`).
pub fn normalize(input: &str, prefixes: &[&Path]) -> Result<String, QueryError> {
    if input.len() > MAX_PATH_LEN {
        return Err(QueryError::TooLarge {
            what: "path".into(),
            limit: MAX_PATH_LEN as u64,
        });
    }
    let bytes = unescape_bytes(input).ok_or_else(|| {
        invalid(
            input,
            "malformed escape (use \\\\ for a backslash, \\xNN for a raw byte)",
        )
    })?;
    if bytes.is_empty() {
        return Err(invalid(input, "empty"));
    }
    if bytes.contains(&0) {
        return Err(invalid(input, "contains a NUL byte"));
    }
    let path = Path::new(OsStr::from_bytes(&bytes));
    let rel: &Path = if path.is_absolute() {
        prefixes
            .iter()
            .find_map(|p| path.strip_prefix(p).ok())
            .ok_or_else(|| invalid(input, "absolute path outside the files root"))?
    } else {
        path
    };
    let mut out = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir => return Err(invalid(input, "contains `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid(input, "absolute path outside the files root"))
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(invalid(input, "names the files root itself, not a file"));
    }
    Ok(escape_bytes(out.as_os_str().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PREFIXES: &[&str] = &["/mnt/irina_storage/files", "/tank/files"];

    fn norm(s: &str) -> Result<String, QueryError> {
        let p: Vec<&Path> = PREFIXES.iter().map(Path::new).collect();
        normalize(s, &p)
    }

    #[test]
    fn accepts_relative_and_prefixed_paths() {
        assert_eq!(norm("svc/a.txt").unwrap(), "svc/a.txt");
        assert_eq!(norm("./svc//a.txt").unwrap(), "svc/a.txt");
        assert_eq!(norm("svc/./a.txt/").unwrap(), "svc/a.txt");
        assert_eq!(
            norm("/mnt/irina_storage/files/svc/a.txt").unwrap(),
            "svc/a.txt"
        );
        assert_eq!(norm("/tank/files/svc/a.txt").unwrap(), "svc/a.txt");
        assert_eq!(norm("a\\\\b").unwrap(), "a\\\\b");
        assert_eq!(norm("bad\\xffname").unwrap(), "bad\\xffname");
    }

    #[test]
    fn refuses_bad_paths() {
        for bad in [
            "",
            ".",
            "./",
            "..",
            "a/../b",
            "../etc/passwd",
            "a/..",
            "/etc/passwd",
            "/mnt/irina_storage/filesX/a",
            "/mnt/irina_storage/files",
            "/mnt/irina_storage/files/../x",
            "a\0b",
            "a\\x00b",
            "a\\q",
            "a\\",
        ] {
            match norm(bad) {
                Err(QueryError::InvalidPath { .. }) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert!(matches!(
            norm(&"a".repeat(5000)),
            Err(QueryError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn never_accepts_dotdot_nul_or_outside(parts in proptest::collection::vec("[a-z.\\\\/\0x0-9]{0,6}", 0..6), abs in any::<bool>()) {
            let mut s = parts.join("/");
            if abs { s.insert(0, '/'); }
            if let Ok(out) = norm(&s) {
                let bytes = unescape_bytes(&out).unwrap();
                let p = Path::new(OsStr::from_bytes(&bytes));
                prop_assert!(!bytes.contains(&0));
                prop_assert!(!bytes.is_empty());
                prop_assert!(p.is_relative());
                prop_assert!(p.components().all(|c| matches!(c, Component::Normal(_))));
                // Idempotent: the output is itself a valid request path.
                prop_assert_eq!(norm(&out).unwrap(), out.clone());
                // An absolute input must have been under a prefix.
                if abs {
                    prop_assert!(PREFIXES.iter().any(|p| Path::new(&s).starts_with(p)), "{:?} gave {:?}", s, out);
                }
            }
        }

        #[test]
        fn prefixed_paths_strip_to_relative(rel in "[a-z]{1,5}(/[a-z0-9]{1,5}){0,3}") {
            prop_assert_eq!(norm(&format!("/tank/files/{rel}")).unwrap(), rel.clone());
            prop_assert_eq!(norm(&rel).unwrap(), rel);
        }
    }
}
