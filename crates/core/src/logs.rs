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
//! The followed stream is not waited out: the kubelet ends it up to a second
//! after the container (it polls), so once the watch says the container
//! terminated and the stream has been quiet for [`QUIET_AFTER_EXIT`], the
//! drain is read at once.
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
use crate::job_events::{EventSink, Milestone};
use crate::lines::{Line, LineAssembler, LogGap, ResumeCursor};
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

/// Where the log is read from: the pod's `pods/log` (an `Api<Pod>` and the
/// pod's name), or in the tests a model of the kubelet.
pub trait LogSource: Send {
    type Stream: futures::AsyncBufRead + Unpin + Send;
    fn open(&mut self, params: &LogParams) -> impl std::future::Future<Output = Result<Self::Stream, kube::Error>> + Send;
}

impl LogSource for (Api<Pod>, String) {
    type Stream = std::pin::Pin<Box<dyn futures::AsyncBufRead + Send>>;
    async fn open(&mut self, params: &LogParams) -> Result<Self::Stream, kube::Error> {
        Ok(Box::pin(self.0.log_stream(&self.1, params).await?))
    }
}

/// How one read of the log ended, for [`EndOfLog`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadEnd {
    /// A clean EOF (the response's end), not an error.
    pub clean: bool,
    /// The read showed any byte of a line (replayed, new or unfinished).
    pub any_line: bool,
    /// Lines past the resume cursor.
    pub new_lines: u64,
    /// The read showed the last delivered line again, or went past it.
    pub caught_up: bool,
    /// The unfinished line it ended in (raw, timestamp included), or empty.
    pub partial: Vec<u8>,
}

/// What [`EndOfLog::judge`] makes of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The log is drained; the container's last line, without its newline, if it had one.
    Drained(Option<Vec<u8>>),
    /// The container ended, and its log's current file no longer holds the
    /// last delivered line: what came after it is lost to rotation.
    LostAfterLast,
    /// Read again (resuming from the cursor).
    Again,
}

/// After this many reads that start after the container's end and show no
/// line at all, the last delivered line is taken as rotated away.
const EMPTY_DRAINS: u32 = 3;
/// After this many reads after the container's end that do not confirm an
/// end, the log is given up as drained (each is a request; a leg that
/// breaks on every read at another place never settles).
const MAX_UNCONFIRMED_DRAINS: u32 = 30;

/// When a clean end of the log stream is the end of the container's log.
///
/// kube-apiserver copies the kubelet's response into ours and ignores the
/// copy's error (`responsewriters.StreamObject`), so a broken
/// apiserver→kubelet leg (kubelet restart, network blip) ends our response
/// **cleanly, possibly in mid-line**, while the container runs on or after
/// it ended. The stream itself cannot tell the container's end from a
/// broken leg. Hence the invariant:
///
/// **The log is drained only when a read that started after the container
/// terminated ends cleanly exactly where the clean read before it ended** —
/// no new line, the last delivered line shown again (caught up), and the
/// same unfinished line (or none). Two reads ending at the same byte is the
/// file's end: a broken leg ends at a byte of its own. The unfinished line
/// of such a confirmed end is the container's last line without a newline,
/// and is delivered; an unfinished line at any other end is dropped
/// unseen (it is not in the cursor, so the next read sends it again,
/// whole). In the common case the followed stream ends with the
/// container and the one drain after it confirms that end: no extra
/// request.
#[derive(Debug, Default)]
pub struct EndOfLog {
    /// Where the last clean read that caught up ended: its unfinished line.
    prev: Option<Vec<u8>>,
    empty_drains: u32,
    unconfirmed: u32,
}

impl EndOfLog {
    /// Judges a read; `after_exit`: it started after the container had
    /// terminated; `delivered`: some line was delivered before.
    pub fn judge(&mut self, read: ReadEnd, after_exit: bool, delivered: bool) -> Verdict {
        if !read.clean {
            self.prev = None;
            return Verdict::Again;
        }
        if after_exit {
            if read.new_lines == 0 && read.caught_up && self.prev.as_ref() == Some(&read.partial) {
                return Verdict::Drained((!read.partial.is_empty()).then_some(read.partial));
            }
            self.empty_drains = if !read.any_line && delivered { self.empty_drains + 1 } else { 0 };
            if self.empty_drains >= EMPTY_DRAINS {
                return Verdict::LostAfterLast;
            }
            self.unconfirmed += 1;
            if self.unconfirmed >= MAX_UNCONFIRMED_DRAINS {
                tracing::warn!(reads = self.unconfirmed, "the log's end was never read twice at the same place; taking it as drained");
                return Verdict::Drained(None);
            }
        }
        self.prev = read.caught_up.then_some(read.partial);
        Verdict::Again
    }
}

/// Counters for diagnostics and the benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowStats {
    pub connections: u32,
    /// Of them, drains that read the log's tail rather than its last second.
    pub tail_drains: u32,
    /// Followed streams ended here, quiet after the container's end, rather
    /// than waiting for the kubelet to end them.
    pub quiet_ends: u32,
    pub lines: u64,
    pub bytes: u64,
    pub dropped_duplicates: u64,
    /// Windows in which lines may have been lost to log rotation.
    pub gaps: Vec<LogGap>,
}

pub struct LogFollower<H: Host> {
    api: Api<Pod>,
    pod: String,
    reporter: Arc<Reporter<H>>,
    sink: LineSink,
    pub stats: FollowStats,
    /// Lines read (replays included) and lines past the cursor, over all connections.
    read_lines: u64,
    new_lines: u64,
    /// The Job's Events: a resumed stream, lost lines.
    events: EventSink,
    /// A connection that may be a resume (its number and cursor): reported
    /// when it delivers a new line.
    resume_unreported: Option<(u32, Option<String>)>,
}

/// Consecutive failed connects tolerated before giving up on the log.
const MAX_FAILED_CONNECTS: u32 = 30;
/// …of which at most this many may be 403 Forbidden (about 10 s with the backoff).
const MAX_FORBIDDEN_CONNECTS: u32 = 8;
/// How long a followed stream's clean end waits for the watch to report the
/// container's exit before reconnecting anyway.
const EOF_SETTLE: Duration = Duration::from_secs(2);
/// A followed stream outlives its container by up to a second: the kubelet
/// sees the end only when its wait for more output runs out (cri-client
/// `waitLogs`: an fsnotify event or `logForceCheckPeriod`, 1 s, then
/// `isContainerRunning`). Once the watch says the container terminated,
/// its log file is whole (containerd's CRI sets the exit status only after
/// the container's output is drained into it), so a followed stream that
/// has brought nothing for this long since has nothing coming that the
/// drain will not read: it is ended here, and the drain read at once — the
/// request every run makes anyway. Measured on the real node before this:
/// a median 0.5 s between the terminated status and `execute()` resolving.
///
/// Usually the stream has been quiet for far longer when the status comes
/// (the kubelet sees an exit on its next relist, ~0.5 s on average), and the
/// drain starts at once. It must not be short: a stream still catching up
/// on a burst that pauses this long is cut too early, and the drain then
/// re-reads from the second (on the real node a 20 ms threshold did so on
/// a 100 MiB burst, costing the kubelet and the apiserver the burst again).
const QUIET_AFTER_EXIT: Duration = Duration::from_millis(100);

