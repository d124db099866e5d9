//! The one door to the host's callbacks during a run.
//!
//! Several parts of the pipeline talk to the host at once (the log follower,
//! the keepalive, the pod watcher's phase lines). The host's contract is one
//! callback at a time, in order, each awaited; [`Reporter`] enforces that with
//! an async mutex held across the await, so a slow host applies backpressure
//! to whoever is reporting.
//!
//! Invariant: nothing reported here contains a secret; callers pass messages
//! they built from names, never from env values or tokens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::host::{Host, HostError, LogStream};

pub struct Reporter<H: Host> {
    host: Arc<H>,
    turn: Mutex<()>,
    last_log: std::sync::Mutex<Instant>,
}

impl<H: Host> Reporter<H> {
    pub fn new(host: Arc<H>) -> Self {
        Reporter { host, turn: Mutex::new(()), last_log: std::sync::Mutex::new(Instant::now()) }
    }

    /// The host's cancellation (see [`Host::cancellation`]).
    pub fn cancellation(&self) -> crate::host::CancellationToken {
        self.host.cancellation()
    }

    /// Time since the last `onLog` call returned (for the keepalive line).
    pub fn since_last_log(&self) -> Duration {
        self.last_log.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }

    pub async fn log(&self, stream: LogStream, chunk: String) -> Result<(), HostError> {
        let _turn = self.turn.lock().await;
        let r = self.host.on_log(stream, chunk).await;
        *self.last_log.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        r
    }

    /// An adapter line on stdout, `[paperclip] …\n`.
    pub async fn info(&self, message: impl AsRef<str>) -> Result<(), HostError> {
        self.log(LogStream::Stdout, format!("[paperclip] {}\n", message.as_ref())).await
    }

    /// An adapter line on stderr, `[paperclip] …\n`.
    pub async fn warn(&self, message: impl AsRef<str>) -> Result<(), HostError> {
        self.log(LogStream::Stderr, format!("[paperclip] {}\n", message.as_ref())).await
    }

    pub async fn meta(&self, meta: serde_json::Value) -> Result<(), HostError> {
        let _turn = self.turn.lock().await;
        self.host.on_meta(meta).await
    }
}
