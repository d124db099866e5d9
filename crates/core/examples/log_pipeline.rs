//! The adapter's own share of log throughput, without the cluster: the bytes
//! of a `timestamps=true` log stream go through what the log follower does
//! with every line (reassembly, the resume cursor, the dedup net, the
//! stream-json parser, the batch handed to onLog). `npm run bench` runs it to
//! set the end-to-end figure (which includes the node, the apiserver and TLS
//! on the same cores) against what the adapter alone can do.
//!
//!   cargo run --profile tools -p claude-k8s-core --example log_pipeline [MiB]
//!
//! The stream is a deterministic stream-json mix shaped like a real
//! `claude --output-format stream-json --verbose` transcript: the system init
//! line, assistant text and thinking blocks, tool_use blocks, user
//! tool_result lines (half small, half 20–200 KiB, with `\n`, `\"`, `\\`,
//! `\u001b`, tabs and non-ASCII text, the CLI's `tool_use_result` copy
//! included), one huge tool result line (8 MiB at 100 MiB) and the final
//! result event. Every line is distinct and carries a kubelet timestamp.
//!
//! Beside the pipeline it times a floor over the same bytes: a plain
//! `memchr` split into lines, the least any line reader must do. It prints
//! one JSON line (the last line of stdout; `bench/run.mjs` reads it):
//! `mibPerSec` (wall clock, one thread), `cpuSecPerGib` (the thread's CPU
//! time), the same two for the floor, and `ratio` = pipeline ÷ floor.
//!
//! With `STAGES=1` it also times each stage alone (to stderr). `PHASE=gen`,
//! `PHASE=floor` or `PHASE=pipeline` run only that part (after generating
//! the stream), so an instruction count of the part is the difference of
//! two runs under `valgrind --tool=callgrind` (bench/callgrind.sh).
//! `PHASE=write OUT=path` writes the transcript as the CLI prints it (no
//! timestamps) to `path` and prints `{"lines":…,"bytes":…}`: the bench's
//! end-to-end throughput runs it through a real node.

use std::hint::black_box;
use std::time::Instant;

use claude_k8s_core::dedup::LineDedup;
use claude_k8s_core::lines::{LineAssembler, ResumeCursor};
use claude_k8s_core::logs::{Admit, BATCH_BYTES, LineSink};
use claude_k8s_core::transcript::{Transcript, TranscriptParser};

const MODEL: &str = "claude-sonnet-4-6";
const SESSION: &str = "0b5e3c1e-7f0a-4c52-9d55-5b8a6c3f2e11";
const RESULT_TEXT: &str = "All 214 tests pass; the parser change is committed as \\\"perf: borrowed reads\\\".\\nNext: the timestamp path.";
/// 16 KiB reads, as a TLS record at a time would arrive.
const CHUNK: usize = 16 << 10;
const MIB: f64 = (1 << 20) as f64;

/// splitmix64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }
}

/// Tool output and prose as it really comes: code, paths with backslashes,
/// quotes, tabs, ANSI colours, CJK and emoji.
const FRAGMENTS: &[&str] = &[
    "fn main() {\n    println!(\"héllo, wörld: {}\", args.len());\n}\n",
    "\tat com.example.billing.InvoiceService.render(InvoiceService.java:142)\n",
    "\u{1b}[1;32m✓\u{1b}[0m test lines::tests::exactly_once_across_cuts_at_every_position ... \u{1b}[32mok\u{1b}[0m\n",
    "C:\\Users\\dev\\project\\src\\main.rs:12:5: warning: unused variable: `x`\n",
    "{\"key\": \"value\", \"n\": 42, \"nested\": {\"a\": [1, 2, 3], \"s\": \"q\\\"uote\"}}\n",
    "日本語のテキスト、中文文本、한국어 텍스트 — emoji 🚀🔥 → done, naïve café\n",
    "    let path = format!(\"{}/{}\", dir.display(), name); // join the path\n",
    "drwxr-xr-x  2 root root  4096 Dec  2 10:00 .\n-rw-r--r--  1 root root 18231 Dec  2 10:00 Cargo.lock\n",
    "plain ASCII log line with a few words in it and a number 1234567890 at the end\n",
    "    assert_eq!(t.summary, \"one\\n\\ntwo\");\r\n",
    "error[E0502]: cannot borrow `*self` as mutable because it is also borrowed as immutable\n",
    "The function reads the configuration, validates each field and returns the first error it meets. ",
];

/// A raw-text corpus to cut tool outputs and messages from, and where its
/// fragments start (cuts fall there, so on character boundaries).
struct Corpus {
    text: String,
    starts: Vec<usize>,
}

