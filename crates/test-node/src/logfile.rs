//! Container log files, as containerd writes them and the kubelet keeps
//! them (read from `k8s.io/cri-client@v0.37.2/pkg/logs` and containerd's
//! CRI log writer): one record per at most [`RECORD_BYTES`] of a line,
//! `<RFC 3339 nanosecond timestamp> <stdout|stderr> <F|P> <bytes>\n`, each
//! record stamped when written. A line longer than a record is written as
//! `P` records of exactly [`RECORD_BYTES`] and a final `F`; a last line
//! without a newline ends in a `P`. stdout and stderr are pumped
//! independently into the one file, so a stderr record may fall between
//! two records of a long stdout line, as on a real node. Bytes are stored
//! as they came (invalid UTF-8, NUL, CR and all).
//!
//! Rotation (a fault hook, `POST /faults/rotate-logs`): once the current
//! file reaches its size limit it is renamed to `<name>.1` and a new file
//! opened — as the kubelet's container log manager does at
//! `containerLogMaxSize`; a read already following goes on into the new
//! file, a new request reads only the current one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use k8s_openapi::jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, Notify};

/// containerd's `max_container_log_line_size` default: the longest record.
pub const RECORD_BYTES: usize = 16 << 10;

/// One container's log: the file, a wake-up for followers, and whether the
/// container has exited (then a follower ends at EOF).
pub struct ContainerLog {
    pub path: PathBuf,
    pub notify: Notify,
    pub finished: AtomicBool,
    file: Mutex<Option<(tokio::fs::File, u64)>>,
    /// Rotate once the current file holds this many bytes (0: never).
    rotate_at: AtomicU64,
    /// How many times the file was rotated.
    generation: AtomicU64,
}

impl ContainerLog {
    pub async fn create(path: PathBuf) -> std::io::Result<Arc<Self>> {
        let file = tokio::fs::OpenOptions::new().create(true).append(true).open(&path).await?;
        Ok(Arc::new(ContainerLog {
            path,
            notify: Notify::new(),
            finished: AtomicBool::new(false),
            file: Mutex::new(Some((file, 0))),
            rotate_at: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }))
    }

    /// Rotates the file whenever it reaches `bytes` (0: never).
    pub fn rotate_at(&self, bytes: u64) {
        self.rotate_at.store(bytes, Ordering::SeqCst);
    }

    /// Bumped after each rotation, once nothing more goes to the old file.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// One CRI record (`<RFC 3339 ns> <stream> <F|P> <bytes>\n`) appended
    /// to `out`, stamped now. `second` caches the text up to the second,
    /// which a burst of lines shares (formatting a timestamp per line was
    /// most of the pump's time).
    fn record(out: &mut Vec<u8>, second: &mut (i64, String), stream: &str, tag: u8, line: &[u8]) {
        use std::io::Write;
        let now = Timestamp::now();
        if second.1.is_empty() || second.0 != now.as_second() {
            let text = format!("{:.0}", Timestamp::from_second(now.as_second()).unwrap_or(now));
            // "…T20:03:33Z" → "…T20:03:33."
            *second = (now.as_second(), format!("{}.", text.trim_end_matches('Z')));
        }
        out.extend_from_slice(second.1.as_bytes());
        let _ = write!(out, "{:09}Z {stream} ", now.subsec_nanosecond());
        out.push(tag);
        out.push(b' ');
        out.extend_from_slice(line);
        out.push(b'\n');
    }

    /// The records of one line as containerd cuts it: `P` records of
    /// [`RECORD_BYTES`], the last one `F` (`P` when the line had no newline).
    fn records(out: &mut Vec<u8>, second: &mut (i64, String), stream: &str, line: &[u8], newline: bool) {
        let mut rest = line;
        while rest.len() > RECORD_BYTES {
            Self::record(out, second, stream, b'P', &rest[..RECORD_BYTES]);
            rest = &rest[RECORD_BYTES..];
        }
        Self::record(out, second, stream, if newline { b'F' } else { b'P' }, rest);
    }

