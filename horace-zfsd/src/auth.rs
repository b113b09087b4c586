//! Per-call authorization: the caller's uid comes from the bus
//! (`GetConnectionUnixUser` of the message's sender), never from a pid; it is allowed
//! iff it is in `allow_uids` or a member (primary or supplementary group) of one of
//! `allow_groups`. The bus policy is the first layer; this is the second.

use std::ffi::{CStr, CString};

use tracing::warn;
use zbus::message::Header;
use zbus::names::BusName;

use crate::api::ZfsError;
use crate::config::GroupSpec;

/// Who may call methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    uids: Vec<u32>,
    gids: Vec<u32>,
}

impl Allow {
    /// Resolves group names once, at start; an unknown group is an error naming it.
    pub fn resolve(uids: &[u32], groups: &[GroupSpec]) -> Result<Self, String> {
        let gids = groups
            .iter()
            .map(|g| match g {
                GroupSpec::Id(id) => Ok(*id),
                GroupSpec::Name(n) => gid_of(n).ok_or_else(|| {
                    format!("allow_groups: no group named {n:?}; create it or give a gid")
                }),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            uids: uids.to_vec(),
            gids,
        })
    }

    /// Whether `uid` may call (looks its groups up now, so membership changes count).
    pub fn permits(&self, uid: u32) -> bool {
        self.uids.contains(&uid)
            || (!self.gids.is_empty()
                && groups_of(uid).is_some_and(|gs| gs.iter().any(|g| self.gids.contains(g))))
    }
}

/// The uid of the connection that sent the call, asked of the bus daemon.
pub async fn caller_uid(conn: &zbus::Connection, hdr: &Header<'_>) -> Result<u32, ZfsError> {
    let sender = hdr.sender().ok_or_else(|| {
        ZfsError::PermissionDenied("the call has no sender; call through the bus".into())
    })?;
    let dbus = zbus::fdo::DBusProxy::new(conn)
        .await
        .map_err(ZfsError::ZBus)?;
    dbus.get_connection_unix_user(BusName::Unique(sender.to_owned()))
        .await
        .map_err(|e| {
            warn!(sender = %sender, cause = %e, "cannot get the uid of caller {sender}: {e}");
            ZfsError::PermissionDenied(format!("cannot tell who {sender} is: {e}"))
        })
}

/// Checks the caller of `hdr` against `allow`; the denial names the uid and what to do.
pub async fn authorize(
    conn: &zbus::Connection,
    hdr: &Header<'_>,
    allow: &Allow,
    method: &str,
) -> Result<u32, ZfsError> {
    let uid = caller_uid(conn, hdr).await?;
    let allow = allow.clone();
    let ok = tokio::task::spawn_blocking(move || allow.permits(uid))
        .await
        .unwrap_or(false);
    if ok {
        Ok(uid)
    } else {
        warn!(
            uid,
            method, "caller uid {uid} not in the allow list: {method} denied"
        );
        Err(ZfsError::PermissionDenied(format!(
            "uid {uid} may not call {method}; add it to allow_uids or one of allow_groups in \
             the horace-zfsd configuration"
        )))
    }
}

fn gid_of(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: all-zero is a valid `group` (pointers null, ints zero).
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and buf's length is passed.
    let rc = unsafe {
        libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut res,
        )
    };
    (rc == 0 && !res.is_null()).then_some(grp.gr_gid)
}

/// The primary and supplementary gids of `uid` (from the user database), or `None` for a
/// uid with no passwd entry.
pub fn groups_of(uid: u32) -> Option<Vec<u32>> {
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: all-zero is a valid `passwd` (pointers null, ints zero).
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and buf's length is passed.
    let rc =
        unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut res) };
    if rc != 0 || res.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name points to a NUL-terminated string in buf.
    let name = unsafe { CStr::from_ptr(pw.pw_name) };
    let mut n: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let cap = n;
        // SAFETY: groups has room for `n` entries and n is passed by pointer.
        let rc =
            unsafe { libc::getgrouplist(name.as_ptr(), pw.pw_gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(n as usize);
            return Some(groups);
        }
        if n <= cap {
            n = cap * 2; // glibc sets n to the needed size; be safe where it does not
        }
        if n > 65_536 {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_groups_include_primary() {
        let gs = groups_of(0).expect("root has a passwd entry");
        assert!(gs.contains(&0), "{gs:?}");
    }

    #[test]
    fn uid_list_and_groups() {
        let a = Allow::resolve(&[1234], &[GroupSpec::Id(0)]).unwrap();
        assert!(a.permits(1234));
        assert!(a.permits(0), "root is in group 0");
        assert!(
            !a.permits(4_000_000),
            "a uid without passwd entry has no groups"
        );
        let none = Allow::resolve(&[], &[]).unwrap();
        assert!(!none.permits(0), "root is not special");
        assert!(Allow::resolve(&[], &[GroupSpec::Name("no-such-group-hz".into())]).is_err());
        assert_eq!(
            Allow::resolve(&[], &[GroupSpec::Name("root".into())])
                .unwrap()
                .gids,
            [0]
        );
    }
}
