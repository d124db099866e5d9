//! Following the `claude` container's log, exactly once.
//!
//! The log is read with `follow=true&timestamps=true`. Every line carries the
//! kubelet's nanosecond timestamp; [`ResumeCursor`] remembers the last line
//! delivered, so when a stream drops we reconnect with `sinceTime` (truncated
//! to the second, because kube rounds it) and drop what was already delivered.
//! No `sinceSeconds` guesses, no reliance on the dedup filter — that filter
//! only stays as a safety net for lines a buggy kubelet repeats verbatim.
//!
//! The follower is finished when a read that *started after* the container had
//! terminated reaches EOF: only then is the log known to be drained (a stream
//! that ends around the time of termination may have been cut, not completed).
//!
//! Memory: one partial line, the batches of complete lines one network read
//! fills (each ≤ [`BATCH_BYTES`] plus the longest line), and the transcript
//! parser's bounded state.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::AsyncBufReadExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;
use tokio::sync::watch;

use crate::dedup::LineDedup;
use crate::host::{Host, HostError, LogStream};
use crate::lines::{Line, LineAssembler, ResumeCursor};
use crate::pod::CLAUDE_CONTAINER;
use crate::report::Reporter;
use crate::transcript::TranscriptParser;

/// Upper bound of one `onLog` chunk (lines are never split across chunks).
pub const BATCH_BYTES: usize = 1 << 20;

/// What the log follower needs to know about the pod, published by the pod watch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerView {
    /// The `claude` container runs or ran: its log exists.
    pub started: bool,
    /// The `claude` container has a terminated state.
    pub terminated: bool,
    /// The pod object is gone.
    pub pod_gone: bool,
    /// The pipeline wants the follower to stop now (cancel, deadline, Job gone).
    pub stop: bool,
}

/// How following ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowEnd {
    /// Read to EOF after the container terminated.
    Drained,
    /// The pod disappeared before its log could be drained.
    PodGone,
    /// The log could not be read at all (e.g. RBAC denies `pods/log`).
    Unreadable(String),
    /// Told to stop before the log was drained.
    Stopped,
}

/// Counters for diagnostics and the benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowStats {
    pub connections: u32,
    pub lines: u64,
    pub bytes: u64,
    pub dropped_duplicates: u64,
}

pub struct LogFollower<H: Host> {
    api: Api<Pod>,
    pod: String,
    reporter: Arc<Reporter<H>>,
    sink: LineSink,
    pub stats: FollowStats,
}

/// Consecutive failed connects tolerated before giving up on the log.
const MAX_FAILED_CONNECTS: u32 = 30;
/// …of which at most this many may be 403 Forbidden (about 10 s with the backoff).
const MAX_FORBIDDEN_CONNECTS: u32 = 8;
/// How long a followed stream's clean end waits for the watch to report the
/// container's exit before reconnecting anyway.
const EOF_SETTLE: Duration = Duration::from_secs(2);

impl<H: Host> LogFollower<H> {
    pub fn new(api: Api<Pod>, pod: String, reporter: Arc<Reporter<H>>) -> Self {
        LogFollower { api, pod, reporter, sink: LineSink::new(), stats: FollowStats::default() }
    }