    async fn write(&self, records: &mut Vec<u8>) {
        let mut f = self.file.lock().await;
        if let Some((file, size)) = f.as_mut() {
            let _ = file.write_all(records).await;
            let _ = file.flush().await;
            *size += records.len() as u64;
            let limit = self.rotate_at.load(Ordering::SeqCst);
            if limit > 0 && *size >= limit {
                let rotated = PathBuf::from(format!("{}.1", self.path.display()));
                if tokio::fs::rename(&self.path, &rotated).await.is_ok()
                    && let Ok(new) = tokio::fs::OpenOptions::new().create(true).append(true).open(&self.path).await
                {
                    *f = Some((new, 0));
                    self.generation.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        drop(f);
        records.clear();
        self.notify.notify_waiters();
    }

    /// Copies a pipe into the log, line by line, until EOF. Lines that are
    /// already buffered are written together (one write per burst, each
    /// record with its own timestamp): a write per line capped a chatty
    /// container at a few MiB/s, far below what a kubelet's runtime does.
    pub async fn pump(self: Arc<Self>, pipe: impl tokio::io::AsyncRead + Unpin, stream: &'static str) {
        let mut r = BufReader::with_capacity(1 << 16, pipe);
        let mut buf = Vec::new();
        let mut records = Vec::with_capacity(1 << 17);
        let mut second = (0, String::new());
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let newline = buf.last() == Some(&b'\n');
                    if newline {
                        buf.pop();
                    }
                    Self::records(&mut records, &mut second, stream, &buf, newline);
                }
            }
            // Write when the next line is not complete yet (reading it would
            // wait on the process) or the batch is large.
            if !r.buffer().contains(&b'\n') || records.len() >= 1 << 16 {
                self.write(&mut records).await;
            }
        }
        if !records.is_empty() {
            self.write(&mut records).await;
        }
    }

    pub fn finish(&self) {
        self.finished.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// `pods/log` query parameters the kubelet honours.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub follow: bool,
    pub timestamps: bool,
    pub since: Option<Timestamp>,
    pub tail_lines: Option<u64>,
    pub limit_bytes: Option<u64>,
}

impl LogQuery {
    pub fn parse(query: &str) -> LogQuery {
        let mut q = LogQuery::default();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            match k {
                "follow" => q.follow = v == "true" || v == "1",
                "timestamps" => q.timestamps = v == "true" || v == "1",
                "sinceTime" => q.since = v.parse().ok(),
                "sinceSeconds" => {
                    if let Ok(s) = v.parse::<i64>() {
                        q.since = Timestamp::now().checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(s)).ok();
                    }
                }
                "tailLines" => q.tail_lines = v.parse().ok(),
                "limitBytes" => q.limit_bytes = v.parse().ok(),
                _ => {}
            }
        }
        q
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One parsed record. The timestamp is kept as its text: a follower reads
/// every line, but only a `sinceTime` request needs it as a time.
pub struct Record<'a> {
    pub ts_text: &'a str,
    pub full: bool,
    pub line: &'a [u8],
}

impl Record<'_> {
    pub fn ts(&self) -> Option<Timestamp> {
        self.ts_text.parse().ok()
    }
}

/// `parseCRILog`: `<ts> <stream> <tag> <content>\n`.
pub fn parse_record(rec: &[u8]) -> Option<Record<'_>> {
    let rec = rec.strip_suffix(b"\n")?;
    let sp = rec.iter().position(|b| *b == b' ')?;
    let ts_text = std::str::from_utf8(&rec[..sp]).ok()?;
    let rest = &rec[sp + 1..];
    let sp = rest.iter().position(|b| *b == b' ')?;
    if !matches!(&rest[..sp], b"stdout" | b"stderr") {
        return None;
    }
    let rest = &rest[sp + 1..];
    let (tag, line) = (rest.first()?, rest.get(2..).unwrap_or_default());
    Some(Record { ts_text, full: *tag == b'F', line })
}

