//! What the pipeline needs from its host: the three callbacks of the host's ctx.
//!
//! The napi binding implements [`Host`] over JS functions; tests implement it
//! with a recorder. Every call is awaited before the next one is made, so the
//! host sees callbacks one at a time, in order, and a slow `onLog` slows the
//! reading of the pod's log (backpressure) instead of growing a queue.

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

/// The argument of `onSpawn`: the host records it as the run's process
/// metadata. The pod is not a host process; `pid` is the host's own pid so
/// the host's liveness checks see a live process while `execute` is pending.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpawnInfo {
    pub pid: u32,
    /// Always `null`: there is no process group on the host side.
    pub process_group_id: Option<u32>,
    /// The `claude` container's start time (RFC 3339).
    pub started_at: String,
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
pub trait Host: Send + Sync {
    fn on_log(&self, stream: LogStream, chunk: String) -> impl Future<Output = Result<(), HostError>> + Send;
    fn on_meta(&self, meta: serde_json::Value) -> impl Future<Output = Result<(), HostError>> + Send;
    fn on_spawn(&self, info: SpawnInfo) -> impl Future<Output = Result<(), HostError>> + Send;

    /// Cancelled when the host cancels the run: newer hosts pass `ctx.signal`
    /// (an AbortSignal) and abort it from their cancel API. A host without
    /// one never cancels this way; the API poll of [`crate::cancel`] remains.
    fn cancellation(&self) -> CancellationToken {
        CancellationToken::new()
    }
}
