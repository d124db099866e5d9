//! Lines of a `pods/log` stream read with `timestamps=true`, and the cursor
//! that makes resuming after a drop exactly-once.
//!
//! What the kubelet sends (`k8s.io/cri-client@v0.37.2/pkg/logs`, `ReadLogs`
//! and `logWriter.write`): the runtime stores a line longer than its record
//! size (containerd: 16 KiB) as `P` records and a final `F` record, each
//! with its own timestamp; the kubelet prints `<RFC 3339 timestamp, 9
//! digits> ` only before the first record of a logical line (one
//! `isNewLine` flag, shared by stdout and stderr), and applies `sinceTime`
//! to **each record**. So a logical line reaches us as `<ts> <content>\n`,
//! stamped with its first record's time, except:
//! - the first line of a `sinceTime` read may be the tail of a line whose
//!   head was before `sinceTime`: it has no timestamp;
//! - a stderr line written while a long stdout line was between records is
//!   glued into it (see [`crate::logs::LineSink`] for the repair).
//!
//! [`LineAssembler`] works on bytes, so a UTF-8 sequence split across chunks
//! is carried whole, and invalid UTF-8 is kept as it came.
//!
//! [`ResumeCursor`] remembers the last delivered line's timestamp and how many
//! lines carried exactly that timestamp. On reconnect we ask for `sinceTime`
//! truncated to the whole second (kube sends it rounded to the second, which
//! could otherwise skip up to half a second of lines) and drop what was
//! already delivered: lines older than the cursor, the first k lines that
//! share its timestamp, and a headless tail at the start of the read.
//!
//! Invariants of the cursor (timestamps of a container's log never go
//! backwards):
//! - A headless first line of a read with `sinceTime` is the tail of a line
//!   already delivered: the line the tail belongs to began before
//!   `sinceTime` ≤ the last delivered line's timestamp, so it came before
//!   that line. It is dropped.
//! - A read with `sinceTime` must show the last delivered line again (its
//!   first record is at or after `sinceTime`). If its first timestamped line
//!   is newer instead, the file that held the last line is gone (rotated
//!   away: the kubelet serves only the current file to a new request): the
//!   lines between the two timestamps may be lost, and the cursor records
//!   that window ([`ResumeCursor::take_gaps`]) so that it is reported, never
//!   passed over.

use k8s_openapi::jiff::Timestamp;

/// One log line: the kubelet's timestamp (if the prefix parsed) and the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub ts: Option<Timestamp>,
    pub bytes: Vec<u8>,
}

impl LogLine {
    /// Splits `<ts> <content>`. A line without a parsable prefix keeps all its bytes.
    pub fn parse(raw: &[u8]) -> LogLine {
        Line::parse(raw).to_log_line()
    }
}

/// A [`LogLine`] borrowed from the bytes it arrived in: what
/// [`LineAssembler::push_each`] hands out, without a copy per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    pub ts: Option<Timestamp>,
    pub bytes: &'a [u8],
}

