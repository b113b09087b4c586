//! Test data the benchmark makes itself: a deterministic PRNG, a tree of files with the
//! issue's size mix, and percentile helpers.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// xorshift64*: fast, deterministic, good enough for file contents and sizes.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A file size from the issue's mix (0.5–64 KiB, mean ≈ 18 KiB): 80 % log-uniform over
/// the whole range, 20 % uniform over 16–64 KiB.
pub fn small_size(rng: &mut Rng) -> usize {
    const LO: f64 = 512.0;
    const HI: f64 = 65536.0;
    if rng.below(5) == 0 {
        16384 + rng.below(65536 - 16384) as usize
    } else {
        (LO * (HI / LO).powf(rng.unit())) as usize
    }
}

/// What [`make_tree`] produced.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// Regular files written.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Relative paths of a sample of the small files (for queries).
    pub sample: Vec<String>,
}

/// Writes `n` small files under `root` as `o<k>/d<j>/f<i>.bin` (10 owners, 100 files per
/// directory) plus `big` files of `big_mb` MiB under `big/`, with 2 threads.
pub fn make_tree(root: &Path, n: u64, big: u32, big_mb: u64) -> std::io::Result<Tree> {
    let per_dir = 100u64;
    let dirs = n.div_ceil(per_dir);
    let halves: Vec<std::io::Result<Tree>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2u64)
            .map(|t| {
                s.spawn(move || {
                    let mut tree = Tree::default();
                    let mut rng = Rng::new(t + 7);
                    let mut buf = vec![0u8; 65536];
                    for d in (t..dirs).step_by(2) {
                        let dir = root.join(format!("o{}/d{d:05}", d % 10));
                        fs::create_dir_all(&dir)?;
                        for i in 0..per_dir.min(n - d * per_dir) {
                            let size = small_size(&mut rng);
                            rng.fill(&mut buf[..size]);
                            let name = format!("f{:07}.bin", d * per_dir + i);
                            fs::write(dir.join(&name), &buf[..size])?;
                            tree.files += 1;
                            tree.bytes += size as u64;
                            if i == 0 {
                                tree.sample.push(format!("o{}/d{d:05}/{name}", d % 10));
                            }
                        }
                    }
                    Ok(tree)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect()
    });
    let mut tree = Tree::default();
    for h in halves {
        let h = h?;
        tree.files += h.files;
        tree.bytes += h.bytes;
        tree.sample.extend(h.sample);
    }
    if big > 0 {
        let dir = root.join("big");
        fs::create_dir_all(&dir)?;
        let mut rng = Rng::new(99);
        let mut buf = vec![0u8; 1 << 20];
        for b in 0..big {
            let mut f = fs::File::create(dir.join(format!("big{b}.bin")))?;
            for _ in 0..big_mb {
                rng.fill(&mut buf);
                f.write_all(&buf)?;
            }
            tree.files += 1;
            tree.bytes += big_mb << 20;
        }
    }
    Ok(tree)
}

/// The `p`-th percentile (0–100) of `v` (sorted in place); zero when empty.
pub fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[idx.min(v.len() - 1)]
}

/// Mean of `v`; zero when empty.
pub fn mean(v: &[Duration]) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.iter().sum::<Duration>() / v.len() as u32
}

#[cfg(test)]
/// Total bytes of regular files under `root` (symlinks not followed).
pub fn tree_bytes(root: &Path) -> u64 {
    let mut total = 0;
    let mut stack: Vec<std::path::PathBuf> = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_stay_in_range_with_the_issues_mean() {
        let mut rng = Rng::new(1);
        let n = 100_000;
        let sizes: Vec<usize> = (0..n).map(|_| small_size(&mut rng)).collect();
        assert!(sizes.iter().all(|&s| (512..=65536).contains(&s)));
        let mean = sizes.iter().sum::<usize>() / n;
        assert!((15_000..22_000).contains(&mean), "mean {mean}");
    }

    #[test]
    fn percentiles() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&mut v, 50.0), Duration::from_millis(51));
        assert_eq!(percentile(&mut v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&mut v, 0.0), Duration::from_millis(1));
        assert_eq!(mean(&[]), Duration::ZERO);
    }

    #[test]
    fn tree_has_the_asked_files() {
        let dir = tempfile::tempdir().unwrap();
        let t = make_tree(dir.path(), 250, 1, 1).unwrap();
        assert_eq!(t.files, 251);
        assert_eq!(tree_bytes(dir.path()), t.bytes);
        assert_eq!(t.sample.len(), 3);
        assert!(dir.path().join(&t.sample[0]).is_file());
    }
}
