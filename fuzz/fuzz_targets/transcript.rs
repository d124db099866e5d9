//! The transcript parser on any stream-json-ish input: line by line through
//! the fast read/apply path and the general one. No input may panic.
#![no_main]

use claude_k8s_core::transcript::{TranscriptParser, parse_all};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut p = TranscriptParser::new("claude-sonnet-4-6");
    for line in data.split(|b| *b == b'\n') {
        match std::str::from_utf8(line) {
            Ok(text) => {
                let read = p.read(text);
                p.apply(read);
            }
            Err(_) => p.feed(line),
        }
    }
    let _ = p.finish();
    let _ = parse_all(data, "");
});
