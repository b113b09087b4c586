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
        keep_prefix(&buf[..n], &mut prefix);
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

/// Set once the watcher is stopping: every read of a tenant file ([`digest_file`]) gives
/// up at its next check, so SIGTERM does not wait for a huge file
/// to be read to its end.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Makes every read of a tenant file give up (the watcher is stopping).
pub fn stop_reading() {
    STOPPING.store(true, Ordering::Relaxed);
}

/// Whether [`stop_reading`] was called.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::Relaxed)
}

/// How many bytes (read, or hashed as a hole's zeros) pass between two checks of
/// whether a read is still worth it (one `fstat` each).
const CHECK_EVERY: u64 = 8 << 20;

/// The message of a read given up because the file was written to meanwhile.
const CHANGED: &str = "the file changed while it was read";

/// Whether `e` is a read given up because the file changed meanwhile.
pub fn changed(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Other && e.to_string() == CHANGED
}

/// Why a read of a tenant's file is given up, if it is: its last link is gone (deleted,
/// or replaced by a rename: a `gone` error, so the probe says Missing and its events take
/// over), it was written to since `start` (its size or mtime moved: [`changed`]), or the
/// watcher is stopping. One `fstat`.
fn abandoned(file: &File, start: &Metadata) -> io::Result<()> {
    if stopping() {
        return Err(io::Error::other("the watcher is stopping"));
    }
    let now = file.metadata()?;
    if now.nlink() == 0 {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    if now.size() != start.size()
        || (now.mtime(), now.mtime_nsec()) != (start.mtime(), start.mtime_nsec())
    {
        return Err(io::Error::other(CHANGED));
    }
    Ok(())
}

/// Zeros hashed in place of a hole, a buffer at a time.
static ZEROS: [u8; BUF] = [0; BUF];

/// Hashes the whole of `file` (from offset 0, whatever its position) and, with `out`,
/// writes the very bytes hashed there, sparsely. Only the file's data is read: its holes,
/// found with `SEEK_DATA`/`SEEK_HOLE`, are hashed as the zeros they read as without a
/// read, and stay holes in the copy, so a 1 TiB file with a few MiB written costs a few
/// MiB of reads (and the time SHA-256 takes over 1 TiB of zeros, see docs/security.md).
/// Where the filesystem cannot tell holes (it says all is data), every byte is read.
/// Given up (see [`abandoned`]) every [`CHECK_EVERY`] bytes, holes included, so a
/// multi-gigabyte file deleted while it is read stops being read within a fraction of a
/// second.
///
/// The length hashed is what reads found: data up to the file's length at the start,
/// fewer bytes if it shrank meanwhile (the caller compares `len` with the fingerprint).
pub fn digest_file(file: &File, mut out: Option<&mut File>) -> io::Result<Digested> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::FileExt;
    let start = file.metadata()?;
    let end = start.len();
    with_buffer(|buf| {
        let mut hasher = Sha256::new();
        let mut prefix = Vec::new();
        let mut pos = 0u64;
        let mut unchecked = 0u64;
        let mut tick = |n: u64, file: &File| -> io::Result<()> {
            unchecked += n;
            crate::watch::liveness::note_work(n);
            if unchecked >= CHECK_EVERY {
                unchecked = 0;
                abandoned(file, &start)?;
            }
            Ok(())
        };
        while pos < end {
            let (data, hole) = data_extent(file, pos, end)?;
            // The hole before the data: zeros, not read, not written.
            while pos < data {
                let n = (data - pos).min(BUF as u64) as usize;
                hasher.update(&ZEROS[..n]);
                keep_prefix(&ZEROS[..n], &mut prefix);
                pos += n as u64;
                tick(n as u64, file)?;
            }
            if let Some(out) = out.as_mut() {
                out.seek(SeekFrom::Start(pos))?;
            }
            while pos < hole {
                let want = (hole - pos).min(buf.len() as u64) as usize;
                let n = match file.read_at(&mut buf[..want], pos) {
                    Ok(0) => {
                        // Shrunk while read: what was read is what is hashed.
                        return Ok(Digested {
                            sha256: hex(&hasher.finalize()),
                            len: pos,
                            prefix,
                        });
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                hasher.update(&buf[..n]);
                keep_prefix(&buf[..n], &mut prefix);
                if let Some(out) = out.as_mut() {
                    write_sparse(out, &buf[..n])?;
                }
                pos += n as u64;
                tick(n as u64, file)?;
            }
        }
        if let Some(out) = out {
            // A trailing hole has no write that would give the copy its length.
            out.set_len(pos)?;
        }
        Ok(Digested {
            sha256: hex(&hasher.finalize()),
            len: pos,
            prefix,
        })
    })
}

/// Appends to `prefix` what it lacks of [`PREFIX`] bytes from `bytes`.
fn keep_prefix(bytes: &[u8], prefix: &mut Vec<u8>) {
    if prefix.len() < PREFIX {
        let take = (PREFIX - prefix.len()).min(bytes.len());
        prefix.extend_from_slice(&bytes[..take]);
    }
}

/// The next data of `file` at or after `pos`, as `(start, end)`, both at most `end`: a
/// file without more data gives `(end, end)`; a filesystem that cannot tell holes
/// (`SEEK_DATA` unsupported) gives everything as data.
fn data_extent(file: &File, pos: u64, end: u64) -> io::Result<(u64, u64)> {
    use rustix::fs::{seek, SeekFrom};
    use rustix::io::Errno;
    let data = match seek(file, SeekFrom::Data(pos)) {
        Ok(d) => d.min(end),
        // No data at or after pos: the rest is a hole.
        Err(Errno::NXIO) => return Ok((end, end)),
        Err(Errno::INVAL | Errno::OPNOTSUPP) => return Ok((pos, end)),
        Err(e) => return Err(e.into()),
    };
    let hole = match seek(file, SeekFrom::Hole(data)) {
        Ok(h) => h.min(end),
        Err(Errno::NXIO) => end,
        Err(e) => return Err(e.into()),
    };
    // A hole that begins before `data` cannot be (the file changed meanwhile): read on.
    Ok((data, hole.max(data + 1).min(end)))
}

/// Hashes the file at `path` (holes unread: [`digest_file`]).
pub fn digest_path(path: &Path) -> io::Result<Digested> {
    digest_file(&File::open(path)?, None)
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
    fn holes_are_hashed_unread_and_copied_as_holes() {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::MetadataExt;
        // 64 MiB with 3 written extents: the holes are neither read nor written.
        let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
        let path = dir.path().join("sparse");
        let mut f = File::create(&path).unwrap();
        let mut dense = Vec::new();
        for (at, len) in [(4096u64, 5000usize), (16 << 20, 70_000), (40 << 20, 100)] {
            f.seek(SeekFrom::Start(at)).unwrap();
            let data: Vec<u8> = (0..len).map(|i| (i % 251 + 1) as u8).collect();
            f.write_all(&data).unwrap();
            dense.push((at, data));
        }
        f.set_len(64 << 20).unwrap();
        drop(f);
        let f = File::open(&path).unwrap();
        if data_extent(&f, 0, 64 << 20).unwrap().0 == 0 {
            eprintln!("this filesystem does not report holes; skipped");
            return;
        }
        // Named: an unlinked file is one being given up (`abandoned`).
        let copy = dir.path().join("copy");
        let mut out = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&copy)
            .unwrap();
        let d = digest_file(&f, Some(&mut out)).unwrap();
        assert_eq!(d.len, 64 << 20);
        assert_eq!(out.metadata().unwrap().len(), 64 << 20);
        assert!(
            out.metadata().unwrap().blocks() * 512 < 1 << 20,
            "the copy is dense"
        );
        // The same bytes hashed by reading every one of them.
        let mut h = Sha256::new();
        let mut pos = 0u64;
        for (at, data) in &dense {
            let mut zeros = at - pos;
            while zeros > 0 {
                let n = zeros.min(BUF as u64) as usize;
                h.update(&ZEROS[..n]);
                zeros -= n as u64;
            }
            h.update(data);
            pos = at + data.len() as u64;
        }
        let mut zeros = (64u64 << 20) - pos;
        while zeros > 0 {
            let n = zeros.min(BUF as u64) as usize;
            h.update(&ZEROS[..n]);
            zeros -= n as u64;
        }
        assert_eq!(d.sha256, hex(&h.finalize()));
        assert_eq!(d.prefix.len(), PREFIX);
        assert_eq!(&d.prefix[4096..4196], &dense[0].1[..100]);
        assert_eq!(digest_file(&out, None).unwrap().sha256, d.sha256);
        // Deleted while read: given up at the next check, not read to the end.
        std::fs::remove_file(&path).unwrap();
        let e = digest_file(&f, None).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
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
