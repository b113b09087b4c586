//! Process privileges: the capability sets reduced to what `zfs` needs, and the root
//! check. Called from `main` before any thread starts, because capability sets are
//! per thread and threads inherit them.

use caps::{CapSet, Capability, CapsHashSet};

/// The one capability `zfs` needs (OpenZFS ioctls on /dev/zfs; zfs-fuse needs none
/// beyond root's ownership of its socket, so this also suffices there).
pub const KEPT: Capability = Capability::CAP_SYS_ADMIN;

/// Drops every capability but [`KEPT`] from the bounding, effective and permitted sets,
/// and clears the inheritable and ambient sets. `zfs` children, run as uid 0, get only
/// [`KEPT`] (a root exec's permitted set is bounded by the bounding set).
pub fn drop_capabilities() -> Result<(), caps::errors::CapsError> {
    for cap in caps::read(None, CapSet::Bounding)? {
        if cap != KEPT {
            caps::drop(None, CapSet::Bounding, cap)?;
        }
    }
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    let kept: CapsHashSet = [KEPT].into_iter().collect();
    let have = caps::read(None, CapSet::Permitted)?;
    let keep: CapsHashSet = have.intersection(&kept).copied().collect();
    caps::set(None, CapSet::Effective, &keep)?;
    caps::set(None, CapSet::Permitted, &keep)?;
    Ok(())
}

/// Whether the process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