impl Corpus {
    fn new(rng: &mut Rng, len: usize) -> Self {
        let (mut text, mut starts) = (String::with_capacity(len + 256), Vec::new());
        while text.len() < len {
            starts.push(text.len());
            text.push_str(FRAGMENTS[rng.range(0, FRAGMENTS.len())]);
        }
        Corpus { text, starts }
    }
    /// About `len` bytes of raw text, as a JSON string literal (quotes included).
    fn json(&self, rng: &mut Rng, len: usize, tag: u64) -> String {
        let mut raw = format!("[{tag}] ");
        while raw.len() < len {
            let start = self.starts[rng.range(0, self.starts.len())];
            let want = start + (len - raw.len());
            let end = self.starts.get(self.starts.partition_point(|s| *s < want)).copied();
            raw.push_str(&self.text[start..end.unwrap_or(self.text.len())]);
        }
        serde_json::to_string(&raw).unwrap()
    }
}

/// The stream-json lines of one transcript, in order, about `total` bytes.
fn transcript(total: usize) -> Vec<String> {
    let mut rng = Rng(0x5eed_1600);
    let corpus = Corpus::new(&mut rng, 1 << 20);
    let tools: Vec<String> = ["Task", "Bash", "Glob", "Grep", "LS", "Read", "Edit", "MultiEdit", "Write", "NotebookEdit", "WebFetch", "TodoWrite", "WebSearch", "BashOutput", "KillShell"]
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect();
    let mut out = vec![format!(
        r#"{{"type":"system","subtype":"init","cwd":"/paperclip/workspace","session_id":"{SESSION}","tools":[{}],"mcp_servers":[],"model":"{MODEL}","permissionMode":"bypassPermissions","slash_commands":["compact","context","cost","init","review","security-review"],"apiKeySource":"ANTHROPIC_API_KEY","claude_code_version":"2.1.3","output_style":"default","agents":["general-purpose","statusline-setup","Explore","Plan"],"skills":[],"plugins":[],"uuid":"6f1d1c1e-0000-4000-8000-000000000000"}}"#,
        tools.join(",")
    )];
    let mut bytes = out[0].len();
    let huge_at = total / 2;
    let mut huge_done = false;
    let mut n = 0u64;
    let usage = |rng: &mut Rng| {
        format!(
            r#""stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":{},"cache_creation_input_tokens":{},"cache_read_input_tokens":{},"cache_creation":{{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0}},"output_tokens":{},"service_tier":"standard"}},"context_management":null"#,
            rng.range(1, 10),
            rng.range(0, 5000),
            rng.range(10_000, 90_000),
            rng.range(1, 900)
        )
    };
    while bytes < total {
        n += 1;
        let mut turn = Vec::new();
        let msg = format!("msg_01{n:022}");
        let tail = format!(r#""parent_tool_use_id":null,"session_id":"{SESSION}","uuid":"9a0c{n:08x}-1f2e-4d3c-8b4a-{n:012x}""#);
        if rng.range(0, 4) == 0 {
            let len = rng.range(200, 3000);
            let (thinking, usage) = (corpus.json(&mut rng, len, n), usage(&mut rng));
            let sig = "EqQBCkYIBxgCKkB".repeat(24);
            turn.push(format!(r#"{{"type":"assistant","message":{{"id":"{msg}","type":"message","role":"assistant","model":"{MODEL}","content":[{{"type":"thinking","thinking":{thinking},"signature":"{sig}"}}],{usage}}},{tail}}}"#));
        }
        let len = rng.range(40, 1500);
        let (text, usage_text) = (corpus.json(&mut rng, len, n), usage(&mut rng));
        turn.push(format!(r#"{{"type":"assistant","message":{{"id":"{msg}","type":"message","role":"assistant","model":"{MODEL}","content":[{{"type":"text","text":{text}}}],{usage_text}}},{tail}}}"#));
        let tool = format!("toolu_01{n:022}");
        let read = rng.range(0, 3) == 0;
        let huge = !huge_done && bytes >= huge_at;
        let len = if huge {
            huge_done = true;
            // Twice in the line (content and tool_use_result): 8 MiB at 100 MiB.
            (total / 25).min(4 << 20)
        } else if rng.range(0, 2) == 0 {
            rng.range(100, 4 << 10)
        } else {
            rng.range(20 << 10, 200 << 10)
        };
        let content = corpus.json(&mut rng, len, n);
        let usage_tool = usage(&mut rng);
        let (input, result) = if read {
            (
                format!(r#"{{"file_path":"/paperclip/workspace/src/module_{n}.rs","limit":2000}}"#),
                format!(r#"{{"type":"text","file":{{"filePath":"/paperclip/workspace/src/module_{n}.rs","content":{content},"numLines":{},"startLine":1,"totalLines":{}}}}}"#, len / 40, len / 40),
            )
        } else {
            (
                format!(r#"{{"command":"cargo test -p claude-k8s-core --test hostile -- --nocapture 2>&1 | tail -n {n}","description":"Run the property tests"}}"#),
                format!(r#"{{"stdout":{content},"stderr":"","interrupted":false,"isImage":false}}"#),
            )
        };
        let name = if read { "Read" } else { "Bash" };
        turn.push(format!(r#"{{"type":"assistant","message":{{"id":"{msg}","type":"message","role":"assistant","model":"{MODEL}","content":[{{"type":"tool_use","id":"{tool}","name":"{name}","input":{input}}}],{usage_tool}}},{tail}}}"#));
        turn.push(format!(r#"{{"type":"user","message":{{"role":"user","content":[{{"tool_use_id":"{tool}","type":"tool_result","content":{content},"is_error":false}}]}},{tail},"tool_use_result":{result}}}"#));
        bytes += turn.iter().map(|l| l.len() + 32).sum::<usize>();
        out.extend(turn);
    }
    out.push(format!(
        r#"{{"type":"result","subtype":"success","is_error":false,"duration_ms":{},"duration_api_ms":{},"num_turns":{n},"result":"{RESULT_TEXT}","session_id":"{SESSION}","total_cost_usd":1.2345678,"usage":{{"input_tokens":1234,"cache_creation_input_tokens":56789,"cache_read_input_tokens":987654,"output_tokens":43210,"server_tool_use":{{"web_search_requests":0,"web_fetch_requests":0}},"service_tier":"standard","cache_creation":{{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":56789}}}},"modelUsage":{{"{MODEL}":{{"inputTokens":1234,"outputTokens":43210,"cacheReadInputTokens":987654,"cacheCreationInputTokens":56789,"webSearchRequests":0,"costUSD":1.2345678,"contextWindow":200000}}}},"permission_denials":[],"uuid":"7e57ab1e-0000-4000-8000-000000000000"}}"#,
        n * 4100,
        n * 3900
    ));
    out
}

/// The kubelet's `timestamps=true` stream of those lines: distinct,
/// increasing, nine-digit nanoseconds.
fn stream(lines: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.iter().map(|l| l.len() + 32).sum());
    for (i, line) in lines.iter().enumerate() {
        let ns = i as u64 * 1_234_567;
        let (s, frac) = (ns / 1_000_000_000, ns % 1_000_000_000);
        out.extend_from_slice(format!("2026-12-02T{:02}:{:02}:{:02}.{frac:09}Z ", 10 + s / 3600, s / 60 % 60, s % 60).as_bytes());
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

/// CPU time of this thread, in seconds.
fn thread_cpu() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Wall and CPU seconds of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (wall, cpu) = (Instant::now(), thread_cpu());
    let out = f();
    (out, wall.elapsed().as_secs_f64(), thread_cpu() - cpu)
}

/// The floor: every line found with `memchr`, nothing else done.
#[inline(never)]
fn floor(stream: &[u8]) -> (u64, usize) {
    let (mut lines, mut bytes, mut start) = (0u64, 0usize, 0usize);
    for nl in memchr::memchr_iter(b'\n', stream) {
        lines += 1;
        bytes += black_box(&stream[start..nl]).len();
        start = nl + 1;
    }
    (lines, bytes)
}

struct Piped {
    lines: u64,
    handed: usize,
    /// The most bytes the assembler held for an unfinished line.
    held: usize,
    transcript: Transcript,
}

/// What the log follower does with every line (logs.rs, `read_stream`).
#[inline(never)]
fn pipeline(stream: &[u8]) -> Piped {
    let mut assembler = LineAssembler::new();
    let mut sink = LineSink::new();
    let mut parser = TranscriptParser::new(MODEL);
    let mut batch = String::new();
    let (mut lines, mut handed, mut held) = (0u64, 0usize, 0usize);
    for chunk in stream.chunks(CHUNK) {
        assembler.push_each(chunk, |line| {
            if sink.admit(line, &mut parser, &mut batch) != Admit::Delivered {
                return;
            }
            lines += 1;
            if batch.len() >= BATCH_BYTES {
                handed += black_box(std::mem::take(&mut batch)).len();
            }
        });
        held = held.max(assembler.pending());
    }
    handed += batch.len();
    Piped { lines, handed, held, transcript: parser.finish() }
}

fn stages(stream: &[u8]) {
    let all: Vec<_> = LineAssembler::new().push(stream);
    let t = Instant::now();
    for chunk in stream.chunks(CHUNK) {
        black_box(LineAssembler::new().push(chunk));
    }
    eprintln!("reassembly+timestamp parse: {:.3}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let mut c = ResumeCursor::new();
    all.iter().for_each(|l| {
        c.admit(l);
    });
    eprintln!("cursor: {:.3}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let mut d = LineDedup::new();
    all.iter().for_each(|l| {
        d.admit(&l.bytes);
    });
    eprintln!("dedup: {:.3}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let mut p = TranscriptParser::new(MODEL);
    all.iter().for_each(|l| p.feed_str(std::str::from_utf8(&l.bytes).unwrap()));
    black_box(p.finish());
    eprintln!("parser: {:.3}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let mut batch = String::new();
    for l in &all {
        batch.push_str(std::str::from_utf8(&l.bytes).unwrap());
        batch.push('\n');
        if batch.len() >= BATCH_BYTES {
            black_box(std::mem::take(&mut batch));
        }
    }
    eprintln!("batching: {:.3}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    all.iter().for_each(|l| {
        black_box(simdutf8::basic::from_utf8(&l.bytes).is_ok());
    });
    eprintln!("UTF-8 check: {:.3}s", t.elapsed().as_secs_f64());
}

fn main() {
    let mib: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let phase = std::env::var("PHASE").unwrap_or_default();
    let lines = transcript(mib << 20);
    if phase == "write" {
        let out = std::env::var("OUT").expect("PHASE=write wants OUT=path");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&out).expect("OUT: cannot create"));
        let mut bytes = 0;
        for line in &lines {
            std::io::Write::write_all(&mut file, line.as_bytes()).and_then(|()| std::io::Write::write_all(&mut file, b"\n")).expect("OUT: cannot write");
            bytes += line.len() + 1;
        }
        std::io::Write::flush(&mut file).expect("OUT: cannot write");
        return println!("{{\"lines\":{},\"bytes\":{bytes}}}", lines.len());
    }
    let stream = stream(&lines);
    let content: usize = lines.iter().map(|l| l.len() + 1).sum();
    let longest = lines.iter().map(String::len).max().unwrap_or(0);
    match phase.as_str() {
        "gen" => return println!("{}", black_box(stream.len())),
        "floor" => return println!("{:?}", floor(&stream)),
        "pipeline" => return println!("{}", pipeline(&stream).lines),
        _ => {}
    }
    let input = stream.len() as f64 / MIB;
    // The floor is quick: the best of several passes.
    let (mut floor_wall, mut floor_cpu) = (f64::MAX, f64::MAX);
    for _ in 0..10 {
        let ((n, _), wall, cpu) = timed(|| floor(&stream));
        assert_eq!(n as usize, lines.len());
        (floor_wall, floor_cpu) = (floor_wall.min(wall), floor_cpu.min(cpu));
    }
    let (p, wall, cpu) = timed(|| pipeline(&stream));
    // The pipeline changes nothing: every line once, the transcript read right.
    assert_eq!(p.lines as usize, lines.len(), "every line admitted once");
    assert_eq!(p.handed, content, "every byte handed on");
    let t = &p.transcript;
    assert_eq!(t.session_id.as_deref(), Some(SESSION));
    assert_eq!(t.model, MODEL);
    assert!(t.mentions_configured_model && t.result_json.is_some() && t.usage.is_some_and(|u| u.output_tokens == 43210));
    assert_eq!(t.nonempty_lines as usize, lines.len());
    assert!(t.summary.starts_with("All 214 tests pass") && t.first_unparsed_line.is_none());
    if std::env::var_os("STAGES").is_some() {
        stages(&stream);
    }
    let (rate, floor_rate) = (input / wall, input / floor_wall);
    println!(
        "{{\"mib\":{:.1},\"lines\":{},\"seconds\":{wall:.3},\"mibPerSec\":{rate:.1},\"cpuSecPerGib\":{:.3},\"floorMibPerSec\":{floor_rate:.0},\"floorCpuSecPerGib\":{:.4},\"ratio\":{:.4},\"inputMib\":{input:.1},\"longestLineMib\":{:.2},\"heldMib\":{:.2}}}",
        p.handed as f64 / MIB,
        p.lines,
        cpu / input * 1024.0,
        floor_cpu / input * 1024.0,
        rate / floor_rate,
        longest as f64 / MIB,
        p.held as f64 / MIB,
    );
}
