//! The adapter's own share of log throughput, without the cluster: the bytes
//! of a `timestamps=true` log stream go through what the log follower does
//! with every line (reassembly, the resume cursor, the dedup net, the
//! stream-json parser, the batch handed to onLog). `npm run bench` runs it to
//! set the end-to-end figure (which includes the node, the apiserver and TLS
//! on the same cores) against what the adapter alone can do.
//!
//!   cargo run --profile tools -p claude-k8s-core --example log_pipeline [MiB]
//!
//! With `STAGES=1` it also times each stage alone (to stderr).

use std::time::Instant;

use claude_k8s_core::dedup::LineDedup;
use claude_k8s_core::lines::{LineAssembler, ResumeCursor};
use claude_k8s_core::transcript::TranscriptParser;

fn main() {
    let mib: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let pad = "x".repeat(160);
    let mut stream = Vec::with_capacity(mib << 20);
    let mut n = 0u64;
    while stream.len() < mib << 20 {
        n += 1;
        let line = format!(
            "2026-12-02T10:00:{:02}.{:09}Z {{\"type\":\"assistant\",\"message\":{{\"id\":\"msg_{n}\",\"content\":[{{\"type\":\"text\",\"text\":\"{pad} {n}\"}}]}},\"session_id\":\"bench\"}}\n",
            (n / 1_000_000_000) % 60,
            n % 1_000_000_000
        );
        stream.extend_from_slice(line.as_bytes());
    }
    let started = Instant::now();
    let mut assembler = LineAssembler::new();
    let mut cursor = ResumeCursor::new();
    let mut dedup = LineDedup::new();
    let mut parser = TranscriptParser::new("claude-sonnet-4-6");
    let mut batch = String::new();
    let (mut lines, mut handed) = (0u64, 0usize);
    // 16 KiB reads, as a TLS record at a time would arrive.
    for chunk in stream.chunks(16 << 10) {
        for line in assembler.push(chunk) {
            if !cursor.admit(&line) || !dedup.admit(&line.bytes) {
                continue;
            }
            lines += 1;
            parser.feed(&line.bytes);
            batch.push_str(&String::from_utf8_lossy(&line.bytes));
            batch.push('\n');
            if batch.len() >= 1 << 20 {
                handed += std::mem::take(&mut batch).len();
            }
        }
    }
    handed += batch.len();
    let secs = started.elapsed().as_secs_f64();
    let _ = parser.finish();
    if std::env::var_os("STAGES").is_some() {
        // Each stage alone over the same lines, to see where the time goes.
        let all: Vec<_> = LineAssembler::new().push(&stream);
        let t = Instant::now();
        let _ = LineAssembler::new().push(&stream);
        eprintln!("reassembly+timestamp parse: {:.3}s", t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut c = ResumeCursor::new();
        all.iter().for_each(|l| { c.admit(l); });
        eprintln!("cursor: {:.3}s", t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut d = LineDedup::new();
        all.iter().for_each(|l| { d.admit(&l.bytes); });
        eprintln!("dedup: {:.3}s", t.elapsed().as_secs_f64());
        let t = Instant::now();
        let mut p = TranscriptParser::new("m");
        all.iter().for_each(|l| p.feed(&l.bytes));
        eprintln!("parser: {:.3}s", t.elapsed().as_secs_f64());
    }
    assert_eq!(lines, n, "every line admitted once");
    println!(
        "{{\"mib\":{:.1},\"lines\":{lines},\"seconds\":{secs:.3},\"mibPerSec\":{:.1}}}",
        handed as f64 / (1 << 20) as f64,
        stream.len() as f64 / (1 << 20) as f64 / secs
    );
}