impl<'a> Line<'a> {
    /// Splits `<ts> <content>`. A line without a parsable prefix keeps all its bytes.
    pub fn parse(raw: &'a [u8]) -> Line<'a> {
        if let Some(space) = raw.iter().take(64).position(|b| *b == b' ')
            && let Ok(s) = std::str::from_utf8(&raw[..space])
            && let Ok(ts) = s.parse::<Timestamp>()
        {
            return Line { ts: Some(ts), bytes: &raw[space + 1..] };
        }
        Line { ts: None, bytes: raw }
    }

    pub fn to_log_line(&self) -> LogLine {
        LogLine { ts: self.ts, bytes: self.bytes.to_vec() }
    }
}

/// A carry buffer grown past this by a long line is freed once the line is
/// handed out, not kept for the rest of the stream.
const KEEP_CAPACITY: usize = 64 << 10;

/// Splits a byte stream into lines, carrying a partial line across pushes.
#[derive(Debug, Default)]
pub struct LineAssembler {
    partial: Vec<u8>,
    stamps: SecondCache,
}

/// Parses kubelet timestamps the quick way. Lines come hundreds per second
/// within one second: `2026-12-04T20:03:33.123456789Z ` shares everything
/// up to the `.` with the line before, so that part is parsed once per
/// second and only the fraction per line (jiff's full parse per line was
/// ~6 % of a run's CPU). Anything else goes to [`Line::parse`]; the result
/// is the same either way (a property test holds them equal).
#[derive(Debug, Default)]
struct SecondCache {
    /// `YYYY-MM-DDTHH:MM:SS.` and that second, as UTC.
    second: Option<([u8; 20], Timestamp)>,
}

impl SecondCache {
    fn parse<'a>(&mut self, raw: &'a [u8]) -> Line<'a> {
        if raw.len() > 22 && raw[19] == b'.' {
            if self.second.as_ref().is_none_or(|(key, _)| key[..] != raw[..20]) {
                // The second alone, in UTC: right for every line of it whose fraction ends in `Z`.
                let mut text = [0u8; 20];
                text[..19].copy_from_slice(&raw[..19]);
                text[19] = b'Z';
                self.second = std::str::from_utf8(&text)
                    .ok()
                    .and_then(|t| t.parse::<Timestamp>().ok())
                    .map(|ts| (raw[..20].try_into().expect("20 bytes"), ts));
            }
            if let Some((_, second)) = self.second
                && let Some(line) = Self::fraction(second, raw)
            {
                return line;
            }
        }
        Line::parse(raw)
    }

    /// `<1–9 digits>Z <content>` after the second's text.
    fn fraction(second: Timestamp, raw: &[u8]) -> Option<Line<'_>> {
        let digits = raw[20..].iter().take(10).take_while(|b| b.is_ascii_digit()).count();
        if !(1..=9).contains(&digits) || raw.get(20 + digits..22 + digits) != Some(b"Z ") {
            return None;
        }
        let mut nanos = 0i32;
        for d in &raw[20..20 + digits] {
            nanos = nanos * 10 + i32::from(d - b'0');
        }
        nanos *= 10i32.pow(9 - digits as u32);
        let ts = Timestamp::new(second.as_second(), nanos).ok()?;
        Some(Line { ts: Some(ts), bytes: &raw[22 + digits..] })
    }
}

impl LineAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Complete lines in `chunk` (with what was carried before).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<LogLine> {
        let mut out = Vec::new();
        self.push_each(chunk, |line| out.push(line.to_log_line()));
        out
    }

    /// Hands `f` each complete line in `chunk` (with what was carried
    /// before), in order, borrowed: a line within the chunk is not copied, a
    /// line that spans chunks is handed out of the carry buffer.
    pub fn push_each(&mut self, chunk: &[u8], mut f: impl FnMut(Line<'_>)) {
        let mut rest = chunk;
        if !self.partial.is_empty() {
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                self.partial.extend_from_slice(rest);
                return;
            };
            self.partial.extend_from_slice(&rest[..nl]);
            f(self.stamps.parse(strip_cr(&self.partial)));
            if self.partial.capacity() > KEEP_CAPACITY {
                self.partial = Vec::new();
            } else {
                self.partial.clear();
            }
            rest = &rest[nl + 1..];
        }
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', rest) {
            f(self.stamps.parse(strip_cr(&rest[start..nl])));
            start = nl + 1;
        }
        self.partial.extend_from_slice(&rest[start..]);
    }

    /// The final line of a stream that ended without a newline.
    pub fn finish(&mut self) -> Option<LogLine> {
        if self.partial.is_empty() {
            return None;
        }
        // The same line end as a complete line: a trailing CR is part of "\r\n".
        Some(LogLine::parse(strip_cr(&std::mem::take(&mut self.partial))))
    }

    /// The unfinished line, raw, leaving the assembler empty.
    pub fn take_partial(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.partial)
    }

    /// Bytes held for an unfinished line.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}

