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
//! Memory: one partial line, the batch in flight to `onLog` and the one
//! filling meanwhile (each ≤ [`BATCH_BYTES`] plus the longest line; one
//! network read may seal more than one), and the transcript parser's
//! bounded state.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::AsyncBufReadExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use crate::dedup::LineDedup;
use crate::host::{Host, HostError, LogStream};
use crate::lines::{Line, LineAssembler, ResumeCursor};
use crate::pod::CLAUDE_CONTAINER;
use crate::report::Reporter;
use crate::transcript::TranscriptParser;

/// Upper bound of one `onLog` chunk (lines are never split across chunks).
pub const BATCH_BYTES: usize = 1 << 20;

/// A batch this large is handed over without waiting for more. One `onLog`
/// call across napi costs ~23 µs whatever its size while the machine is
/// busy (~95 µs when both threads must wake an idle core), and each byte
/// ~2.2 ns (the line pipeline 1.3, the JS string 0.9; bench: `crossing`):
/// at 256 KiB the fixed cost is ~4 % of the batch's work.
pub const MIN_BATCH_BYTES: usize = 256 << 10;

/// The longest a complete line waits for more to join its batch. It bounds
/// the calls a trickling stream makes (≤ 200 per second: ≤ 0.5 % of a core
/// at 23 µs, ≤ 2 % at 95) at a delay no reader of a live log can see.
pub const HOLD: Duration = Duration::from_millis(5);

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
    ///
    /// Reading and the host's `onLog` overlap: one call is in flight while
    /// the next lines are read and parsed into a batch. A batch is handed
    /// over, once no call is in flight, when it holds [`MIN_BATCH_BYTES`] or
    /// its first line has waited [`HOLD`]; it is sealed at [`BATCH_BYTES`].
    /// So a quiet agent's line goes over alone after at most `HOLD`, a
    /// chatty agent's lines ride together in chunks of 256 KiB – 1 MiB, and
    /// the fixed cost of a call across napi (bench: `crossing`) is paid per
    /// burst, not per line.
    ///
    /// Invariants: the host sees one call at a time, in stream order; a
    /// complete line waits at most `HOLD` or the call in flight (the host's
    /// own time), whichever is longer, plus the read it arrived in; at most
    /// one batch in flight and the lines of one more filling (each ≤
    /// [`BATCH_BYTES`] plus one line), and reading pauses while a sealed
    /// batch waits (backpressure). On stop, on a dropped stream and on EOF
    /// whatever complete lines were read are still handed over before
    /// returning.
    async fn read_stream(
        &mut self,
        stream: impl futures::AsyncBufRead + Unpin,
        parser: &mut TranscriptParser,
        view: &mut watch::Receiver<ContainerView>,
    ) -> Result<Option<bool>, HostError> {
        let mut stream = stream;
        let mut assembler = LineAssembler::new();
        let mut batch = Batches::default();
        let reporter = Arc::clone(&self.reporter);
        let mut flight: Option<Flight<'_>> = None;
        let end = loop {
            // Checked on every pass, so that a stream that is always ready
            // cannot keep a stop waiting.
            if view.borrow().stop {
                break None;
            }
            if flight.is_none()
                && let Some(chunk) = batch.due(Instant::now())
            {
                flight = Some(Box::pin(reporter.log(LogStream::Stdout, chunk)));
            }
            // Take what the stream already holds, without waiting.
            if !batch.full()
                && let Some(read) = stream.fill_buf().now_or_never()
            {
                match self.take(read, &mut assembler, parser, &mut batch) {
                    Taken::Bytes(n) => {
                        stream.consume_unpin(n);
                        continue;
                    }
                    Taken::End(clean) => break Some(clean),
                }
            }
            let hold = batch.hold_until().filter(|_| flight.is_none());
            tokio::select! {
                r = async { flight.as_mut().expect("guarded").await }, if flight.is_some() => {
                    flight = None;
                    r?;
                }
                read = stream.fill_buf(), if !batch.full() => {
                    match self.take(read, &mut assembler, parser, &mut batch) {
                        Taken::Bytes(n) => stream.consume_unpin(n),
                        Taken::End(clean) => break Some(clean),
                    }
                }
                _ = sleep_until(hold.unwrap_or_else(Instant::now)), if hold.is_some() => {}
                _ = view.wait_for(|v| v.stop) => break None,
            }
        };
        // A clean EOF ends the last line even without a newline; after a drop
        // the partial line is discarded — the kubelet sends it again, whole.
        if end == Some(true) && let Some(line) = assembler.finish() {
            self.admit(Line { ts: line.ts, bytes: &line.bytes }, parser, &mut batch.filling);
        }
        if let Some(f) = flight.take() {
            f.await?;
        }
        while let Some(chunk) = batch.next() {
            reporter.log(LogStream::Stdout, chunk).await?;
        }
        Ok(end)
    }

    /// One read's bytes through the line pipeline into `batch`.
    fn take(
        &mut self,
        read: std::io::Result<&[u8]>,
        assembler: &mut LineAssembler,
        parser: &mut TranscriptParser,
        batch: &mut Batches,
    ) -> Taken {
        let chunk = match read {
            Ok([]) => return Taken::End(true),
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "log stream error");
                return Taken::End(false);
            }
        };
        // Lines are handed over borrowed from the chunk; a batch that fills
        // up meanwhile waits, whole, until it can be handed over.
        let read_at = Instant::now();
        assembler.push_each(chunk, |line| {
            self.admit(line, parser, batch.filling(read_at));
            batch.seal_if_full();
        });
        Taken::Bytes(chunk.len())
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

