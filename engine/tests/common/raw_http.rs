//! Requests written byte by byte over a raw connection (plain or TLS), and the one answer
//! read back: for what an HTTP client library would not send.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// One answer read off `conn`: its head and its body (by `content-length`).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    /// The JSON error's `code`, asserting the status, the content type and the shape.
    #[track_caller]
    pub fn error_code(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.head
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "not JSON: {self:?}"
        );
        let v: Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not a JSON body ({e}): {self:?}"));
        assert!(v["error"]["message"].is_string(), "{v}");
        v["error"]["code"].as_str().expect("error.code").to_string()
    }

    pub fn message(&self) -> String {
        let v: Value = serde_json::from_str(&self.body).unwrap();
        v["error"]["message"].as_str().unwrap().to_string()
    }
}

/// Reads one answer; `None` when the connection ends (or is reset) before a whole one arrived.
pub async fn read_answer<S: AsyncRead + Unpin>(conn: &mut S, raw: &mut Vec<u8>) -> Option<Answer> {
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if raw.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&raw[end + 4..end + 4 + len]).to_string();
                raw.drain(..end + 4 + len);
                let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                return Some(Answer { status, head, body });
            }
        }
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `request` (while reading, so that a server that answers before reading it all is not
/// stuck behind a full socket) and reads the one answer.
pub async fn exchange<S>(conn: S, request: Vec<u8>) -> Answer
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(conn);
    let writer = tokio::spawn(async move {
        // The server may close after answering: a failed write is not the test's concern.
        let _ = wr.write_all(&request).await;
        let _ = wr.flush().await;
        wr
    });
    let mut raw = Vec::new();
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        read_answer(&mut rd, &mut raw),
    )
    .await
    .expect("no answer within 30 s")
    .expect("the connection closed without a whole answer");
    writer.abort();
    answer
}

pub fn get(target: &str, headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nhost: test\r\n{headers}\r\n").into_bytes()
}

/// A request target of 70 KiB: past the library's hard-coded 64 KiB.
pub fn long_target_request() -> Vec<u8> {
    get(&format!("/health/live?x={}", "a".repeat(70 * 1024)), "")
}