impl<H: Host> LogFollower<H> {
    pub fn new(api: Api<Pod>, pod: String, reporter: Arc<Reporter<H>>) -> Self {
        LogFollower {
            api,
            pod,
            reporter,
            sink: LineSink::new(),
            stats: FollowStats::default(),
            read_lines: 0,
            new_lines: 0,
            events: EventSink::default(),
            resume_unreported: None,
        }
    }

    fn report_resume(&self, connection: u32, since: Option<String>) {
        tracing::info!(connection, since_time = since.as_deref().unwrap_or("the start"), "log stream resumed");
        self.events.note(Milestone::LogResumed { pod: self.pod.clone(), connection, since });
    }

    /// Reports a resumed stream and lost lines as Events on the Job too.
    pub fn with_events(mut self, events: EventSink) -> Self {
        self.events = events;
        self
    }

    /// Follows until drained (or the pod is gone), feeding `parser` and the host.
    pub async fn run(&mut self, parser: &mut TranscriptParser, view: watch::Receiver<ContainerView>) -> Result<FollowEnd, HostError> {
        let mut source = (self.api.clone(), self.pod.clone());
        self.run_from(&mut source, parser, view).await
    }

    /// [`Self::run`], reading from `source` (the apiserver, or a test's kubelet).
    pub async fn run_from<S: LogSource>(
        &mut self,
        source: &mut S,
        parser: &mut TranscriptParser,
        mut view: watch::Receiver<ContainerView>,
    ) -> Result<FollowEnd, HostError> {
        let mut failures = 0u32;
        let mut end_of_log = EndOfLog::default();
        // The last stream broke (rather than ending cleanly).
        let mut resume_pending = false;
        // Connections opened (`stats.connections` counts attempts).
        let mut opened = 0u32;
        // Drains read a tail until one begins too late to be counted.
        let mut tail_drains = true;
        // Open from the first read after the container's end until the log
        // is drained: closed (and timed) when this returns.
        let mut drain_span = None;
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
                self.hand_over_held(parser).await?;
                return Ok(FollowEnd::PodGone);
            }
            if before.terminated && drain_span.is_none() {
                drain_span = Some(tracing::info_span!("drain"));
            }
            // After the container's end, a tail of the log where a tail can
            // confirm the end (see `ResumeCursor::reconnected_tail`).
            let tail = before.terminated && tail_drains && self.sink.cursor.last().is_some();
            let params = LogParams {
                container: Some(CLAUDE_CONTAINER.to_owned()),
                // After termination a plain read returns the rest and closes.
                follow: !before.terminated,
                timestamps: true,
                since_time: if tail { None } else { self.sink.cursor.since_time() },
                tail_lines: tail.then(|| self.sink.cursor.tail_lines()),
                ..LogParams::default()
            };
            self.stats.connections += 1;
            if tail {
                self.stats.tail_drains += 1;
                self.sink.cursor.reconnected_tail();
            } else {
                self.sink.cursor.reconnected();
            }
            tracing::debug!(attempt = self.stats.connections, since_time = ?params.since_time, tail_lines = ?params.tail_lines, follow = params.follow, "log connect");
            self.resume_unreported = None;
            let stream = match source.open(&params).await {
                Ok(s) => {
                    opened += 1;
                    // Opened again after the stream broke: a resume, said at
                    // once. After a clean end while the container seemed to
                    // run (a kubelet restart ends it so — or the watch was
                    // only slow to say the container had ended): a resume
                    // once it delivers a new line. The read after the
                    // container's end is the drain every run makes.
                    let since = params.since_time.map(|t| t.to_string());
                    if opened > 1 && resume_pending {
                        self.report_resume(opened, since);
                    } else if opened > 1 && !before.terminated {
                        self.resume_unreported = Some((opened, since));
                    }
                    resume_pending = false;
                    s
                }
                Err(e) => {
                    if crate::cluster::is_not_found(&e) && before.terminated {
                        self.hand_over_held(parser).await?;
                        return Ok(FollowEnd::PodGone);
                    }
                    // A 403 is usually final (RBAC denies pods/log), but an
                    // apiserver that just restarted answers 403 until its RBAC
                    // caches are warm: give it a few seconds before giving up.
                    let forbidden = matches!(&e, kube::Error::Api(s) if s.code == 403);
                    failures += 1;
                    if failures >= MAX_FAILED_CONNECTS || (forbidden && failures >= MAX_FORBIDDEN_CONNECTS) {
                        self.hand_over_held(parser).await?;
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
            let Some(read) = self.read_stream(stream, parser, &mut view, params.follow).await? else {
                self.hand_over_held(parser).await?;
                return Ok(FollowEnd::Stopped);
            };
            failures = 0;
            if tail && self.sink.cursor.tail_short() {
                // Nothing of it was taken, and it says nothing of the end.
                tracing::debug!(tail_lines = params.tail_lines, "the log's tail began after the last delivered line; reading from its second instead");
                tail_drains = false;
                continue;
            }
            if before.terminated && !tail && read.clean {
                // Read to the end from the second: the next drain (if one must
                // confirm this end) is near the end again, and a tail spares
                // sending the whole second once more.
                tail_drains = true;
            }
            let clean = read.clean;
            match end_of_log.judge(read, before.terminated, self.sink.cursor.last().is_some()) {
                Verdict::Drained(last_line) => {
                    if let Some(raw) = last_line {
                        // The container's own last line, without a newline.
                        let mut batch = String::new();
                        self.admit(Line::parse(crate::lines::strip_cr(&raw)), parser, &mut batch);
                        if !batch.is_empty() {
                            self.reporter.log(LogStream::Stdout, batch).await?;
                        }
                    }
                    self.hand_over_held(parser).await?;
                    return Ok(FollowEnd::Drained);
                }
                Verdict::LostAfterLast => {
                    self.sink.cursor.lost_after_last();
                    let mut batch = String::new();
                    self.note_gaps(&mut batch);
                    self.sink.flush(parser, &mut batch);
                    self.reporter.log(LogStream::Stdout, batch).await?;
                    return Ok(FollowEnd::Drained);
                }
                Verdict::Again => {}
            }
            if !clean {
                tracing::debug!(pod = %self.pod, "log stream dropped; resuming from the last line");
                resume_pending = true;
            } else if !before.terminated {
                // A followed stream ends cleanly when the container exits, and
                // the pod watch says so a moment later — or when the
                // apiserver's leg to the kubelet broke (it ends our response
                // cleanly then, possibly in mid-line). Reconnecting at once
                // would only find the same end again (a request each time);
                // wait for the watch, then drain once more with follow=false.
                let _ = tokio::time::timeout(EOF_SETTLE, view.wait_for(|v| v.terminated || v.pod_gone || v.stop)).await;
            }
        }
    }

    /// Hands the host the lines held for the glue repair, as they came.
    async fn hand_over_held(&mut self, parser: &mut TranscriptParser) -> Result<(), HostError> {
        if self.sink.held() == 0 {
            return Ok(());
        }
        let mut batch = String::new();
        self.sink.flush(parser, &mut batch);
        self.reporter.log(LogStream::Stdout, batch).await
    }

    /// Puts a warning line for each window the cursor found lost onto `batch`,
    /// where the loss was found in the stream, and keeps it for the result.
    fn note_gaps(&mut self, batch: &mut String) {
        for gap in self.sink.cursor.take_gaps() {
            use std::fmt::Write;
            let until = match gap.before {
                Some(b) => format!("before {b}"),
                None => "up to the container's end".to_owned(),
            };
            let _ = writeln!(
                batch,
                "[paperclip] Warning: log lines written after {} and {until} may be lost: the kubelet rotated the container's log file before they were read (resultJson.logLinesLost)",
                gap.after
            );
            tracing::warn!(after = %gap.after, before = ?gap.before, "log lines lost to rotation");
            self.events.note(Milestone::LinesLost { pod: self.pod.clone(), after: gap.after.to_string(), before: gap.before.map(|b| b.to_string()) });
            self.stats.gaps.push(gap);
        }
    }

    /// Reads one connection. Returns how it ended, or `None` when told to
    /// stop. The line left unfinished at the end is returned, never
    /// delivered here: whether it is whole is for [`EndOfLog`] to judge.
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
    /// returning. A `followed` stream also ends, as if at EOF, once the
    /// container has terminated and the stream has been quiet for
    /// [`QUIET_AFTER_EXIT`]: where it ends is judged like any clean end.
    async fn read_stream(
        &mut self,
        stream: impl futures::AsyncBufRead + Unpin,
        parser: &mut TranscriptParser,
        view: &mut watch::Receiver<ContainerView>,
        followed: bool,
    ) -> Result<Option<ReadEnd>, HostError> {
        let mut stream = stream;
        // Whether the watch has said the container terminated, and since
        // when the stream has brought nothing while we were reading it (a
        // pause for backpressure is not quiet: the bytes wait for us).
        let mut exited = false;
        let mut last_bytes = Instant::now();
        let lines_before = (self.read_lines, self.new_lines);
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
                        last_bytes = Instant::now();
                        continue;
                    }
                    Taken::End(clean) => break Some(clean),
                }
            }
            if batch.full() {
                last_bytes = Instant::now();
            }
            let hold = batch.hold_until().filter(|_| flight.is_none());
            let watch_exit = followed && !exited;
            tokio::select! {
                r = async { flight.as_mut().expect("guarded").await }, if flight.is_some() => {
                    flight = None;
                    r?;
                }
                read = stream.fill_buf(), if !batch.full() => {
                    match self.take(read, &mut assembler, parser, &mut batch) {
                        Taken::Bytes(n) => {
                            stream.consume_unpin(n);
                            last_bytes = Instant::now();
                        }
                        Taken::End(clean) => break Some(clean),
                    }
                }
                _ = sleep_until(hold.unwrap_or_else(Instant::now)), if hold.is_some() => {}
                r = view.wait_for(|v| v.stop || (watch_exit && v.terminated)) => {
                    if r.map_or(true, |v| v.stop) {
                        break None;
                    }
                    exited = true;
                }
                _ = sleep_until(last_bytes + QUIET_AFTER_EXIT), if exited && !batch.full() => {
                    tracing::debug!(pod = %self.pod, "followed stream quiet since the container's end; draining now");
                    self.stats.quiet_ends += 1;
                    break Some(true);
                }
            }
        };
        if let Some(f) = flight.take() {
            f.await?;
        }
        while let Some(chunk) = batch.next() {
            reporter.log(LogStream::Stdout, chunk).await?;
        }
        Ok(end.map(|clean| ReadEnd {
            clean,
            any_line: self.read_lines > lines_before.0 || assembler.pending() > 0,
            new_lines: self.new_lines - lines_before.1,
            caught_up: self.sink.cursor.caught_up(),
            partial: assembler.take_partial(),
        }))
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
        self.read_lines += 1;
        let at = batch.len();
        let admitted = self.sink.admit(line, parser, batch);
        if admitted != Admit::Replayed {
            self.new_lines += 1;
        }
        if self.sink.cursor.has_gaps() {
            // Before the line that revealed the gap (rare: a copy is fine).
            let mut warning = String::new();
            self.note_gaps(&mut warning);
            batch.insert_str(at, &warning);
        }
        if admitted == Admit::Delivered
            && let Some((connection, since)) = self.resume_unreported.take()
        {
            self.report_resume(connection, since);
        }
        match admitted {
            Admit::Delivered => {
                self.stats.lines += 1;
                self.stats.bytes += line.bytes.len() as u64 + 1;
            }
            Admit::Duplicate => self.stats.dropped_duplicates += 1,
            Admit::Replayed | Admit::Held => {}
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
    /// Kept back: it may be a stdout line with a stderr line glued into it
    /// (see [`LineSink`]); it is delivered, repaired or as it came, with a
    /// later line or at [`LineSink::flush`].
    Held,
}