/// The `onLog` call in flight while the follower reads on.
type Flight<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), HostError>> + Send + 'a>>;

/// What one read gave [`LogFollower::read_stream`].
enum Taken {
    /// This many bytes went through the line pipeline.
    Bytes(usize),
    /// The stream ended: cleanly (EOF) or not (an error).
    End(bool),
}

/// Complete lines waiting for `onLog`: full batches in stream order, then
/// the one filling. A batch is sealed once it reaches [`BATCH_BYTES`], so
/// none is larger than that plus one line.
#[derive(Debug, Default)]
struct Batches {
    sealed: std::collections::VecDeque<String>,
    filling: String,
    /// When the filling batch's first line was read.
    since: Option<Instant>,
}

impl Batches {
    /// The batch a line read at `read_at` goes onto.
    fn filling(&mut self, read_at: Instant) -> &mut String {
        if self.filling.is_empty() {
            self.since = Some(read_at);
        }
        &mut self.filling
    }

    fn seal_if_full(&mut self) {
        if self.filling.len() >= BATCH_BYTES {
            self.sealed.push_back(std::mem::take(&mut self.filling));
        }
    }

    /// Reading waits while a sealed batch is waiting.
    fn full(&self) -> bool {
        !self.sealed.is_empty()
    }

    /// Until when the filling batch may wait for more lines.
    fn hold_until(&self) -> Option<Instant> {
        self.since.filter(|_| !self.filling.is_empty()).map(|t| t + HOLD)
    }

    /// The chunk to hand over now, if one is due: a sealed batch, or the
    /// filling one once it is large enough or its first line waited `HOLD`.
    fn due(&mut self, now: Instant) -> Option<String> {
        if let Some(sealed) = self.sealed.pop_front() {
            return Some(sealed);
        }
        let ready = self.filling.len() >= MIN_BATCH_BYTES || self.hold_until().is_some_and(|t| now >= t);
        ready.then(|| self.next()).flatten()
    }

