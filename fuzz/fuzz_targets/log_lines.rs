//! The log line path: bytes as the apiserver streams them, in chunks the
//! input chooses, through the assembler, the resume cursor (with reconnects
//! at chosen lines), the glue repair, the dedup net, the parser and the
//! batch; the end judged as the follower judges it. No input may panic, and
//! the batch only ever holds whole lines.
#![no_main]

use claude_k8s_core::lines::{Line, LineAssembler, strip_cr};
use claude_k8s_core::logs::{EndOfLog, LineSink, ReadEnd};
use claude_k8s_core::transcript::TranscriptParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&shape, stream)) = data.split_first() else { return };
    let chunk = 1 + usize::from(shape & 0x3f);
    let reconnect_every = 1 + u64::from(shape >> 6);
    let mut sink = LineSink::new();
    let mut parser = TranscriptParser::new("m");
    let mut batch = String::new();
    let mut end = EndOfLog::default();
    let mut asm = LineAssembler::new();
    let mut n = 0u64;
    for piece in stream.chunks(chunk) {
        asm.push_each(piece, |line| {
            n += 1;
            if n % reconnect_every == 0 {
                sink.cursor.reconnected();
            }
            sink.admit(line, &mut parser, &mut batch);
        });
    }
    let partial = asm.take_partial();
    let read = ReadEnd { clean: true, any_line: n > 0, new_lines: 0, caught_up: sink.cursor.caught_up(), partial: partial.clone() };
    let _ = end.judge(read.clone(), true, sink.cursor.last().is_some());
    if let claude_k8s_core::logs::Verdict::Drained(Some(last)) = end.judge(read, true, sink.cursor.last().is_some()) {
        sink.admit(Line::parse(strip_cr(&last)), &mut parser, &mut batch);
    }
    sink.flush(&mut parser, &mut batch);
    let _ = sink.cursor.take_gaps();
    assert!(batch.is_empty() || batch.ends_with('\n'), "the batch holds whole lines");
    let _ = parser.finish();
});