/// The runtime's record size: containerd stores a longer line as `P`
/// records of exactly this many bytes (`max_container_log_line_size`).
pub const RECORD_BYTES: usize = 16 << 10;

/// At most this many lines (stderr lines of one burst, then the stdout
/// line's tail) are held behind a suspected glued line…
const GLUE_HOLD_LINES: usize = 8;
/// …and a suspected glued line is only repaired up to this size (each
/// candidate join is a JSON validation of up to the whole line).
const GLUE_MAX_BYTES: usize = 4 << 20;

/// What the follower does with every line, the network apart: the resume
/// cursor, the glue repair, the dedup net, the transcript parser and the
/// batch for onLog. Public so that `examples/log_pipeline` times exactly this.
///
/// **Glued lines.** The kubelet merges stdout and stderr and prints a
/// timestamp only where its one `isNewLine` flag says a line starts. A
/// stderr line written while a long stdout line is between two records
/// therefore ends *inside* that line: `<ts1> <stdout records><stderr
/// line>\n`, and the stdout line's rest follows as its own `<ts3>
/// <tail>\n`. `claude` writes stream-json to stdout and leaves its stderr
/// (and that of MCP servers it starts, which inherit it) on the container's
/// stderr, so this happens whenever something writes to stderr during a
/// line over 16 KiB. Such a line starts with `{` and is no JSON; the stdout
/// part is a whole number of records. A line like that is held; each next
/// line `M` is tried as the tail: if `head[..k·16 KiB] + M` is a JSON
/// object (the largest such k), the stderr part (`head[k·16 KiB..]`), the lines held between,
/// and the joined stdout line are delivered, in that order, and no
/// fragment reaches the host or the parser. If no join is found within
/// [`GLUE_HOLD_LINES`], the held lines go on as they came. A runtime with
/// another record size (CRI-O's conmon splits at its reads) is not
/// repaired: its lines go on as the kubelet glued them, once each.
#[derive(Debug, Default)]
pub struct LineSink {
    pub cursor: ResumeCursor,
    dedup: LineDedup,
    /// A suspected glued line and the lines read after it, with their
    /// timestamps (the joined line keeps the head's).
    held: Vec<Vec<u8>>,
}