    /// The next chunk regardless of size or time, oldest first (at the end).
    fn next(&mut self) -> Option<String> {
        self.sealed.pop_front().or_else(|| (!self.filling.is_empty()).then(|| std::mem::take(&mut self.filling)))
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

    /// How `read_stream` hands a stream to the host, on tokio's paused clock.
    mod handover {
        use std::io;
        use std::sync::Mutex;
        use std::time::Duration;

        use futures::channel::mpsc;
        use futures::{SinkExt, TryStreamExt};
        use tokio::time::{Instant, sleep};

        use super::super::*;

        /// Records each chunk with the time it arrived; each call takes `delay`.
        struct Recorder {
            start: Instant,
            delay: Duration,
            fail: bool,
            calls: Mutex<Vec<(Duration, String)>>,
        }

        impl Host for Recorder {
            async fn on_log(&self, _stream: LogStream, chunk: String) -> Result<(), HostError> {
                self.calls.lock().unwrap().push((self.start.elapsed(), chunk));
                sleep(self.delay).await;
                if self.fail { Err(HostError { callback: "onLog", message: "host threw".into() }) } else { Ok(()) }
            }
            async fn on_meta(&self, _meta: serde_json::Value) -> Result<(), HostError> {
                Ok(())
            }
        }

        /// Paused-clock time since the test's runtime started.
        fn host_clock() -> Duration {
            START.with(|s| s.elapsed())
        }
        thread_local! {
            static START: Instant = Instant::now();
        }

        fn line(i: usize) -> String {
            format!("{{\"type\":\"assistant\",\"n\":{i}}}")
        }
        fn raw(i: usize) -> Vec<u8> {
            format!("2026-11-23T10:00:00.{i:09}Z {}\n", line(i)).into_bytes()
        }

        struct Setup {
            host: Arc<Recorder>,
            follower: LogFollower<Recorder>,
            tx: mpsc::Sender<io::Result<Vec<u8>>>,
            rx: mpsc::Receiver<io::Result<Vec<u8>>>,
        }

        fn setup(delay_ms: u64, fail: bool) -> Setup {
            let host = Arc::new(Recorder { start: START.with(|s| *s), delay: Duration::from_millis(delay_ms), fail, calls: Mutex::default() });
            // Never connected: read_stream gets its bytes from the channel.
            let client = kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
            let follower = LogFollower::new(Api::namespaced(client, "ns"), "pod".into(), Arc::new(Reporter::new(host.clone())));
            // No room to queue: a send completes only once the follower reads.
            let (tx, rx) = mpsc::channel(0);
            Setup { host, follower, tx, rx }
        }

        fn calls(host: &Recorder) -> Vec<(Duration, String)> {
            host.calls.lock().unwrap().clone()
        }
        fn joined(calls: &[(Duration, String)]) -> String {
            calls.iter().map(|(_, c)| c.as_str()).collect()
        }
        fn want(range: std::ops::Range<usize>) -> String {
            range.map(|i| format!("{}\n", line(i))).collect()
        }

        #[tokio::test(start_paused = true)]
        async fn lines_read_while_a_call_is_in_flight_ride_together() {
            let Setup { host, mut follower, mut tx, rx } = setup(50, false);
            let producer = tokio::spawn(async move {
                tx.send(Ok(raw(0))).await.unwrap();
                sleep(Duration::from_millis(9)).await;
                for i in 1..10 {
                    sleep(Duration::from_millis(1)).await;
                    tx.send(Ok(raw(i))).await.unwrap();
                }
                let sent = host_clock();
                sleep(Duration::from_millis(10)).await;
                sent
            });
            let (_vtx, mut view) = watch::channel(ContainerView::default());
            let mut parser = TranscriptParser::new("m");
            let end = follower.read_stream(rx.into_async_read(), &mut parser, &mut view).await.unwrap();
            assert_eq!(end, Some(true));
            let calls = calls(&host);
            // The first line waited HOLD for company, in vain; the nine read
            // during its call went over together, when it returned.
            assert_eq!(calls.iter().map(|(t, _)| t.as_millis()).collect::<Vec<_>>(), [5, 55]);
            assert_eq!(calls[0].1, want(0..1));
            assert_eq!(joined(&calls), want(0..10));
            assert_eq!(follower.stats.lines, 10);
            // …and were read while that call was in flight, not after it.
            let sent = producer.await.unwrap();
            assert!(sent <= Duration::from_millis(20), "the last line was taken at {sent:?}, the first call ended at 55 ms");
        }

        #[tokio::test(start_paused = true)]
        async fn an_idle_host_gets_each_line_after_the_hold() {
            let Setup { host, mut follower, mut tx, rx } = setup(0, false);
            tokio::spawn(async move {
                for i in 0..5 {
                    tx.send(Ok(raw(i))).await.unwrap();
                    sleep(Duration::from_millis(7)).await;
                }
            });
            let (_vtx, mut view) = watch::channel(ContainerView::default());
            let mut parser = TranscriptParser::new("m");
            follower.read_stream(rx.into_async_read(), &mut parser, &mut view).await.unwrap();
            let calls = calls(&host);
            assert_eq!(calls.iter().map(|(t, _)| t.as_millis()).collect::<Vec<_>>(), [5, 12, 19, 26, 33]);
            assert_eq!(joined(&calls), want(0..5));
        }

        #[tokio::test(start_paused = true)]
        async fn a_slow_host_gets_full_batches_in_order_and_reading_waits_for_it() {
            let Setup { host, mut follower, mut tx, rx } = setup(10, false);
            let n = 40_000; // about 1.3 MiB of lines, in 64 KiB reads, all there at once
            let mut bytes = Vec::new();
            for i in 0..n {
                bytes.extend_from_slice(&raw(i));
            }
            let total = bytes.len();
            tokio::spawn(async move {
                for c in bytes.chunks(64 << 10) {
                    tx.send(Ok(c.to_vec())).await.unwrap();
                }
            });
            let (_vtx, mut view) = watch::channel(ContainerView::default());
            let mut parser = TranscriptParser::new("m");
            follower.read_stream(rx.into_async_read(), &mut parser, &mut view).await.unwrap();
            let calls = calls(&host);
            assert_eq!(joined(&calls), want(0..n));
            let longest = line(n).len() + 1;
            assert!(calls.iter().all(|(_, c)| c.len() <= BATCH_BYTES + longest), "a chunk exceeded the batch bound");
            // Batches of at least MIN_BATCH_BYTES, filled while the one before is in flight.
            assert!(calls.len() <= total / MIN_BATCH_BYTES + 1, "{} calls for {total} bytes", calls.len());
            assert!(calls[..calls.len() - 1].iter().all(|(_, c)| c.len() >= MIN_BATCH_BYTES));
        }

        #[tokio::test(start_paused = true)]
        async fn a_batch_large_enough_goes_over_without_waiting() {
            let Setup { host, mut follower, mut tx, rx } = setup(0, false);
            let n = 10_000; // about 330 KiB, more than MIN_BATCH_BYTES
            let bytes: Vec<u8> = (0..n).flat_map(raw).collect();
            tokio::spawn(async move {
                for c in bytes.chunks(16 << 10) {
                    tx.send(Ok(c.to_vec())).await.unwrap();
                }
                sleep(Duration::from_secs(1)).await;
            });
            let (_vtx, mut view) = watch::channel(ContainerView::default());
            let mut parser = TranscriptParser::new("m");
            follower.read_stream(rx.into_async_read(), &mut parser, &mut view).await.unwrap();
            let calls = calls(&host);
            assert_eq!(joined(&calls), want(0..n));
            assert_eq!(calls[0].0, Duration::ZERO, "the first {} bytes waited", calls[0].1.len());
            assert!(calls[0].1.len() >= MIN_BATCH_BYTES);
            // The rest is smaller: it waits HOLD, then goes over.
            assert_eq!(calls.iter().map(|(t, _)| t.as_millis()).collect::<Vec<_>>(), [0, 5]);
        }

        #[tokio::test(start_paused = true)]
        async fn a_stop_still_hands_over_what_was_read() {
            let Setup { host, mut follower, mut tx, rx } = setup(50, false);
            let (vtx, mut view) = watch::channel(ContainerView::default());
            tokio::spawn(async move {
                tx.send(Ok(raw(0))).await.unwrap();
                sleep(Duration::from_millis(10)).await;
                tx.send(Ok(raw(1))).await.unwrap();
                sleep(Duration::from_millis(10)).await;
                vtx.send_modify(|v| v.stop = true);
                // The stream stays open: only the stop ends the read.
                sleep(Duration::from_secs(3600)).await;
                drop((tx, vtx));
            });
            let mut parser = TranscriptParser::new("m");
            let end = follower.read_stream(rx.into_async_read(), &mut parser, &mut view).await.unwrap();
            assert_eq!(end, None);
            let calls = calls(&host);
            assert_eq!(joined(&calls), want(0..2));
            assert_eq!(host.start.elapsed().as_millis(), 105, "ended when the last call returned");
        }

        #[tokio::test(start_paused = true)]
        async fn a_host_error_ends_the_read_with_it() {
            let Setup { host, mut follower, mut tx, rx } = setup(5, true);
            tokio::spawn(async move {
                for i in 0..3 {
                    let _ = tx.send(Ok(raw(i))).await;
                    sleep(Duration::from_millis(20)).await;
                }
            });
            let (_vtx, mut view) = watch::channel(ContainerView::default());
            let mut parser = TranscriptParser::new("m");
            let err = follower.read_stream(rx.into_async_read(), &mut parser, &mut view).await.unwrap_err();
            assert_eq!(err.message, "host threw");
            assert_eq!(calls(&host).len(), 1, "no call after the one that failed");
        }

        #[tokio::test(start_paused = true)]
        async fn a_dropped_stream_hands_over_its_complete_lines_only() {
            let Setup { host, mut follower, mut tx, rx } = setup(0, false);
            let mut partial = raw(1);
            partial.truncate(20);
            tokio::spawn(async move {
                tx.send(Ok([raw(0), partial].concat())).await.unwrap();
                tx.send(Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))).await.unwrap();
            });
            let (_vtx, mut view) = watch::channel(ContainerView::default());
            let mut parser = TranscriptParser::new("m");
            let end = follower.read_stream(rx.into_async_read(), &mut parser, &mut view).await.unwrap();
            assert_eq!(end, Some(false));
            assert_eq!(joined(&calls(&host)), want(0..1));
        }
    }
}