    /// Follows until drained (or the pod is gone), feeding `parser` and the host.
    pub async fn run(
        &mut self,
        parser: &mut TranscriptParser,
        mut view: watch::Receiver<ContainerView>,
    ) -> Result<FollowEnd, HostError> {
        let mut failures = 0u32;
        // Nothing to read before the container has started.
        if view.wait_for(|v| v.started || v.pod_gone || v.stop).await.is_err() {
            return Ok(FollowEnd::Stopped);
        }
        loop {
            let before = *view.borrow_and_update();
            if before.stop {
                return Ok(FollowEnd::Stopped);
            }
            if before.pod_gone {
                return Ok(FollowEnd::PodGone);
            }
            let params = LogParams {
                container: Some(CLAUDE_CONTAINER.to_owned()),
                // After termination a plain read returns the rest and closes.
                follow: !before.terminated,
                timestamps: true,
                since_time: self.sink.cursor.since_time(),
                ..LogParams::default()
            };
            self.stats.connections += 1;
            self.sink.cursor.reconnected();
            let stream = match self.api.log_stream(&self.pod, &params).await {
                Ok(s) => s,
                Err(e) => {
                    if crate::cluster::is_not_found(&e) && before.terminated {
                        return Ok(FollowEnd::PodGone);
                    }
                    // A 403 is usually final (RBAC denies pods/log), but an
                    // apiserver that just restarted answers 403 until its RBAC
                    // caches are warm: give it a few seconds before giving up.
                    let forbidden = matches!(&e, kube::Error::Api(s) if s.code == 403);
                    failures += 1;
                    if failures >= MAX_FAILED_CONNECTS || (forbidden && failures >= MAX_FORBIDDEN_CONNECTS) {
                        return Ok(FollowEnd::Unreadable(crate::cluster::describe_error(&e)));
                    }
                    tracing::debug!(error = %e, failures, "log connect failed; retrying");
                    // A pod that is gone will also show up on the watch; wait
                    // for either that or a short backoff.
                    let backoff = Duration::from_millis(200 * u64::from(failures.min(10)));
                    let _ = tokio::time::timeout(backoff, view.changed()).await;
                    continue;
                }
            };
            let Some(clean_eof) = self.read_stream(stream, parser, &mut view).await? else {
                return Ok(FollowEnd::Stopped);
            };
            failures = 0;
            if clean_eof && before.terminated {
                return Ok(FollowEnd::Drained);
            }
            if !clean_eof {
                tracing::debug!(pod = %self.pod, "log stream dropped; resuming from the last line");
            } else if !before.terminated {
                // A followed stream ends cleanly when the container exits, and
                // the pod watch says so a moment later. Reconnecting at once
                // would only find the same end again (a request each time);
                // wait for the watch, then drain once more with follow=false.
                let _ = tokio::time::timeout(EOF_SETTLE, view.wait_for(|v| v.terminated || v.pod_gone || v.stop)).await;
            }
        }
    }

    /// Reads one connection. Returns whether it ended in a clean EOF, or
    /// `None` when told to stop.
    async fn read_stream(
        &mut self,
        stream: impl futures::AsyncBufRead + Unpin,
        parser: &mut TranscriptParser,
        view: &mut watch::Receiver<ContainerView>,
    ) -> Result<Option<bool>, HostError> {
        let mut stream = stream;
        let mut assembler = LineAssembler::new();
        let mut batch = String::new();
        let clean = loop {
            // Hand the host one chunk per burst, not one per network read:
            // while bytes are already buffered take them (`now_or_never`),
            // and flush the batch when the stream would block (or it is
            // full). A read per line would cost a JS callback per line.
            let read = if batch.is_empty() {
                tokio::select! {
                    r = stream.fill_buf() => r,
                    _ = view.wait_for(|v| v.stop) => return Ok(None),
                }
            } else {
                match stream.fill_buf().now_or_never() {
                    Some(r) => r,
                    None => {
                        self.reporter.log(LogStream::Stdout, std::mem::take(&mut batch)).await?;
                        continue;
                    }
                }
            };
            let chunk = match read {
                Ok([]) => break true,
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "log stream error");
                    break false;
                }
            };
            let n = chunk.len();
            // Lines are handed over borrowed from the chunk; a batch that
            // fills up meanwhile waits in `full` until the chunk is done.
            let mut full = Vec::new();
            assembler.push_each(chunk, |line| {
                self.admit(line, parser, &mut batch);
                if batch.len() >= BATCH_BYTES {
                    full.push(std::mem::take(&mut batch));
                }
            });
            stream.consume_unpin(n);
            for b in full {
                self.reporter.log(LogStream::Stdout, b).await?;
            }
        };
        // A clean EOF ends the last line even without a newline; after a drop
        // the partial line is discarded — the kubelet sends it again, whole.
        if clean && let Some(line) = assembler.finish() {
            self.admit(Line { ts: line.ts, bytes: &line.bytes }, parser, &mut batch);
        }
        if !batch.is_empty() {
            self.reporter.log(LogStream::Stdout, batch).await?;
        }
        Ok(Some(clean))
    }

    fn admit(&mut self, line: Line<'_>, parser: &mut TranscriptParser, batch: &mut String) {
        match self.sink.admit(line, parser, batch) {
            Admit::Delivered => {
                self.stats.lines += 1;
                self.stats.bytes += line.bytes.len() as u64 + 1;
            }
            Admit::Duplicate => self.stats.dropped_duplicates += 1,
            Admit::Replayed => {}
        }
    }
}

/// What became of a line handed to [`LineSink::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Parsed and appended to the batch.
    Delivered,
    /// Already delivered before a reconnect (the resume cursor).
    Replayed,
    /// A verbatim repeat the dedup net caught.
    Duplicate,
}

