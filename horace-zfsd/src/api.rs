//! D-Bus API of horace-zfsd.
