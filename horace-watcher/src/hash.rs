//! File fingerprints (size, mtime, ctime, inode), SHA-256 hashing with a big buffer, and
//! MIME detection from content and name.
//!
//! sha2 0.10 picks the CPU's SHA extensions (SHA-NI) at run time through `cpufeatures`,
//! so hashing runs at well over 1 GB/s on hardware that has them.

use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

/// Read buffer for hashing.
const BUF: usize = 1 << 20;
/// How many leading bytes are kept for MIME sniffing.
const PREFIX: usize = 8192;

/// What decides whether a file changed without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fingerprint {
    /// Size in bytes.
    pub size: i64,
    /// Modification time, unix ns.
    pub mtime_ns: i64,
    /// Status change time, unix ns.
    pub ctime_ns: i64,
    /// Inode number.
    pub inode: i64,
}

impl Fingerprint {
    /// The fingerprint of `md` (from `symlink_metadata`).
    pub fn of(md: &Metadata) -> Self {
        Self {
            size: md.size() as i64,
            mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            ctime_ns: md.ctime() * 1_000_000_000 + md.ctime_nsec(),
            inode: md.ino() as i64,
        }
    }

    /// Equal on every field (what the reconcile scan requires to skip a file).
    pub fn same_strict(&self, other: &Self) -> bool {
        self == other
    }

    /// Equal on size, mtime and inode: a rename or chmod changes only the ctime.
    pub fn same_relaxed(&self, other: &Self) -> bool {
        self.size == other.size && self.mtime_ns == other.mtime_ns && self.inode == other.inode
    }
}

/// The hash of a file's content with its first bytes (for MIME sniffing).
#[derive(Debug, Clone)]
pub struct Digested {
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Bytes read.
    pub len: u64,
    /// The first bytes of the content.
    pub prefix: Vec<u8>,
}

/// Read buffers, reused: allocating (and zeroing) a fresh 1 MiB for every file cost more
/// than hashing a typical small file — `memset` was the top symbol in a perf profile of
/// the scan (horace-bench, docs/benchmarks.md). A pool rather than one per thread, as the
/// probe threads are started per batch.
static BUFFERS: std::sync::Mutex<Vec<Box<[u8]>>> = std::sync::Mutex::new(Vec::new());
/// Buffers kept in the pool at most (one per probe thread).
const POOLED: usize = 16;

/// Runs `f` with a pooled read buffer of [`BUF`] bytes.
fn with_buffer<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    let taken = BUFFERS.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let mut buf = taken.unwrap_or_else(|| vec![0u8; BUF].into_boxed_slice());
    let r = f(&mut buf);
    let mut pool = BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < POOLED {
        pool.push(buf);
    }
    r
}

/// Hashes everything `r` yields.
pub fn digest_reader(r: impl Read) -> io::Result<Digested> {
    with_buffer(|buf| digest_with(r, buf, None))
}

/// Hashes everything `r` yields and writes the very bytes hashed to `out`: a copy that
/// matches its checksum by construction, made with one read and one write of each byte.
/// The copy is sparse: a run of zero blocks ([`HOLE`] bytes each) is skipped over, not
/// written, so a sparse file (or one with long runs of zeros) takes in the store about the
/// space its data takes, not its length.
pub fn digest_copy(r: impl Read, out: &mut File) -> io::Result<Digested> {
    let d = with_buffer(|buf| digest_with(r, buf, Some(out)))?;
    // A trailing hole has no write that would give the copy its length.
    out.set_len(d.len)?;
    Ok(d)
}

/// The block size of the holes [`digest_copy`] leaves (a file system block).
pub const HOLE: usize = 4096;

/// Writes `data` at `out`'s position, seeking over each run of all-zero [`HOLE`]-sized
/// blocks instead of writing it; data runs are written with one call each.
fn write_sparse(out: &mut File, data: &[u8]) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut blocks = data.chunks(HOLE).peekable();
    while let Some(first) = blocks.next() {
        let zero = first.len() == HOLE && is_zero(first);
        let mut run = first.len();
        while let Some(next) = blocks.peek() {
            let next_zero = next.len() == HOLE && is_zero(next);
            if next_zero != zero {
                break;
            }
            run += next.len();
            blocks.next();
        }
        let start = first.as_ptr() as usize - data.as_ptr() as usize;
        if zero {
            out.seek(SeekFrom::Current(run as i64))?;
        } else {
            out.write_all(&data[start..start + run])?;
        }
    }
    Ok(())
}

/// Whether every byte is zero, 16 at a time.
fn is_zero(b: &[u8]) -> bool {
    // SAFETY: every bit pattern is a valid u128; align_to only splits the slice.
    let (head, mid, tail) = unsafe { b.align_to::<u128>() };
    head.iter().all(|x| *x == 0) && mid.iter().all(|x| *x == 0) && tail.iter().all(|x| *x == 0)
}

fn digest_with(
    mut r: impl Read,
    buf: &mut [u8],
    mut out: Option<&mut File>,
) -> io::Result<Digested> {
    let mut hasher = Sha256::new();
    let mut prefix = Vec::new();
    let mut len = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if prefix.len() < PREFIX {
            let take = (PREFIX - prefix.len()).min(n);
            prefix.extend_from_slice(&buf[..take]);
        }
        hasher.update(&buf[..n]);
        if let Some(out) = out.as_mut() {
            write_sparse(out, &buf[..n])?;
        }
        len += n as u64;
    }
    Ok(Digested {
        sha256: hex(&hasher.finalize()),
        len,
        prefix,
    })
}