impl LineSink {
    pub fn new() -> Self {
        Self::default()
    }

    /// Passes `line` through the cursor, the glue repair and the dedup
    /// net; a new line goes to `parser` and, with its newline, onto `batch`
    /// (invalid UTF-8 as U+FFFD).
    pub fn admit(&mut self, line: Line<'_>, parser: &mut TranscriptParser, batch: &mut String) -> Admit {
        if !self.cursor.admit_at(line.ts) {
            return Admit::Replayed;
        }
        self.take(line.bytes, parser, batch)
    }

    /// A line past the cursor: held behind a suspected glued line, or on.
    fn take(&mut self, bytes: &[u8], parser: &mut TranscriptParser, batch: &mut String) -> Admit {
        if self.held.is_empty() {
            return self.deliver(bytes, true, parser, batch);
        }
        self.held.push(bytes.to_vec());
        self.repair(parser, batch);
        Admit::Held
    }

    /// Delivers the held lines as they came (the stream ended, or will be
    /// resumed elsewhere).
    pub fn flush(&mut self, parser: &mut TranscriptParser, batch: &mut String) {
        for l in std::mem::take(&mut self.held) {
            self.deliver(&l, false, parser, batch);
        }
    }

    /// Lines held for the glue repair.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Tries the newest held line as the glued line's tail.
    fn repair(&mut self, parser: &mut TranscriptParser, batch: &mut String) {
        let (head, tail) = (&self.held[0], &self.held[self.held.len() - 1]);
        let mut joined = Vec::new();
        // Longest stdout part first: a stderr line under 16 KiB leaves
        // exactly one candidate, and a shorter cut of a JSON string plus the
        // tail may parse too.
        let found = (1..=head.len() / RECORD_BYTES).rev().find(|k| {
            joined.clear();
            joined.extend_from_slice(&head[..k * RECORD_BYTES]);
            joined.extend_from_slice(tail);
            is_json_object(&joined)
        });
        if let Some(k) = found {
            let held = std::mem::take(&mut self.held);
            let stderr = &held[0][k * RECORD_BYTES..];
            if !stderr.is_empty() {
                self.deliver(stderr, false, parser, batch);
            }
            for l in &held[1..held.len() - 1] {
                self.deliver(l, false, parser, batch);
            }
            self.deliver(&joined, false, parser, batch);
        } else if self.held.len() > GLUE_HOLD_LINES {
            // Not a glued line after all: on as it came. The lines after it
            // may hold one of their own.
            let held = std::mem::take(&mut self.held);
            self.deliver(&held[0], false, parser, batch);
            for l in &held[1..] {
                self.take(l, parser, batch);
            }
        }
    }

    /// The dedup net, the parser and the batch; `may_hold`: a line that
    /// looks glued is held instead.
    fn deliver(&mut self, bytes: &[u8], may_hold: bool, parser: &mut TranscriptParser, batch: &mut String) -> Admit {
        let suspect = |ok: bool| {
            may_hold && !ok && bytes.len() > RECORD_BYTES && bytes.len() <= GLUE_MAX_BYTES && bytes.first() == Some(&b'{') && !is_json_object(bytes)
        };
        // UTF-8 checked once, and the JSON read once, for the dedup net,
        // the parser and the batch.
        match simdutf8::basic::from_utf8(bytes) {
            Ok(text) => {
                let read = parser.read(text);
                if suspect(read.is_json_object()) {
                    self.held.push(bytes.to_vec());
                    return Admit::Held;
                }
                let object = read.is_json_object().then(|| read.trimmed().as_bytes());
                if !self.dedup.admit_parsed(bytes, object) {
                    return Admit::Duplicate;
                }
                parser.apply(read);
                batch.push_str(text);
            }
            Err(_) => {
                if suspect(false) {
                    self.held.push(bytes.to_vec());
                    return Admit::Held;
                }
                if !self.dedup.admit(bytes) {
                    return Admit::Duplicate;
                }
                parser.feed(bytes);
                batch.push_str(&String::from_utf8_lossy(bytes));
            }
        }
        batch.push('\n');
        Admit::Delivered
    }
}