/// A line's end is `\n` or `\r\n`.
pub fn strip_cr(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\r").unwrap_or(b)
}

/// Lines the log may have lost: written after `after` (the last line
/// delivered) and before `before` (the first line the next read showed),
/// or up to the container's end when `before` is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogGap {
    pub after: Timestamp,
    pub before: Option<Timestamp>,
}

/// Where the delivered log ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResumeCursor {
    last: Option<Timestamp>,
    /// Lines delivered with exactly `last`.
    at_last: u64,
    /// Lines of the current connection seen with exactly `last` (to skip the first `at_last`).
    seen_at_last: u64,
    /// The current connection was opened with `sinceTime` and has shown no
    /// line yet: a headless first line is a delivered line's tail.
    resumed_head: bool,
    /// The current connection was opened with `sinceTime` and has not yet
    /// shown a timestamped line (the one that proves nothing was skipped).
    resumed_unproven: bool,
    /// How far a `tailLines` connection is trusted (see [`Self::reconnected_tail`]).
    tail: Tail,
    gaps: Vec<LogGap>,
}

/// A `tailLines` read, as far as its first line has shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Tail {
    /// Not a tail read, or one whose first line proved it reaches back far enough.
    #[default]
    Trusted,
    /// A tail read that has shown no line yet.
    Unproven,
    /// Its first line was not older than the cursor: the rest of it is ignored.
    Short,
}

/// Records a drain asks for beyond the lines delivered at the cursor's
/// timestamp: enough for the line before them and a few more (a record is a
/// line, or 16 KiB of a longer one), and still tiny next to a second of a
/// chatty agent's output.
pub const TAIL_MARGIN: u64 = 256;

