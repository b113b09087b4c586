//! Catalog paths: the reversible text form of a relative path, and the owner rule.
//!
//! Linux file names are bytes. The catalog and the wire protocol carry text, so a path is
//! stored *escaped*: valid UTF-8 as is, a backslash as `\\`, each byte of invalid UTF-8 as
//! `\xNN`. Every name round-trips exactly.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Escapes raw path bytes into the catalog's text form.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Escapes a relative path.
pub fn escape(path: &Path) -> String {
    escape_bytes(path.as_os_str().as_bytes())
}

/// Reverses [`escape_bytes`]; `None` for a malformed escape.
pub fn unescape_bytes(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1)? {
            b'\\' => {
                out.push(b'\\');
                i += 2;
            }
            b'x' => {
                let hex = std::str::from_utf8(bytes.get(i + 2..i + 4)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 4;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Reverses [`escape`].
pub fn unescape(text: &str) -> Option<PathBuf> {
    unescape_bytes(text).map(|b| PathBuf::from(OsString::from_vec(b)))
}

/// The owner of a file: the first component of its relative path (escaped), or `""` for
/// a file directly in the root.
pub fn owner_of(rel: &Path) -> String {
    let mut comps = rel.components();
    match (comps.next(), comps.next()) {
        (Some(first), Some(_)) => escape_bytes(OsStr::as_bytes(first.as_os_str())),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_any_bytes() {
        let cases: &[&[u8]] = &[
            b"plain/file.txt",
            b"with space/and\nnewline",
            b"back\\slash",
            b"bad\xffutf8\xc3",
            b"\\x41 literal",
            "ünï/cødé".as_bytes(),
        ];
        for &c in cases {
            let e = escape_bytes(c);
            assert_eq!(unescape_bytes(&e).as_deref(), Some(c), "{e}");
        }
        assert_eq!(escape_bytes(b"a\xffb"), "a\\xffb");
        assert_eq!(escape_bytes(b"a\\b"), "a\\\\b");
    }

    #[test]
    fn malformed_escapes_are_rejected() {
        for bad in ["a\\", "a\\q", "a\\x4", "a\\xzz"] {
            assert_eq!(unescape_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn owner_is_first_component() {
        assert_eq!(owner_of(Path::new("svc/a/b.txt")), "svc");
        assert_eq!(owner_of(Path::new("top.txt")), "");
        assert_eq!(owner_of(Path::new(OsStr::from_bytes(b"s\xff/x"))), "s\\xff");
    }
}