/// One JSON object, nothing else (whitespace aside).
fn is_json_object(bytes: &[u8]) -> bool {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    start.is_some_and(|i| bytes[i] == b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
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

    /// The whole line path against a model of the kubelet, read from
    /// `k8s.io/cri-client@v0.37.2/pkg/logs` (`ReadLogs`, `logWriter.write`)
    /// and containerd's record writer: records of at most [`RECORD_BYTES`]
    /// with their own timestamps, one prefix per logical line, `sinceTime`
    /// per record, one `isNewLine` flag for both streams; every connection
    /// cut anywhere (cleanly, as kube-apiserver ends a response whose
    /// kubelet leg broke, or with an error), before and after the
    /// container's end, read in chunks of any size.
    mod kubelet {
        use std::io;
        use std::sync::Mutex;

        use k8s_openapi::jiff::Timestamp;
        use proptest::prelude::*;

        use super::super::*;

        /// One record of the container's log file.
        #[derive(Debug, Clone)]
        pub struct Rec {
            pub ts: Timestamp,
            pub full: bool,
            pub content: Vec<u8>,
        }

        /// What the kubelet sends for `timestamps=true`, both streams into
        /// one writer: `ReadLogs`' loop with `logWriter.write`.
        pub fn read_logs(recs: &[Rec], since: Option<Timestamp>) -> Vec<u8> {
            let mut out = Vec::new();
            let mut new_line = true;
            for r in recs {
                // write(): records older than since are skipped…
                if since.is_none_or(|s| r.ts >= s) {
                    if new_line {
                        out.extend_from_slice(format!("{:.9} ", r.ts).as_bytes());
                    }
                    out.extend_from_slice(&r.content);
                    if r.full {
                        out.push(b'\n');
                    }
                }
                // …but isNewLine follows every record, of either stream.
                new_line = r.full;
            }
            out
        }

        /// The container's output: stdout JSON lines (some over a record),
        /// stderr text lines written in bursts between any two records —
        /// also between two records of one stdout line, at one place per
        /// line — and perhaps a last stdout line without a newline.
        #[derive(Debug, Clone)]
        pub struct Output {
            pub recs: Vec<Rec>,
            /// The logical lines in the order they were completed.
            pub lines: Vec<Vec<u8>>,
        }

        pub fn stdout_line(i: usize, len: usize) -> Vec<u8> {
            let head = format!("{{\"type\":\"assistant\",\"n\":{i},\"pad\":\"");
            let mut l = head.into_bytes();
            let mut k = 0;
            while l.len() + 2 < len {
                // Multi-byte text, so that cuts and records split characters.
                l.extend_from_slice(if k % 7 == 0 { "é".as_bytes() } else { b"x" });
                k += 1;
            }
            l.extend_from_slice(b"\"}");
            l
        }

        /// `plan`: per stdout line, its length, a stderr burst (how many
        /// lines, and where: 0 = before the line, r = after its record r)
        /// and the time steps. `open_end`: the last line has no newline.
        pub fn output(plan: &[(usize, usize, usize)], steps: &[i64], open_end: bool) -> Output {
            let mut recs = Vec::new();
            let mut lines = Vec::new();
            let mut t = Timestamp::from_second(1_790_000_000).unwrap();
            let mut step = steps.iter().cycle();
            let mut push = |recs: &mut Vec<Rec>, full: bool, content: &[u8]| {
                t = t.checked_add(k8s_openapi::jiff::SignedDuration::from_nanos(*step.next().unwrap_or(&1))).unwrap();
                recs.push(Rec { ts: t, full, content: content.to_vec() });
            };
            let mut err_no = 0;
            for (i, &(len, burst, at)) in plan.iter().enumerate() {
                let line = stdout_line(i, len);
                let parts: Vec<&[u8]> = line.chunks(RECORD_BYTES).collect();
                let at = at % (parts.len() + 1);
                let last = i + 1 == plan.len();
                for (r, part) in parts.iter().enumerate() {
                    if r == at {
                        for _ in 0..burst {
                            let e = format!("warning {err_no}: é stderr").into_bytes();
                            err_no += 1;
                            push(&mut recs, true, &e);
                            lines.push(e);
                        }
                    }
                    let full = r + 1 == parts.len() && !(last && open_end);
                    push(&mut recs, full, part);
                }
                lines.push(line);
            }
            Output { recs, lines }
        }

        /// How each connection ends: after this share of what it would
        /// send, cleanly or with an error; `None`: it runs to its end.
        pub type Cut = (f64, bool);

        /// The kubelet behind the apiserver: the file grows by `grow`
        /// records per connection while the container runs; connections
        /// are cut as `cuts` says (then no more), read in `chunks`.
        pub struct Kubelet {
            pub out: Output,
            pub visible: usize,
            pub grow: Vec<usize>,
            pub cuts: Vec<Cut>,
            pub chunks: Vec<usize>,
            pub n: usize,
            pub view: watch::Sender<ContainerView>,
            /// From this connection on, the file holds records from this
            /// one on (the kubelet rotated the rest away; a new request
            /// reads only the current file).
            pub rotated: Option<(usize, usize)>,
            /// Reads that asked for a tail.
            pub tails: usize,
        }

        type Reads = futures::stream::IntoAsyncRead<futures::stream::Iter<std::vec::IntoIter<io::Result<Vec<u8>>>>>;

        impl LogSource for Kubelet {
            type Stream = Reads;
            async fn open(&mut self, params: &LogParams) -> Result<Reads, kube::Error> {
                use futures::TryStreamExt;
                let total = self.out.recs.len();
                let cut = (self.n < self.cuts.len()).then(|| self.cuts[self.n]);
                if params.follow {
                    self.visible = (self.visible + self.grow.get(self.n).copied().unwrap_or(total)).min(total);
                    if cut.is_none() {
                        self.visible = total;
                    }
                } else {
                    assert_eq!(self.visible, total, "a drain only after the end");
                }
                let first = self.rotated.filter(|(from, _)| self.n >= *from).map_or(0, |(_, rec)| rec.min(self.visible));
                self.n += 1;
                let file = &self.out.recs[first..self.visible];
                // tailLines counts records back from the file's end, and the
                // first one is stamped whatever it is (cri-client ReadLogs).
                let from = params.tail_lines.map_or(0, |n| file.len().saturating_sub(usize::try_from(n).unwrap_or(usize::MAX)));
                self.tails += usize::from(params.tail_lines.is_some());
                let all = read_logs(&file[from..], params.since_time);
                let mut items = Vec::new();
                let end = match cut {
                    // A clean cut shows at least a byte: three empty answers
                    // in a row after the end are taken for a rotated file.
                    Some((share, false)) => (1 + (share * all.len() as f64) as usize).min(all.len()),
                    Some((share, true)) => (share * all.len() as f64) as usize,
                    None => all.len(),
                };
                let mut rest = &all[..end];
                let mut sizes = self.chunks.iter().cycle().skip(self.n);
                while !rest.is_empty() {
                    let k = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
                    items.push(Ok(rest[..k].to_vec()));
                    rest = &rest[k..];
                }
                if let Some((_, true)) = cut {
                    items.push(Err(io::Error::new(io::ErrorKind::ConnectionReset, "leg broke")));
                }
                if params.follow && self.visible == total && (cut.is_none() || end == all.len()) {
                    // The container ended while this read was open; the
                    // watch says so a moment later.
                    self.view.send_modify(|v| v.terminated = true);
                }
                Ok(futures::stream::iter(items).into_async_read())
            }
        }

        struct Collect(Mutex<String>);
        impl Host for Collect {
            async fn on_log(&self, _stream: LogStream, chunk: String) -> Result<(), HostError> {
                self.0.lock().unwrap().push_str(&chunk);
                Ok(())
            }
            async fn on_meta(&self, _meta: serde_json::Value) -> Result<(), HostError> {
                Ok(())
            }
        }

        /// Runs the follower over `kubelet`; what the host got.
        pub fn follow(mut kubelet: Kubelet) -> (String, FollowEnd, FollowStats) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            rt.block_on(async move {
                let host = Arc::new(Collect(Mutex::default()));
                let client = kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
                let mut f = LogFollower::new(Api::namespaced(client, "ns"), "pod".into(), Arc::new(Reporter::new(host.clone())));
                let view = kubelet.view.subscribe();
                kubelet.view.send_modify(|v| v.started = true);
                let mut parser = TranscriptParser::new("m");
                let end = f.run_from(&mut kubelet, &mut parser, view).await.unwrap();
                let got = host.0.lock().unwrap().clone();
                (got, end, f.stats.clone())
            })
        }

        fn want(out: &Output) -> String {
            out.lines.iter().map(|l| format!("{}\n", String::from_utf8_lossy(l))).collect()
        }

        fn kubelet(out: Output, grow: Vec<usize>, cuts: Vec<Cut>, chunks: Vec<usize>) -> Kubelet {
            Kubelet { out, visible: 0, grow, cuts, chunks, n: 0, view: watch::channel(ContainerView::default()).0, rotated: None, tails: 0 }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
            /// Lines delivered == lines written, in order, once, whatever
            /// the cuts, the chunking and the record layout.
            #[test]
            fn every_line_once_in_order(
                plan in proptest::collection::vec((prop_oneof![3 => 20usize..300, 1 => 16_000usize..50_000], prop_oneof![3 => Just(0usize), 1 => 1usize..4], 0usize..4), 1..10),
                steps in proptest::collection::vec(prop_oneof![Just(0i64), Just(1), Just(700_000), Just(400_000_000), Just(1_300_000_000)], 1..6),
                open_end in any::<bool>(),
                grow in proptest::collection::vec(0usize..6, 0..12),
                cuts in proptest::collection::vec((0.0f64..1.0, any::<bool>()), 0..12),
                chunks in proptest::collection::vec(prop_oneof![1usize..40, 1000usize..70_000], 1..8),
            ) {
                let out = output(&plan, &steps, open_end);
                let want = want(&out);
                let (got, end, stats) = follow(kubelet(out, grow, cuts, chunks));
                prop_assert_eq!(end, FollowEnd::Drained);
                prop_assert!(stats.gaps.is_empty());
                prop_assert!(got == want, "got {} bytes, want {}\n{}", got.len(), want.len(), first_difference(&got, &want));
            }
        }

        pub fn first_difference(a: &str, b: &str) -> String {
            let (a, b) = (a.as_bytes(), b.as_bytes());
            let i = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
            let show = |s: &[u8]| String::from_utf8_lossy(&s[i.saturating_sub(60)..(i + 60).min(s.len())]).into_owned();
            format!("at byte {i}: got …{}… want …{}…", show(a), show(b))
        }

        /// The issue's measurement, as a case: a followed stream ends
        /// cleanly in the middle of a line while the container runs on.
        #[test]
        fn a_clean_end_in_mid_line_is_not_a_line() {
            let out = output(&[(100, 0, 0), (100, 0, 0), (100, 0, 0)], &[1_000], false);
            let want = want(&out);
            let all = read_logs(&out.recs, None);
            // The first connection ends cleanly in the second line.
            let share = (out.lines[0].len() + 60) as f64 / all.len() as f64;
            let (got, end, stats) = follow(kubelet(out, vec![3], vec![(share, false)], vec![4096]));
            assert_eq!(end, FollowEnd::Drained);
            assert_eq!(got, want);
            assert_eq!(stats.lines, 3);
        }

        /// A drain after the end is cut in the last line, which has no
        /// newline: it is delivered once an end is read twice.
        #[test]
        fn the_last_line_without_a_newline_is_delivered_once_confirmed() {
            let out = output(&[(100, 0, 0), (100, 0, 0)], &[1_000], true);
            let want = want(&out);
            let (got, end, _) = follow(kubelet(out, vec![2], vec![(0.9, false), (0.8, false)], vec![4096]));
            assert_eq!(end, FollowEnd::Drained);
            assert_eq!(got, want);
        }

        /// sinceTime inside a long line: the tail comes without a timestamp.
        #[test]
        fn a_resume_inside_a_long_line_drops_its_headless_tail() {
            // Line 0 at 1.3 s; line 1's records at 2.6, 4.1 and 4.15 s; line 2
            // at 4.2 s, line 3 at 4.25 s. The followed stream ends after line
            // 2 while the container runs on; the resume asks for sinceTime
            // 4 s: the kubelet sends line 1 from its second record on,
            // headless. The drain after the end reads a tail.
            let steps = [1_300_000_000, 1_300_000_000, 1_500_000_000, 50_000_000, 50_000_000, 50_000_000];
            let out = output(&[(100, 0, 0), (40_000, 0, 0), (100, 0, 0), (100, 0, 0)], &steps, false);
            let since = Some(Timestamp::from_second(1_790_000_004).unwrap());
            assert!(!read_logs(&out.recs, since).starts_with(b"2026"), "the resume starts headless");
            let want = want(&out);
            let mut k = kubelet(out, vec![5, 1], vec![(0.999, false)], vec![65_536]);
            k.tails = 0;
            let (got, end, stats) = follow(k);
            assert_eq!((end, stats.connections, stats.tail_drains), (FollowEnd::Drained, 3, 1));
            assert!(got == want, "{}", first_difference(&got, &want));
        }

        /// The drain reads a tail of the log, not its whole last second: a
        /// burst written within one second is not sent twice. A tail that
        /// begins inside the delivered lines (here: inside the last line, a
        /// long one, whose continuation records are stamped after it) is
        /// ignored, and the drain reads from the second instead.
        #[test]
        fn the_drain_reads_a_tail_and_a_tail_too_short_is_ignored() {
            // 2000 short lines within one second: the drain asks for 257 records.
            let out = output(&vec![(100, 0, 0); 2000], &[100_000], false);
            let want_short = want(&out);
            let (got, end, stats) = follow(kubelet(out, vec![2000], vec![], vec![65_536]));
            assert_eq!((end, stats.connections, stats.tail_drains), (FollowEnd::Drained, 2, 1));
            assert_eq!(stats.lines, 2000);
            assert!(got == want_short, "{}", first_difference(&got, &want_short));

            // The last line spans 300 records of 16 KiB (4.7 MiB): its tail
            // begins in its own continuation, stamped after the line.
            let out = output(&[(100, 0, 0), (100, 0, 0), (300 * RECORD_BYTES, 0, 0)], &[1_000_000], false);
            let want_long = want(&out);
            let (got, end, stats) = follow(kubelet(out, vec![302], vec![], vec![65_536]));
            assert_eq!((end, stats.tail_drains), (FollowEnd::Drained, 1));
            assert_eq!(stats.connections, 3, "the followed read, the ignored tail, one read from the second");
            assert_eq!(stats.lines, 3);
            assert!(got == want_long, "{}", first_difference(&got, &want_long));
        }

        /// A drain that had to read from the second (its tail was short:
        /// far behind) and did not reach a confirmed end is followed by a
        /// tail again, not by the whole second once more.
        #[test]
        fn after_a_read_from_the_second_the_next_drain_reads_a_tail() {
            let out = output(&vec![(100, 0, 0); 2000], &[100_000], false);
            let want = want(&out);
            let total = out.recs.len();
            // The container has ended; the first read breaks off cleanly half-way.
            let mut k = kubelet(out, vec![], vec![(0.5, false)], vec![65_536]);
            k.visible = total;
            k.view.send_modify(|v| v.terminated = true);
            let (got, end, stats) = follow(k);
            assert!(got == want, "{}", first_difference(&got, &want));
            // The drain from nothing (cut), a tail too short (ignored), the
            // rest from the second, and a tail that confirms the end.
            assert_eq!((end, stats.connections, stats.tail_drains), (FollowEnd::Drained, 4, 2));
        }

        /// A stream dropped behind a rotation: the lines only the rotated
        /// file held are named as lost, the rest delivered once.
        #[test]
        fn lines_rotated_away_are_reported_lost_with_their_window() {
            let out = output(&[(100, 0, 0); 6], &[300_000_000], false);
            let ts = |i: usize| out.recs[i].ts;
            let (after, before) = (ts(1), ts(3));
            let all = read_logs(&out.recs, None);
            let two = all.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(1).unwrap().0 + 1;
            // Connection 1 breaks after line 1 (and 40 bytes into line 2);
            // by connection 2 the current file starts at line 3.
            let mut k = kubelet(out.clone(), vec![6], vec![((two + 40) as f64 / all.len() as f64, true)], vec![4096]);
            k.rotated = Some((1, 3));
            let (got, end, stats) = follow(k);
            assert_eq!(end, FollowEnd::Drained);
            assert_eq!(stats.gaps, [LogGap { after, before: Some(before) }]);
            let line = |i: usize| format!("{}\n", String::from_utf8_lossy(&out.lines[i]));
            let warning = format!(
                "[paperclip] Warning: log lines written after {after} and before {before} may be lost: the kubelet rotated the container's log file before they were read (resultJson.logLinesLost)\n"
            );
            assert_eq!(got, [line(0), line(1), warning, line(3), line(4), line(5)].concat());
        }

        /// The container ended and its current file is empty: what followed
        /// the last delivered line is reported lost, up to the end.
        #[test]
        fn an_empty_current_file_after_the_end_is_reported_lost() {
            let out = output(&[(100, 0, 0); 3], &[300_000_000], false);
            let after = out.recs[1].ts;
            let all = read_logs(&out.recs, None);
            let two = all.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(1).unwrap().0 + 1;
            let mut k = kubelet(out.clone(), vec![3], vec![(two as f64 / all.len() as f64, true)], vec![4096]);
            k.rotated = Some((1, 3));
            let (got, end, stats) = follow(k);
            assert_eq!(end, FollowEnd::Drained);
            assert_eq!(stats.gaps, [LogGap { after, before: None }]);
            assert!(got.ends_with("may be lost: the kubelet rotated the container's log file before they were read (resultJson.logLinesLost)\n"), "{got}");
            assert!(got.contains("after 2026") || got.contains(&format!("after {after} and up to the container's end")), "{got}");
            assert_eq!(stats.connections, 1 + 1 + EMPTY_DRAINS, "the followed read, the one that saw the end, then the empty drains");
        }

        /// A stderr line written between two records of a long stdout line.
        #[test]
        fn a_stderr_line_glued_into_a_long_stdout_line_is_taken_apart() {
            let out = output(&[(40_000, 1, 2), (100, 0, 0)], &[1_000], false);
            let glued = read_logs(&out.recs, None);
            // `<ts> <32 KiB of the stdout line>warning 0: é stderr\n<ts> <its tail>\n…`
            assert!(glued[31 + 2 * RECORD_BYTES..].starts_with(b"warning 0"));
            let want = want(&out);
            let (got, _, _) = follow(kubelet(out, vec![], vec![], vec![65_536]));
            assert!(got == want, "{}", first_difference(&got, &want));
            assert!(want.starts_with("warning 0"), "the stderr line completed first");
        }
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
            let end = follower.read_stream(rx.into_async_read(), &mut parser, &mut view, true).await.unwrap();
            assert!(end.is_some_and(|e| e.clean && e.partial.is_empty()));
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
            follower.read_stream(rx.into_async_read(), &mut parser, &mut view, true).await.unwrap();
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
            follower.read_stream(rx.into_async_read(), &mut parser, &mut view, true).await.unwrap();
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
            follower.read_stream(rx.into_async_read(), &mut parser, &mut view, true).await.unwrap();
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
            let end = follower.read_stream(rx.into_async_read(), &mut parser, &mut view, true).await.unwrap();
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
            let err = follower.read_stream(rx.into_async_read(), &mut parser, &mut view, true).await.unwrap_err();
            assert_eq!(err.message, "host threw");
            assert_eq!(calls(&host).len(), 1, "no call after the one that failed");
        }

        #[tokio::test(start_paused = true)]
        async fn a_followed_stream_ends_once_quiet_after_the_container_ended() {
            let Setup { host, mut follower, mut tx, rx } = setup(0, false);
            let (vtx, mut view) = watch::channel(ContainerView { started: true, ..ContainerView::default() });
            tokio::spawn(async move {
                // Lines every 5 ms for 100 ms; the watch says "terminated" at 30 ms.
                for i in 0..20 {
                    tx.send(Ok(raw(i))).await.unwrap();
                    if i == 6 {
                        vtx.send_modify(|v| v.terminated = true);
                    }
                    sleep(Duration::from_millis(5)).await;
                }
                // Then the stream stays open, as the kubelet's does for up to a second.
                sleep(Duration::from_secs(3600)).await;
                drop((tx, vtx));
            });
            let mut parser = TranscriptParser::new("m");
            let end = follower.read_stream(rx.into_async_read(), &mut parser, &mut view, true).await.unwrap();
            // Not cut while it still brought lines: all of them, then an end as clean as EOF.
            assert!(end.is_some_and(|e| e.clean && e.partial.is_empty()));
            assert_eq!(joined(&calls(&host)), want(0..20));
            assert_eq!(follower.stats.quiet_ends, 1);
            // The last line came at 95 ms; quiet for QUIET_AFTER_EXIT after it.
            assert_eq!(host.start.elapsed(), Duration::from_millis(95) + QUIET_AFTER_EXIT);
        }

        #[tokio::test(start_paused = true)]
        async fn a_drain_is_never_cut_nor_a_stream_before_the_end() {
            for (followed, terminated) in [(false, true), (true, false)] {
                let Setup { host, mut follower, mut tx, rx } = setup(0, false);
                let (_vtx, mut view) = watch::channel(ContainerView { started: true, terminated, ..ContainerView::default() });
                tokio::spawn(async move {
                    tx.send(Ok(raw(0))).await.unwrap();
                    sleep(Duration::from_secs(10)).await;
                    tx.send(Ok(raw(1))).await.unwrap();
                });
                let mut parser = TranscriptParser::new("m");
                let end = follower.read_stream(rx.into_async_read(), &mut parser, &mut view, followed).await.unwrap();
                assert!(end.is_some_and(|e| e.clean));
                assert_eq!(joined(&calls(&host)), want(0..2), "followed {followed}, terminated {terminated}");
                assert_eq!(follower.stats.quiet_ends, 0);
            }
        }

        #[tokio::test(start_paused = true)]
        async fn a_pause_for_a_slow_host_is_not_quiet() {
            // The container has ended and its 3 MiB wait in the stream, while
            // each onLog takes 50 ms: reading pauses for it, longer than
            // QUIET_AFTER_EXIT each time. Only the end of the bytes is quiet.
            let Setup { host, mut follower, mut tx, rx } = setup(50, false);
            let n = 90_000;
            let bytes: Vec<u8> = (0..n).flat_map(raw).collect();
            let (_vtx, mut view) = watch::channel(ContainerView { started: true, terminated: true, ..ContainerView::default() });
            tokio::spawn(async move {
                for c in bytes.chunks(64 << 10) {
                    tx.send(Ok(c.to_vec())).await.unwrap();
                }
                sleep(Duration::from_secs(3600)).await;
                drop(tx);
            });
            let mut parser = TranscriptParser::new("m");
            let end = follower.read_stream(rx.into_async_read(), &mut parser, &mut view, true).await.unwrap();
            assert!(end.is_some_and(|e| e.clean));
            let calls = calls(&host);
            assert!(calls.len() >= 3, "the host was slow more than once: {} calls", calls.len());
            assert!(joined(&calls) == want(0..n), "the read was cut before the stream's bytes were all read");
            assert_eq!(follower.stats.quiet_ends, 1);
        }

        /// A kubelet whose followed stream, as the real one's, stays open
        /// after the container's end (it would close a second later); a
        /// read without `follow` returns the file and closes.
        struct LingeringKubelet {
            file: Vec<u8>,
            /// When the watch says the container terminated, after the file was sent.
            exit_seen_after: Duration,
            view: watch::Sender<ContainerView>,
            /// `follow` of each read opened, in order.
            opened: Vec<bool>,
        }

        impl LogSource for LingeringKubelet {
            type Stream = std::pin::Pin<Box<dyn futures::AsyncBufRead + Send>>;
            async fn open(&mut self, params: &LogParams) -> Result<Self::Stream, kube::Error> {
                self.opened.push(params.follow);
                if !params.follow {
                    let file = self.file.clone();
                    return Ok(Box::pin(futures::stream::iter([Ok::<_, io::Error>(file)]).into_async_read()));
                }
                let (mut tx, rx) = mpsc::channel(1);
                let file = self.file.clone();
                let view = self.view.clone();
                let exit_seen_after = self.exit_seen_after;
                tokio::spawn(async move {
                    tx.send(Ok(file)).await.unwrap();
                    sleep(exit_seen_after).await;
                    view.send_modify(|v| v.terminated = true);
                    sleep(Duration::from_secs(3600)).await;
                    drop(tx);
                });
                Ok(Box::pin(rx.into_async_read()))
            }
        }

        #[tokio::test(start_paused = true)]
        async fn the_run_drains_without_waiting_for_the_kubelet_to_end_its_stream() {
            // The status usually comes long after the last line (the kubelet's
            // relist): the drain follows at once. When it comes sooner, once
            // the stream has been quiet for QUIET_AFTER_EXIT.
            for (exit_seen_after, drained_at) in [(500, Duration::from_millis(500)), (40, QUIET_AFTER_EXIT)] {
                let Setup { host, mut follower, .. } = setup(0, false);
                let begin = Instant::now();
                let file: Vec<u8> = (0..5).flat_map(raw).collect();
                let (vtx, view) = watch::channel(ContainerView { started: true, ..ContainerView::default() });
                let mut kubelet = LingeringKubelet { file, exit_seen_after: Duration::from_millis(exit_seen_after), view: vtx, opened: Vec::new() };
                let mut parser = TranscriptParser::new("m");
                let end = tokio::time::timeout(Duration::from_secs(30), follower.run_from(&mut kubelet, &mut parser, view)).await;
                let end = end.expect("the follower waited for a followed stream that outlived its container").unwrap();
                assert_eq!(end, FollowEnd::Drained);
                // Every line once; one followed read, one drain.
                assert_eq!(joined(&calls(&host)), want(0..5));
                assert_eq!(kubelet.opened, [true, false]);
                assert_eq!(begin.elapsed(), drained_at, "status seen {exit_seen_after} ms after the last line");
            }
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
            let end = follower.read_stream(rx.into_async_read(), &mut parser, &mut view, true).await.unwrap();
            let end = end.unwrap();
            assert!(!end.clean);
            assert_eq!(end.partial.len(), 20, "the unfinished line is handed back, not delivered");
            assert_eq!(joined(&calls(&host)), want(0..1));
        }
    }
}