/// Set once the watcher is stopping: every [`Abandonable`] read gives up at its next
/// check, so SIGTERM does not wait for a huge file to be read to its end.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Makes every read of a tenant file give up (the watcher is stopping).
pub fn stop_reading() {
    STOPPING.store(true, Ordering::Relaxed);
}

/// Whether [`stop_reading`] was called.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::Relaxed)
}

/// How many bytes an [`Abandonable`] reads between two checks.
const CHECK_EVERY: u64 = 64 << 20;

/// A tenant's file being read to be cataloged, given up when it is no longer worth it:
/// its last link is gone (deleted, or replaced by a rename: a `gone` error, so the probe
/// says Missing and its events take over) or the watcher is stopping. Checked every
/// [`CHECK_EVERY`] bytes (one `fstat`), so a multi-gigabyte file that is deleted while
/// it is read stops being read within a fraction of a second.
pub struct Abandonable<'a> {
    file: &'a File,
    unchecked: u64,
}

impl<'a> Abandonable<'a> {
    /// Reads `file` from its current position.
    pub fn new(file: &'a File) -> Self {
        Self { file, unchecked: 0 }
    }
}

impl Read for Abandonable<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.unchecked >= CHECK_EVERY {
            self.unchecked = 0;
            if stopping() {
                return Err(io::Error::other("the watcher is stopping"));
            }
            if self.file.metadata()?.nlink() == 0 {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
        }
        let n = (&*self.file).read(buf)?;
        self.unchecked += n as u64;
        crate::watch::liveness::note_work(n as u64);
        Ok(n)
    }
}

/// A reader that counts what it yields as cataloging work for the watchdog
/// (`watch::liveness`): reading back a big object shows the loop is busy, not hung.
pub struct Counted<R>(pub R);

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        crate::watch::liveness::note_work(n as u64);
        Ok(n)
    }
}

/// Hashes the file at `path`.
pub fn digest_file(path: &Path) -> io::Result<Digested> {
    digest_reader(File::open(path)?)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The MIME type of a file: from its content (magic numbers), then from its name, then
/// `text/plain` for valid UTF-8, else `application/octet-stream`.
pub fn mime_of(name: &Path, prefix: &[u8], len: u64) -> String {
    if let Some(t) = infer::get(prefix) {
        return t.mime_type().to_string();
    }
    if let Some(m) = mime_guess::from_path(name).first() {
        return m.essence_str().to_string();
    }
    if len > 0 && looks_like_text(prefix, len) {
        return "text/plain".to_string();
    }
    "application/octet-stream".to_string()
}

fn looks_like_text(prefix: &[u8], len: u64) -> bool {
    if prefix.contains(&0) {
        return false;
    }
    match std::str::from_utf8(prefix) {
        Ok(_) => true,
        // A prefix may cut a multi-byte character at its end.
        Err(e) => (len as usize) > prefix.len() && e.error_len().is_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn digest_matches_known_vector() {
        let d = digest_reader(&b"abc"[..]).unwrap();
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.len, 3);
        assert_eq!(d.prefix, b"abc");
    }

    #[test]
    fn digest_copy_writes_what_it_hashed() {
        let data: Vec<u8> = (0..3 * BUF + 17).map(|i| (i * 7 % 251) as u8).collect();
        let mut out = tempfile::tempfile().unwrap();
        let d = digest_copy(&data[..], &mut out).unwrap();
        assert_eq!(
            std::fs::read(format!("/proc/self/fd/{}", out.as_raw_fd())).unwrap(),
            data
        );
        assert_eq!(d.len, data.len() as u64);
        assert_eq!(d.sha256, digest_reader(&data[..]).unwrap().sha256);
        assert_eq!(d.prefix, &data[..PREFIX]);
    }

    #[test]
    fn a_copy_of_zeros_is_sparse_and_equal() {
        use std::os::unix::fs::MetadataExt;
        // 8 MiB of zeros, a few bytes of data not block-aligned, then 8 MiB of zeros.
        let mut data = vec![0u8; 16 << 20];
        data[(8 << 20) + 100..(8 << 20) + 5000].fill(7);
        let mut out = tempfile::tempfile_in(std::env::temp_dir()).unwrap();
        let d = digest_copy(&data[..], &mut out).unwrap();
        let copy = std::fs::read(format!("/proc/self/fd/{}", out.as_raw_fd())).unwrap();
        assert!(copy == data, "the sparse copy differs");
        assert_eq!(d.sha256, digest_reader(&data[..]).unwrap().sha256);
        let md = out.metadata().unwrap();
        assert_eq!(md.len(), data.len() as u64);
        assert!(
            md.blocks() * 512 <= 64 * 1024,
            "{} bytes allocated",
            md.blocks() * 512
        );
    }

    #[test]
    fn mime_from_content_name_and_text() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(mime_of(Path::new("x.bin"), png, 16), "image/png");
        assert_eq!(mime_of(Path::new("a.json"), b"{}", 2), "application/json");
        assert_eq!(
            mime_of(Path::new("README"), "héllo".as_bytes(), 6),
            "text/plain"
        );
        assert_eq!(
            mime_of(Path::new("blob"), b"\0\x01\x02", 3),
            "application/octet-stream"
        );
    }

    #[test]
    fn fingerprint_relaxed_ignores_ctime() {
        let a = Fingerprint {
            size: 1,
            mtime_ns: 2,
            ctime_ns: 3,
            inode: 4,
        };
        let b = Fingerprint { ctime_ns: 9, ..a };
        assert!(a.same_relaxed(&b));
        assert!(!a.same_strict(&b));
    }
}
