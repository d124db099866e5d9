//! Container log files, as a kubelet keeps them: one record per line,
//! `<RFC 3339 nanosecond timestamp> <F|P> <bytes>\n`, where `F` is a full
//! line and `P` a final line that had no newline. Bytes are stored as they
//! came (invalid UTF-8, NUL, CR and all).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, Notify};

/// One container's log: the file, a wake-up for followers, and whether the
/// container has exited (then a follower ends at EOF).
pub struct ContainerLog {
    pub path: PathBuf,
    pub notify: Notify,
    pub finished: AtomicBool,
    file: Mutex<Option<tokio::fs::File>>,
}

impl ContainerLog {
    pub async fn create(path: PathBuf) -> std::io::Result<Arc<Self>> {
        let file = tokio::fs::OpenOptions::new().create(true).append(true).open(&path).await?;
        Ok(Arc::new(ContainerLog { path, notify: Notify::new(), finished: AtomicBool::new(false), file: Mutex::new(Some(file)) }))
    }

    /// One CRI-style record (`<RFC 3339 ns> <F|P> <line>\n`) appended to
    /// `out`, stamped now. `second` caches the text up to the second, which
    /// a burst of lines shares (formatting a timestamp per line was most of
    /// the pump's time).
    fn record(out: &mut Vec<u8>, second: &mut (i64, String), tag: u8, line: &[u8]) {
        use std::io::Write;
        let now = Timestamp::now();
        if second.1.is_empty() || second.0 != now.as_second() {
            let text = format!("{:.0}", Timestamp::from_second(now.as_second()).unwrap_or(now));
            // "…T20:03:33Z" → "…T20:03:33."
            *second = (now.as_second(), format!("{}.", text.trim_end_matches('Z')));
        }
        out.extend_from_slice(second.1.as_bytes());
        let _ = write!(out, "{:09}Z ", now.subsec_nanosecond());
        out.push(tag);
        out.push(b' ');
        out.extend_from_slice(line);
        out.push(b'\n');
    }

    async fn write(&self, records: &mut Vec<u8>) {
        let mut f = self.file.lock().await;
        if let Some(file) = f.as_mut() {
            let _ = file.write_all(records).await;
            let _ = file.flush().await;
        }
        drop(f);
        records.clear();
        self.notify.notify_waiters();
    }

    /// Copies a pipe into the log, line by line, until EOF. Lines that are
    /// already buffered are written together (one write per burst, each
    /// line with its own timestamp): a write per line capped a chatty
    /// container at a few MiB/s, far below what a kubelet's runtime does.
    pub async fn pump(self: Arc<Self>, pipe: impl tokio::io::AsyncRead + Unpin) {
        let mut r = BufReader::with_capacity(1 << 16, pipe);
        let mut buf = Vec::new();
        let mut records = Vec::with_capacity(1 << 17);
        let mut second = (0, String::new());
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                        Self::record(&mut records, &mut second, b'F', &buf);
                    } else {
                        Self::record(&mut records, &mut second, b'P', &buf);
                    }
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

pub fn parse_record(rec: &[u8]) -> Option<Record<'_>> {
    let rec = rec.strip_suffix(b"\n")?;
    let sp = rec.iter().position(|b| *b == b' ')?;
    let ts_text = std::str::from_utf8(&rec[..sp]).ok()?;
    let rest = &rec[sp + 1..];
    let (tag, line) = (rest.first()?, rest.get(2..).unwrap_or_default());
    Some(Record { ts_text, full: *tag == b'F', line })
}

/// Renders one record as the kubelet would send it. The stored timestamp is
/// RFC 3339 with nanoseconds already (what [`ContainerLog`] writes), so it
/// is copied, not parsed and formatted again per line.
pub fn render(r: &Record, timestamps: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(r.line.len() + 40);
    if timestamps {
        out.extend_from_slice(r.ts_text.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(r.line);
    if r.full {
        out.push(b'\n');
    }
    out
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

    #[tokio::test]
    async fn records_round_trip_with_partial_last_line() {
        let dir = std::env::temp_dir().join(format!("node-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = ContainerLog::create(dir.join("c.log")).await.unwrap();
        let data: &[u8] = b"one\n\xff\x00two\nthree-no-newline";
        log.clone().pump(data).await;
        let text = std::fs::read(dir.join("c.log")).unwrap();
        let recs: Vec<_> = text.split_inclusive(|b| *b == b'\n').map(|r| parse_record(r).unwrap()).collect();
        assert_eq!(recs.len(), 3);
        assert_eq!((recs[0].line, recs[0].full), (&b"one"[..], true));
        assert_eq!(recs[1].line, b"\xff\x00two");
        assert_eq!((recs[2].line, recs[2].full), (&b"three-no-newline"[..], false));
        assert_eq!(render(&recs[2], false), b"three-no-newline");
        assert!(recs[0].ts().unwrap() <= recs[2].ts().unwrap());
        // Stamped as jiff formats RFC 3339 with nanoseconds.
        for r in &recs {
            assert_eq!(r.ts_text, format!("{:.9}", r.ts().unwrap()));
        }
        let with_ts = render(&recs[0], true);
        assert!(with_ts.ends_with(b" one\n"));
        assert_eq!(count_records(&dir.join("c.log")).await, 3);
    }

    #[test]
    fn query_parsing() {
        let q = LogQuery::parse("container=claude&follow=true&timestamps=true&sinceTime=2026-11-23T10%3A00%3A00Z&tailLines=5&limitBytes=100");
        assert!(q.follow && q.timestamps);
        assert_eq!(q.since.unwrap().to_string(), "2026-11-23T10:00:00Z");
        assert_eq!((q.tail_lines, q.limit_bytes), (Some(5), Some(100)));
    }
}