impl ResumeCursor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Call when a new connection starts (with [`Self::since_time`]).
    pub fn reconnected(&mut self) {
        self.seen_at_last = 0;
        self.resumed_head = self.last.is_some();
        self.resumed_unproven = self.last.is_some();
        self.tail = Tail::Trusted;
    }

    /// Call when a new connection starts with [`Self::tail_lines`] instead
    /// of `sinceTime`: the drain after the container's end, which need not
    /// have the kubelet re-send the whole last second (for a burst, all of
    /// the log) only to find nothing new.
    ///
    /// The kubelet starts a tail at a record counted back from the file's
    /// end and stamps it whatever it is — a line, or the continuation of a
    /// long one (cri-client `ReadLogs`: `isNewLine` starts true). If that
    /// first line is older than the cursor, every line at the cursor's
    /// timestamp and after it follows whole, and the read counts exactly as
    /// a `sinceTime` read. If it is not, the tail may have begun inside the
    /// lines at the cursor, or inside a continuation stamped after it: the
    /// read is ignored ([`Self::tail_short`]) and the next one resumes with
    /// `sinceTime`.
    pub fn reconnected_tail(&mut self) {
        self.reconnected();
        if self.last.is_some() {
            self.resumed_head = false;
            self.resumed_unproven = false;
            self.tail = Tail::Unproven;
        }
    }

    /// `tailLines` for a drain: the lines delivered at the cursor's
    /// timestamp, and [`TAIL_MARGIN`] more.
    pub fn tail_lines(&self) -> i64 {
        i64::try_from(self.at_last.saturating_add(TAIL_MARGIN)).unwrap_or(i64::MAX)
    }

    /// The current tail read began too late to be counted: ignore it.
    pub fn tail_short(&self) -> bool {
        self.tail == Tail::Short
    }

    /// `sinceTime` for the next connection: the last timestamp, truncated to the second.
    pub fn since_time(&self) -> Option<Timestamp> {
        let t = self.last?;
        Timestamp::from_second(t.as_second()).ok()
    }

    /// The connection has shown every line delivered at the cursor's
    /// timestamp again (or nothing was delivered yet): it reached the point
    /// where the delivered log ends.
    pub fn caught_up(&self) -> bool {
        self.last.is_none() || self.seen_at_last >= self.at_last
    }

    /// The last delivered line's timestamp.
    pub fn last(&self) -> Option<Timestamp> {
        self.last
    }

    /// Whether [`Self::take_gaps`] has anything.
    pub fn has_gaps(&self) -> bool {
        !self.gaps.is_empty()
    }

    /// Windows in which lines may have been lost since the last call.
    pub fn take_gaps(&mut self) -> Vec<LogGap> {
        std::mem::take(&mut self.gaps)
    }

    /// Records that the log after the last delivered line cannot be read:
    /// the container ended and its current file no longer holds that line.
    pub fn lost_after_last(&mut self) {
        if let Some(after) = self.last {
            self.gaps.push(LogGap { after, before: None });
        }
    }

    /// Whether `line` is new; if so it counts as delivered.
    pub fn admit(&mut self, line: &LogLine) -> bool {
        self.admit_at(line.ts)
    }

    /// [`Self::admit`] of a line with timestamp `ts`.
    pub fn admit_at(&mut self, ts: Option<Timestamp>) -> bool {
        match self.tail {
            Tail::Trusted => {}
            Tail::Short => return false,
            Tail::Unproven => {
                if ts.zip(self.last).is_some_and(|(ts, last)| ts < last) {
                    self.tail = Tail::Trusted;
                } else {
                    self.tail = Tail::Short;
                    return false;
                }
            }
        }
        let head = std::mem::take(&mut self.resumed_head);
        let Some(ts) = ts else {
            // The kubelet stamps every line it starts; only the tail of a
            // line cut by `sinceTime` comes without, and only first.
            return !head;
        };
        if std::mem::take(&mut self.resumed_unproven)
            && let Some(last) = self.last
            && ts > last
        {
            self.gaps.push(LogGap { after: last, before: Some(ts) });
        }
        match self.last {
            Some(last) if ts < last => false,
            Some(last) if ts == last => {
                self.seen_at_last += 1;
                if self.seen_at_last <= self.at_last {
                    false
                } else {
                    self.at_last += 1;
                    true
                }
            }
            _ => {
                self.last = Some(ts);
                self.at_last = 1;
                self.seen_at_last = 1;
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        /// The per-second cache reads every line as the full parse does:
        /// kubelet stamps with 1–9 fraction digits, other offsets, no
        /// fraction, broken digits, seconds that change mid-stream.
        #[test]
        fn second_cache_agrees_with_the_full_parse(lines in proptest::collection::vec((
            0u32..3, 0u32..60, proptest::option::of(proptest::string::string_regex("[0-9]{1,10}").unwrap()),
            proptest::sample::select(vec!["Z", "+01:00", "z", "", "Zx"]), proptest::sample::select(vec![" {\"a\":1}", "", " x", "\tx"]),
        ), 0..40)) {
            let mut cache = SecondCache::default();
            for (minute, second, fraction, offset, rest) in lines {
                let frac = fraction.map(|f| format!(".{f}")).unwrap_or_default();
                let raw = format!("2026-12-04T20:{minute:02}:{second:02}{frac}{offset}{rest}");
                proptest::prop_assert_eq!(cache.parse(raw.as_bytes()), Line::parse(raw.as_bytes()), "{}", raw);
            }
        }
    }

    use super::*;

    fn ts(n: u64) -> String {
        // Several lines share each timestamp (n / 3), like lines of one write.
        let t = Timestamp::from_nanosecond(1_700_000_000_000_000_000 + i128::from(n / 3) * 250_000_000).unwrap();
        t.to_string()
    }

    fn log(n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            out.extend_from_slice(format!("{} line {i:06} é\n", ts(i)).as_bytes());
        }
        out
    }

    #[test]
    fn parses_prefix_and_keeps_odd_bytes() {
        let l = LogLine::parse(b"2026-11-23T10:00:00.123456789Z {\"a\":1}");
        assert_eq!(l.ts.unwrap().to_string(), "2026-11-23T10:00:00.123456789Z");
        assert_eq!(l.bytes, b"{\"a\":1}");
        let l = LogLine::parse(b"no timestamp here");
        assert_eq!((l.ts, l.bytes.as_slice()), (None, &b"no timestamp here"[..]));
        let l = LogLine::parse(b"2026-11-23T10:00:00Z \xff\x00bin");
        assert_eq!(l.bytes, b"\xff\x00bin");
    }

    #[test]
    fn utf8_split_across_chunks_is_carried() {
        let data = "2026-11-23T10:00:00Z héllo\n".as_bytes();
        let mut a = LineAssembler::new();
        let split = data.iter().position(|b| *b == 0xc3).unwrap() + 1; // inside 'é'
        assert!(a.push(&data[..split]).is_empty());
        let lines = a.push(&data[split..]);
        assert_eq!(String::from_utf8(lines[0].bytes.clone()).unwrap(), "héllo");
        assert_eq!(a.finish(), None);
    }

    #[test]
    fn final_line_without_newline() {
        let mut a = LineAssembler::new();
        assert_eq!(a.push(b"2026-11-23T10:00:00Z a\n2026-11-23T10:00:01Z b").len(), 1);
        assert_eq!(a.finish().unwrap().bytes, b"b");
    }

    /// The assembler as it was before lines were handed out borrowed: a
    /// byte scan for each newline and a copy of each line.
    #[derive(Default)]
    struct CopyingAssembler {
        partial: Vec<u8>,
    }

    impl CopyingAssembler {
        fn push(&mut self, chunk: &[u8]) -> Vec<LogLine> {
            let mut out = Vec::new();
            let mut rest = chunk;
            while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
                let line = if self.partial.is_empty() {
                    LogLine::parse(strip_cr(&rest[..nl]))
                } else {
                    self.partial.extend_from_slice(&rest[..nl]);
                    let whole = std::mem::take(&mut self.partial);
                    LogLine::parse(strip_cr(&whole))
                };
                out.push(line);
                rest = &rest[nl + 1..];
            }
            self.partial.extend_from_slice(rest);
            out
        }
    }

    proptest::proptest! {
        /// Borrowed lines are the copying assembler's lines, timestamps
        /// included, however the stream is cut (cuts inside timestamps,
        /// inside "\r\n", lines longer than many chunks).
        #[test]
        fn borrowed_lines_are_the_copied_lines(
            lines in proptest::collection::vec((proptest::option::of(0u64..1_000), "[a-z\r é{}\"]{0,40}", 0usize..3), 0..30),
            cuts in proptest::collection::vec(1usize..64, 1..20),
        ) {
            let mut stream = Vec::new();
            for (ts, text, long) in &lines {
                if let Some(t) = ts {
                    stream.extend_from_slice(ts_prefix(*t).as_bytes());
                }
                for _ in 0..=*long * 40 {
                    stream.extend_from_slice(text.as_bytes());
                }
                stream.push(b'\n');
            }
            let (mut new, mut old) = (LineAssembler::new(), CopyingAssembler::default());
            let (mut got, mut want) = (Vec::new(), Vec::new());
            let (mut rest, mut i) = (&stream[..], 0);
            while !rest.is_empty() {
                let n = cuts[i % cuts.len()].min(rest.len());
                new.push_each(&rest[..n], |l| got.push(l.to_log_line()));
                want.extend(old.push(&rest[..n]));
                proptest::prop_assert_eq!(new.pending(), old.partial.len());
                rest = &rest[n..];
                i += 1;
            }
            proptest::prop_assert_eq!(got, want);
        }
    }

    fn ts_prefix(n: u64) -> String {
        format!("{} ", ts(n))
    }

    #[test]
    fn a_long_lines_carry_buffer_is_freed() {
        let mut a = LineAssembler::new();
        let long = format!("2026-11-23T10:00:00Z {}", "y".repeat(1 << 20));
        for chunk in long.as_bytes().chunks(16 << 10) {
            a.push_each(chunk, |_| panic!("no line before its newline"));
        }
        assert_eq!(a.pending(), long.len());
        let mut n = 0;
        a.push_each(b"\n2026-11-23T10:00:01Z short\n", |l| {
            n += 1;
            assert_eq!(l.bytes.len(), if n == 1 { 1 << 20 } else { 5 });
        });
        assert_eq!((n, a.pending()), (2, 0));
        assert!(a.partial.capacity() <= KEEP_CAPACITY, "8 MiB lines must not pin their buffer");
    }

    #[test]
    fn since_time_truncates_to_the_second() {
        let mut c = ResumeCursor::new();
        assert_eq!(c.since_time(), None);
        c.admit(&LogLine::parse(b"2026-11-23T10:00:00.999999999Z x"));
        assert_eq!(c.since_time().unwrap().to_string(), "2026-11-23T10:00:00Z");
    }

    /// A kubelet's answer to `sinceTime`: every line at or after it.
    fn since(all: &[u8], since: Option<Timestamp>) -> Vec<u8> {
        let mut out = Vec::new();
        for raw in all.split_inclusive(|b| *b == b'\n') {
            let l = LogLine::parse(raw.strip_suffix(b"\n").unwrap());
            if since.is_none_or(|s| l.ts.unwrap() >= s) {
                out.extend_from_slice(raw);
            }
        }
        out
    }

    /// Each connection is cut `cut` bytes after the first line it has not yet
    /// delivered — for every `cut`, so the drop falls at every byte position
    /// within lines, timestamps and multi-byte characters: every line arrives
    /// exactly once, in order. (The replayed head of a connection is what a
    /// kubelet resends for a `sinceTime` rounded down to the second.)
    #[test]
    fn exactly_once_across_cuts_at_every_position() {
        let all = log(150);
        let want: Vec<Vec<u8>> = (0..150).map(|i| format!("line {i:06} é").into_bytes()).collect();
        // A connection must carry at least one whole line to make progress (a
        // kubelet resends a partial line whole), so cuts start at the longest line.
        let longest = all.split(|b| *b == b'\n').map(<[u8]>::len).max().unwrap() + 1;
        for cut in (longest..longest * 3).chain((longest * 3..all.len()).step_by(97)) {
            let mut cursor = ResumeCursor::new();
            let mut got: Vec<Vec<u8>> = Vec::new();
            let mut connections = 0;
            loop {
                connections += 1;
                assert!(connections < 10_000, "no progress");
                cursor.reconnected();
                let served = since(&all, cursor.since_time());
                // Lines are numbered: the replayed head is every line numbered below got.len().
                let line_no = |raw: &[u8]| {
                    let l = LogLine::parse(raw.strip_suffix(b"\n").unwrap_or(raw));
                    std::str::from_utf8(&l.bytes[5..11]).unwrap().parse::<usize>().unwrap()
                };
                let replayed: usize = served
                    .split_inclusive(|b| *b == b'\n')
                    .take_while(|raw| line_no(raw) < got.len())
                    .map(<[u8]>::len)
                    .sum();
                let cut_at = (replayed + cut).min(served.len());
                let mut asm = LineAssembler::new();
                for l in asm.push(&served[..cut_at]) {
                    if cursor.admit(&l) {
                        got.push(l.bytes);
                    }
                }
                if cut_at == served.len() {
                    break;
                }
                // Dropped mid-stream: the partial line is discarded.
            }
            assert_eq!(got, want, "cut every {cut} bytes");
        }
    }
}