/// The kubelet's writer for one request (`logWriter.write` in `ReadLogs`):
/// a timestamp only before the first record of a logical line — one
/// `isNewLine` flag for stdout and stderr together — and `sinceTime`
/// applied to each record, so a read may start with a line's headless tail
/// and a stderr line may land inside a long stdout line.
#[derive(Debug)]
pub struct Writer {
    pub timestamps: bool,
    pub since: Option<Timestamp>,
    new_line: bool,
}

impl Writer {
    pub fn new(timestamps: bool, since: Option<Timestamp>) -> Self {
        Writer { timestamps, since, new_line: true }
    }

    /// Renders `r` as the kubelet would send it (nothing for a record
    /// before `since`). The stored timestamp is RFC 3339 with nanoseconds
    /// already (what [`ContainerLog`] writes), so it is copied, not parsed
    /// and formatted again per record.
    pub fn render(&mut self, r: &Record) -> Vec<u8> {
        let new_line = std::mem::replace(&mut self.new_line, r.full || r.line.is_empty());
        if let Some(s) = self.since
            && r.ts().is_none_or(|ts| ts < s)
        {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(r.line.len() + 40);
        if self.timestamps && new_line {
            out.extend_from_slice(r.ts_text.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(r.line);
        if r.full {
            out.push(b'\n');
        }
        out
    }
}

/// How many records the file holds (for `tailLines`).
pub async fn count_records(path: &Path) -> u64 {
    let mut f = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(_) => return 0,
    };
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0;
    loop {
        match f.read(&mut buf).await {
            Ok(0) | Err(_) => return n,
            Ok(k) => n += buf[..k].iter().filter(|b| **b == b'\n').count() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records_of(path: &Path) -> Vec<(String, bool, Vec<u8>)> {
        let text = std::fs::read(path).unwrap();
        text.split_inclusive(|b| *b == b'\n')
            .map(|r| {
                let rec = parse_record(r).unwrap();
                let stream = std::str::from_utf8(r).unwrap_or("").split(' ').nth(1).unwrap_or("?").to_owned();
                (stream, rec.full, rec.line.to_vec())
            })
            .collect()
    }

    #[tokio::test]
    async fn records_round_trip_with_partial_last_line() {
        let dir = std::env::temp_dir().join(format!("node-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = ContainerLog::create(dir.join("c.log")).await.unwrap();
        let data: &[u8] = b"one\n\xff\x00two\nthree-no-newline";
        log.clone().pump(data, "stdout").await;
        let text = std::fs::read(dir.join("c.log")).unwrap();
        assert!(text.starts_with(b"20") && text.windows(10).any(|w| w == b" stdout F "), "CRI format");
        let recs: Vec<_> = text.split_inclusive(|b| *b == b'\n').map(|r| parse_record(r).unwrap()).collect();
        assert_eq!(recs.len(), 3);
        assert_eq!((recs[0].line, recs[0].full), (&b"one"[..], true));
        assert_eq!(recs[1].line, b"\xff\x00two");
        assert_eq!((recs[2].line, recs[2].full), (&b"three-no-newline"[..], false));
        assert_eq!(Writer::new(false, None).render(&recs[2]), b"three-no-newline");
        assert!(recs[0].ts().unwrap() <= recs[2].ts().unwrap());
        // Stamped as jiff formats RFC 3339 with nanoseconds.
        for r in &recs {
            assert_eq!(r.ts_text, format!("{:.9}", r.ts().unwrap()));
        }
        let with_ts = Writer::new(true, None).render(&recs[0]);
        assert!(with_ts.ends_with(b" one\n"));
        assert_eq!(count_records(&dir.join("c.log")).await, 3);
    }

    /// A 40 000-byte line is P 16384, P 16384, F 7232, as on containerd
    /// 2.4.2; the kubelet sends it with one timestamp.
    #[tokio::test]
    async fn a_long_line_is_partial_records_sent_with_one_prefix() {
        let dir = std::env::temp_dir().join(format!("node-log-long-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = ContainerLog::create(dir.join("c.log")).await.unwrap();
        let line = vec![b'y'; 40_000];
        log.clone().pump(&[&line[..], b"\nshort\n"].concat()[..], "stdout").await;
        let recs = records_of(&dir.join("c.log"));
        let shape: Vec<(bool, usize)> = recs.iter().map(|(_, f, l)| (*f, l.len())).collect();
        assert_eq!(shape, [(false, 16384), (false, 16384), (true, 7232), (true, 5)]);
        let text = std::fs::read(dir.join("c.log")).unwrap();
        let mut w = Writer::new(true, None);
        let sent: Vec<u8> = text.split_inclusive(|b| *b == b'\n').flat_map(|r| w.render(&parse_record(r).unwrap())).collect();
        let lines: Vec<&[u8]> = sent.split(|b| *b == b'\n').collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), 31 + 40_000, "one prefix for the whole line");
        assert!(lines[1].ends_with(b"Z short"));
        // sinceTime after the first record: the tail comes headless.
        let recs: Vec<_> = text.split_inclusive(|b| *b == b'\n').map(|r| parse_record(r).unwrap()).collect();
        let mut w = Writer::new(true, Some(recs[0].ts().unwrap().checked_add(k8s_openapi::jiff::SignedDuration::from_nanos(1)).unwrap()));
        if recs[1].ts() > recs[0].ts() {
            let tail: Vec<u8> = recs.iter().flat_map(|r| w.render(r)).collect();
            assert!(tail.starts_with(&[b'y'; 100]), "no timestamp before the tail");
        }
    }

    /// One isNewLine flag for both streams: a stderr record between two
    /// records of a stdout line ends up inside that line.
    #[test]
    fn a_stderr_record_between_partial_records_is_glued() {
        let recs = [
            b"2026-12-05T10:00:00.000000001Z stdout P aaaa\n".as_slice(),
            b"2026-12-05T10:00:00.000000002Z stderr F warn\n",
            b"2026-12-05T10:00:00.000000003Z stdout F bbbb\n",
        ];
        let mut w = Writer::new(true, None);
        let sent: Vec<u8> = recs.iter().flat_map(|r| w.render(&parse_record(r).unwrap())).collect();
        assert_eq!(sent, b"2026-12-05T10:00:00.000000001Z aaaawarn\n2026-12-05T10:00:00.000000003Z bbbb\n");
    }

    #[tokio::test]
    async fn rotation_starts_a_new_file_and_keeps_one() {
        let dir = std::env::temp_dir().join(format!("node-log-rot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = ContainerLog::create(dir.join("c.log")).await.unwrap();
        log.rotate_at(1000);
        let data: Vec<u8> = (0..100).flat_map(|i| format!("line {i:03}\n").into_bytes()).collect();
        // One line per read, so that each is a write of its own.
        for l in data.split_inclusive(|b| *b == b'\n') {
            log.clone().pump(l, "stdout").await;
        }
        assert!(log.generation() >= 3);
        let current = records_of(&dir.join("c.log"));
        let rotated = records_of(&dir.join("c.log.1"));
        assert!(!current.is_empty() && current.len() < 100);
        assert_eq!(rotated.last().unwrap().2, format!("line {:03}", 99 - current.len()).into_bytes());
    }

    #[test]
    fn query_parsing() {
        let q = LogQuery::parse("container=claude&follow=true&timestamps=true&sinceTime=2026-11-23T10%3A00%3A00Z&tailLines=5&limitBytes=100");
        assert!(q.follow && q.timestamps);
        assert_eq!(q.since.unwrap().to_string(), "2026-11-23T10:00:00Z");
        assert_eq!((q.tail_lines, q.limit_bytes), (Some(5), Some(100)));
    }
}