/// What the follower does with every line, the network apart: the resume
/// cursor, the dedup net, the transcript parser and the batch for onLog.
/// Public so that `examples/log_pipeline` times exactly this.
#[derive(Debug, Default)]
pub struct LineSink {
    pub cursor: ResumeCursor,
    dedup: LineDedup,
}

impl LineSink {
    pub fn new() -> Self {
        Self::default()
    }

    /// Passes `line` through the cursor and the dedup net; a new line goes to
    /// `parser` and, with its newline, onto `batch` (invalid UTF-8 as U+FFFD).
    pub fn admit(&mut self, line: Line<'_>, parser: &mut TranscriptParser, batch: &mut String) -> Admit {
        if !self.cursor.admit_at(line.ts) {
            return Admit::Replayed;
        }
        // UTF-8 checked once, and the JSON read once, for the dedup net,
        // the parser and the batch.
        match simdutf8::basic::from_utf8(line.bytes) {
            Ok(text) => {
                let read = parser.read(text);
                let object = read.is_json_object().then(|| read.trimmed().as_bytes());
                if !self.dedup.admit_parsed(line.bytes, object) {
                    return Admit::Duplicate;
                }
                parser.apply(read);
                batch.push_str(text);
            }
            Err(_) => {
                if !self.dedup.admit(line.bytes) {
                    return Admit::Duplicate;
                }
                parser.feed(line.bytes);
                batch.push_str(&String::from_utf8_lossy(line.bytes));
            }
        }
        batch.push('\n');
        Admit::Delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The sink hands on what the follower always did: every new line,
        /// lossily decoded, with its newline; the parser reads the raw bytes
        /// — valid UTF-8 or not, the one UTF-8 check changes nothing.
        #[test]
        fn sink_delivers_like_lossy_decoding(lines in prop::collection::vec(prop_oneof![
            prop::collection::vec(any::<u8>(), 0..40),
            "[ -~é]{0,40}".prop_map(String::into_bytes),
            Just(br#"{"type":"assistant","message":{"id":"m","content":[{"type":"text","text":"hi"}]}}"#.to_vec()),
            Just(b"{\"type\":\"user\",\"x\":\"\xff\"}".to_vec()),
            // Whitespace the dedup net (ASCII) and the parser (Unicode) trim differently.
            Just(b" {\"type\":\"user\"}\t".to_vec()),
            Just(b"\x0b{\"type\":\"user\"}".to_vec()),
            Just("{\"type\":\"user\"}\u{3000}".as_bytes().to_vec()),
            Just(br#"{"type":"user","type":"user"}"#.to_vec()),
            Just(br#"{"type":"system","subtype":"init","model":"m","session_id":"s"}"#.to_vec()),
            Just(br#"{"type":"result","result":"ok","usage":{"output_tokens":2}}"#.to_vec()),
            Just(format!(r#"{{"type":"user","deep":{}{}}}"#, "[".repeat(200), "]".repeat(200)).into_bytes()),
        ], 0..30)) {
            let mut sink = LineSink::new();
            let (mut parser, mut reference) = (TranscriptParser::new("m"), TranscriptParser::new("m"));
            let (mut batch, mut want) = (String::new(), String::new());
            let mut dedup = LineDedup::new();
            for l in &lines {
                let admitted = sink.admit(Line { ts: None, bytes: l }, &mut parser, &mut batch) == Admit::Delivered;
                prop_assert_eq!(admitted, dedup.admit(l));
                if admitted {
                    reference.feed(l);
                    want.push_str(&String::from_utf8_lossy(l));
                    want.push('\n');
                }
            }
            prop_assert_eq!(batch, want);
            prop_assert_eq!(parser.finish(), reference.finish());
        }
    }

    #[test]
    fn sink_drops_replayed_and_repeated_lines() {
        let mut sink = LineSink::new();
        let mut parser = TranscriptParser::new("");
        let mut batch = String::new();
        let at = |s: &str| s.parse().ok();
        let line = br#"{"type":"user"}"#;
        assert_eq!(sink.admit(Line { ts: at("2026-11-23T10:00:01Z"), bytes: line }, &mut parser, &mut batch), Admit::Delivered);
        sink.cursor.reconnected();
        assert_eq!(sink.admit(Line { ts: at("2026-11-23T10:00:01Z"), bytes: line }, &mut parser, &mut batch), Admit::Replayed);
        assert_eq!(sink.admit(Line { ts: at("2026-11-23T10:00:02Z"), bytes: line }, &mut parser, &mut batch), Admit::Duplicate);
        assert_eq!(batch, "{\"type\":\"user\"}\n");
    }
}
