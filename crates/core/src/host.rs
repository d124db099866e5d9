//! What the pipeline needs from its host: the three callbacks of the host's ctx.
//!
//! The napi binding implements [`Host`] over JS functions; tests implement it
//! with a recorder. Every call is awaited before the next one is made, so the
//! host sees callbacks one at a time, in order, and a slow `onLog` slows the
//! reading of the pod's log (backpressure: the log follower reads at most one
//! batch ahead of the call in flight) instead of growing a queue.

use std::future::Future;

use serde::Serialize;
pub use tokio_util::sync::CancellationToken;

/// Which stream a log chunk belongs to (the host's `"stdout" | "stderr"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}


/// A callback threw, rejected, or could not be called. `execute` cleans up
/// and then rejects with this, naming the callback.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{callback} failed: {message}")]
pub struct HostError {
    pub callback: &'static str,
    pub message: String,
}

/// The host's callbacks. Futures are `Send` so the whole pipeline can run on
/// napi-rs' tokio runtime.
///
/// There is no `onSpawn`: the run has no process on the host's machine, and
/// the only pid to report would be Paperclip's own — which a host that
/// cancels runs by pid (2026.707.0 does) would then SIGTERM. 0.1.54 never
/// called it either.
pub trait Host: Send + Sync {
    fn on_log(&self, stream: LogStream, chunk: String) -> impl Future<Output = Result<(), HostError>> + Send;
    fn on_meta(&self, meta: serde_json::Value) -> impl Future<Output = Result<(), HostError>> + Send;

    /// Cancelled when the host cancels the run: newer hosts pass `ctx.signal`
    /// (an AbortSignal) and abort it from their cancel API. A host without
    /// one never cancels this way; the API poll of [`crate::cancel`] remains.
    fn cancellation(&self) -> CancellationToken {
        CancellationToken::new()
    }
}
