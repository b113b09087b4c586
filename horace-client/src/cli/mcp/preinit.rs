//! What the stdio transport needs before rmcp sees the session: the Python SDK 2.x opens
//! with a `server/discover` probe (the 2026 protocol's replacement of `initialize`), and
//! falls back to the `initialize` handshake only on a JSON-RPC error; rmcp, which speaks
//! the handshake, ends a session whose first message is not `initialize`. So until the
//! first other message, `server/discover` requests are answered here with -32601 (method
//! not found), and everything from that message on is passed to rmcp untouched.

use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// JSON-RPC "method not found".
const METHOD_NOT_FOUND: i64 = -32601;

/// Reads lines until one that is not a `server/discover` probe, answering each probe on
/// `out`; returns that line (to be read again by rmcp), or `None` at end of input.
pub async fn answer_probes<R, W>(input: &mut R, out: &mut W) -> std::io::Result<Option<Vec<u8>>>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let mut line = Vec::new();
        if input.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        let Some(answer) = probe_answer(&line) else {
            return Ok(Some(line));
        };
        if let Some(mut answer) = answer {
            answer.push(b'\n');
            out.write_all(&answer).await?;
            out.flush().await?;
        }
    }
}

/// `None` if the line is not a `server/discover` message; `Some(None)` for such a
/// notification (nothing to answer); `Some(Some(error))` for such a request.
fn probe_answer(line: &[u8]) -> Option<Option<Vec<u8>>> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    if v.get("method")?.as_str()? != "server/discover" {
        return None;
    }
    Some(v.get("id").map(|id| {
        serde_json::to_vec(&serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {
                "code": METHOD_NOT_FOUND,
                "message": "server/discover is not supported: this server speaks the initialize handshake",
            },
        }))
        .unwrap_or_default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probes_are_refused_and_the_handshake_passes_through() {
        let input =
            b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"server/discover\",\"params\":{}}\n\
            {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}\nrest\n";
        let mut r = tokio::io::BufReader::new(&input[..]);
        let mut out = Vec::new();
        let first = answer_probes(&mut r, &mut out).await.unwrap().unwrap();
        assert!(first.starts_with(b"{\"jsonrpc\":\"2.0\",\"id\":1,"));
        let answer: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(answer["id"], 7);
        assert_eq!(answer["error"]["code"], METHOD_NOT_FOUND);
        assert_eq!(probe_answer(b"not json"), None);
        assert_eq!(
            probe_answer(b"{\"method\":\"server/discover\"}"),
            Some(None)
        );
    }
}
