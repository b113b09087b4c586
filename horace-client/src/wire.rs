//! Framing shared by client and server: length-delimited bincode frames with limits, and
//! the token handshake that opens every TCP connection.
//!
//! Every frame is a 4-byte big-endian length and a bincode body. Requests are limited to
//! [`MAX_REQUEST_FRAME`] (the server closes a connection that sends a larger one, or any
//! frame it cannot decode, and keeps serving the others); responses to
//! [`MAX_RESPONSE_FRAME`].
//!
//! TCP handshake: before tarpc starts, the client sends one frame holding the bearer token
//! (at most [`MAX_TOKEN_LEN`] bytes). The server compares it in constant time and answers
//! the single byte [`HANDSHAKE_OK`], or closes the connection without sending anything.
//! Unix-socket connections have no handshake: the peer's credentials decide its rights.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Largest request frame the server reads.
pub const MAX_REQUEST_FRAME: usize = 1 << 20;
/// Largest response frame either side accepts.
pub const MAX_RESPONSE_FRAME: usize = 16 << 20;
/// Longest bearer token.
pub const MAX_TOKEN_LEN: usize = 4096;
/// The server's answer to an accepted token.
pub const HANDSHAKE_OK: u8 = 0x01;

/// The length-delimited framing used on every connection.
pub fn framed<S: AsyncRead + AsyncWrite>(io: S) -> Framed<S, LengthDelimitedCodec> {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_RESPONSE_FRAME)
        .new_framed(io)
}

/// Sends the token frame and waits for the server's answer.
pub async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    token: &str,
) -> io::Result<bool> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "token longer than 4096 bytes",
        ));
    }
    io.write_all(&(token.len() as u32).to_be_bytes()).await?;
    io.write_all(token.as_bytes()).await?;
    io.flush().await?;
    let mut ok = [0u8; 1];
    match io.read_exact(&mut ok).await {
        Ok(_) => Ok(ok[0] == HANDSHAKE_OK),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads the client's token frame (the caller bounds the wait with a timeout).
pub async fn read_token<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_TOKEN_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("token frame of {len} bytes"),
        ));
    }
    let mut token = vec![0u8; len];
    io.read_exact(&mut token).await?;
    Ok(token)
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// What a [`FrameLimit`] has seen of the frames it read, shared with whoever enforces the
/// connection's deadlines: since when a frame has been arriving without being complete,
/// and when the last one was completed.
#[derive(Debug)]
pub struct FrameProgress {
    origin: Instant,
    /// Milliseconds since `origin` at which the frame being read began; [`NO_FRAME`] when
    /// the stream is between frames.
    partial_since: AtomicU64,
    /// Milliseconds since `origin` of the last completed frame (or of [`FrameProgress::touch`]).
    last: AtomicU64,
}

const NO_FRAME: u64 = u64::MAX;

impl Default for FrameProgress {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
            partial_since: AtomicU64::new(NO_FRAME),
            last: AtomicU64::new(0),
        }
    }
}

impl FrameProgress {
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// How long the frame being read has been incomplete (`None` between frames).
    pub fn partial_for(&self) -> Option<Duration> {
        match self.partial_since.load(Ordering::Relaxed) {
            NO_FRAME => None,
            since => Some(Duration::from_millis(self.now_ms().saturating_sub(since))),
        }
    }

    /// How long since the last frame was completed or [`FrameProgress::touch`] was called.
    pub fn quiet_for(&self) -> Duration {
        let last = self.last.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }

    /// Counts as activity now (e.g. an answer was sent).
    pub fn touch(&self) {
        self.last.store(self.now_ms(), Ordering::Relaxed);
    }
}

/// Wraps a stream so that reading fails as soon as a frame header announces more than
/// `max` bytes: the server's request limit, while its own responses may be larger.
#[derive(Debug)]
pub struct FrameLimit<S> {
    inner: S,
    max: usize,
    header: [u8; 4],
    header_filled: usize,
    body_left: usize,
    progress: Option<Arc<FrameProgress>>,
}

impl<S> FrameLimit<S> {
    /// Limits frames read from `inner` to `max` bytes.
    pub fn new(inner: S, max: usize) -> Self {
        Self {
            inner,
            max,
            header: [0; 4],
            header_filled: 0,
            body_left: 0,
            progress: None,
        }
    }

    /// Also records in `progress` when frames begin and end.
    pub fn observed(mut self, progress: Arc<FrameProgress>) -> Self {
        self.progress = Some(progress);
        self
    }

    fn frame_began(&self) {
        if let Some(p) = &self.progress {
            p.partial_since.store(p.now_ms(), Ordering::Relaxed);
        }
    }

    fn frame_ended(&self) {
        if let Some(p) = &self.progress {
            p.partial_since.store(NO_FRAME, Ordering::Relaxed);
            p.touch();
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn scan(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                if self.body_left == 0 {
                    self.frame_ended();
                }
                continue;
            }
            if self.header_filled == 0 {
                self.frame_began();
            }
            self.header[self.header_filled] = bytes[0];
            self.header_filled += 1;
            bytes = &bytes[1..];
            if self.header_filled == 4 {
                self.header_filled = 0;
                let len = u32::from_be_bytes(self.header) as usize;
                if len > self.max {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "request frame of {len} bytes exceeds the limit of {}",
                            self.max
                        ),
                    ));
                }
                self.body_left = len;
                if len == 0 {
                    self.frame_ended();
                }
            }
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameLimit<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => Poll::Ready(this.scan(&buf.filled()[before..])),
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameLimit<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_limit_accepts_small_and_rejects_large_frames() {
        let mut f = FrameLimit::new((), 10);
        // Two frames of 3 and 10 bytes, split at odd places.
        let mut stream = vec![0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 10];
        stream.extend([7u8; 10]);
        for chunk in stream.chunks(3) {
            f.scan(chunk).unwrap();
        }
        assert!(f.scan(&[0, 0, 0]).is_ok());
        assert!(f.scan(&[11]).is_err());
    }

    #[test]
    fn frame_progress_follows_frame_boundaries() {
        let progress = Arc::new(FrameProgress::default());
        let mut f = FrameLimit::new((), 10).observed(progress.clone());
        assert_eq!(progress.partial_for(), None);
        f.scan(&[0, 0]).unwrap();
        assert!(
            progress.partial_for().is_some(),
            "half a header is a frame begun"
        );
        f.scan(&[0, 2, 9]).unwrap();
        assert!(progress.partial_for().is_some(), "one body byte of two");
        f.scan(&[9]).unwrap();
        assert_eq!(progress.partial_for(), None);
        f.scan(&[0, 0, 0, 0]).unwrap();
        assert_eq!(
            progress.partial_for(),
            None,
            "an empty frame ends with its header"
        );
        f.scan(&[0, 0, 0, 1, 5, 0]).unwrap();
        assert!(
            progress.partial_for().is_some(),
            "a frame and the start of the next"
        );
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[tokio::test]
    async fn handshake_round_trip() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let server = tokio::spawn(async move {
            let t = read_token(&mut b).await.unwrap();
            if t == b"secret" {
                b.write_all(&[HANDSHAKE_OK]).await.unwrap();
            }
        });
        assert!(client_handshake(&mut a, "secret").await.unwrap());
        server.await.unwrap();
        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::spawn(async move {
            let _ = read_token(&mut b).await;
            drop(b);
        });
        assert!(!client_handshake(&mut a, "wrong").await.unwrap());
    }
}
