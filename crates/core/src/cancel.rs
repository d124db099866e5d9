//! Cancellation from the Paperclip side (contract §1.5 step 12, §2.7): the host
//! cancels a run by marking it in its database; an out-of-process adapter has
//! to ask. We ask `GET {PAPERCLIP_API_URL}/api/heartbeat-runs/{runId}` with the
//! agent's token and stop only on `cancelled` / `cancelling` — any other status,
//! an HTTP error or an unreachable API means "keep running" (0.1.51's fix:
//! treating other statuses as cancel deleted healthy Jobs).
//!
//! Invariant: the token is sent as a header and never appears in a log line or
//! an error message.

use std::time::Duration;

/// How often the pipeline asks.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// `shouldAbortForCancellation`.
pub fn is_cancel_status(status: &str) -> bool {
    matches!(status, "cancelled" | "cancelling")
}

/// What one poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    Cancelled,
    KeepGoing,
    /// Worth a stderr line (server error); still keep going.
    Transient(String),
}

/// Asks the host's API about one run.
#[derive(Clone)]
pub struct CancelProbe {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl std::fmt::Debug for CancelProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelProbe").field("url", &self.url).finish_non_exhaustive()
    }
}

impl CancelProbe {
    /// `None` when polling is impossible (no API URL or no token), as in the original.
    pub fn new(api_url: &str, run_id: &str, token: Option<&str>) -> Option<Self> {
        let api_url = api_url.trim().trim_end_matches('/');
        let token = token.filter(|t| !t.is_empty())?;
        if api_url.is_empty() || run_id.is_empty() {
            return None;
        }
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().ok()?;
        let url = format!("{api_url}/api/heartbeat-runs/{}", encode_path_segment(run_id));
        Some(CancelProbe { client, url, token: token.to_owned() })
    }

    pub async fn poll(&self) -> Poll {
        let resp = match self.client.get(&self.url).bearer_auth(&self.token).send().await {
            Ok(r) => r,
            // Network errors are ignored: the host may be restarting.
            Err(_) => return Poll::KeepGoing,
        };
        let status = resp.status();
        if status.is_server_error() {
            return Poll::Transient(format!("cancel poll: HTTP {} (transient, ignoring)", status.as_u16()));
        }
        if !status.is_success() {
            return Poll::KeepGoing;
        }
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(_) => return Poll::KeepGoing,
        };
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) if v.get("status").and_then(|s| s.as_str()).is_some_and(is_cancel_status) => Poll::Cancelled,
            _ => Poll::KeepGoing,
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so a run id
/// can never change the path it is put in.
fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_cancelled_and_cancelling_abort() {
        assert!(is_cancel_status("cancelled"));
        assert!(is_cancel_status("cancelling"));
        for s in ["running", "queued", "failed", "succeeded", "timed_out", "interrupted", ""] {
            assert!(!is_cancel_status(s), "{s}");
        }
    }

    #[test]
    fn no_probe_without_url_or_token() {
        assert!(CancelProbe::new("", "r", Some("t")).is_none());
        assert!(CancelProbe::new("http://x", "r", None).is_none());
        assert!(CancelProbe::new("http://x", "r", Some("")).is_none());
        assert!(CancelProbe::new("http://x", "", Some("t")).is_none());
    }

    #[test]
    fn run_id_cannot_escape_the_path_and_token_is_not_printed() {
        let p = CancelProbe::new("http://h:3100/", "../a b?c", Some("secret-token")).unwrap();
        assert_eq!(p.url, "http://h:3100/api/heartbeat-runs/..%2Fa%20b%3Fc");
        assert!(!format!("{p:?}").contains("secret-token"));
    }

    /// A real HTTP exchange against a one-shot local server.
    #[tokio::test]
    async fn polls_the_run_with_the_bearer_token() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            for body in [r#"{"status":"running"}"#, r#"{"status":"cancelled"}"#] {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap();
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                sock.write_all(resp.as_bytes()).await.unwrap();
            }
            seen
        });
        let p = CancelProbe::new(&format!("http://{addr}"), "run-1", Some("tok")).unwrap();
        assert_eq!(p.poll().await, Poll::KeepGoing);
        assert_eq!(p.poll().await, Poll::Cancelled);
        let seen = server.await.unwrap();
        assert!(seen[0].starts_with("GET /api/heartbeat-runs/run-1 HTTP/1.1"));
        assert!(seen[0].to_ascii_lowercase().contains("authorization: bearer tok"));
    }
}
