//! The stream-json transcript, parsed as it streams (contract §1.10, §3).
//!
//! [`TranscriptParser`] is fed one complete line at a time and keeps only
//! what the result needs: the session id and model, the last `result`
//! object, the assistant text for the summary (capped), and the few facts the
//! error messages quote. Memory is O(1) in the transcript's length apart from
//! those caps.
//!
//! Invariant: `feed` never panics, whatever the bytes (invalid UTF-8, NUL,
//! huge lines, JSON of any shape); unknown line types are skipped.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The summary keeps at most this many bytes of assistant text (the head).
pub const SUMMARY_CAP: usize = 256 * 1024;
/// Lines quoted in error messages are cut to this many characters.
pub const QUOTE_CAP: usize = 500;
/// Assistant text blocks remembered for de-duplication (bounded).
const SEEN_BLOCKS_CAP: usize = 4096;

/// Token usage, in Paperclip's names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
}

/// What a whole transcript amounts to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcript {
    pub session_id: Option<String>,
    pub model: String,
    pub cost_usd: Option<f64>,
    pub usage: Option<Usage>,
    pub summary: String,
    pub result_json: Option<Map<String, Value>>,
    /// An assistant line with `stop_reason: null` and 0 output tokens, and no result.
    pub llm_api_empty_response: bool,
    /// The assistant produced output but no result event arrived.
    pub truncated_mid_stream: bool,
    pub stdout_bytes: u64,
    pub nonempty_lines: u64,
    /// The first non-empty line that is not a JSON object with a non-empty `type` (capped).
    pub first_unparsed_line: Option<String>,
    /// stdout contained `"model":"<configured model>"` (the init line names it).
    pub mentions_configured_model: bool,
    /// The last `system/api_retry` line: the CLI's own retry of a failed API call.
    pub last_api_retry: Option<ApiRetry>,
    /// An assistant line reported output tokens: the model did work (the CLI's
    /// own error messages are `<synthetic>` lines with 0 output tokens).
    pub model_output_seen: bool,
}

/// The CLI's `{"type":"system","subtype":"api_retry",…}` line: its back-off
/// before the next attempt (honouring the API's `retry-after`), and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiRetry {
    pub retry_delay_ms: Option<u64>,
    pub error_status: Option<u16>,
    pub error: Option<String>,
}

#[derive(Debug)]
pub struct TranscriptParser {
    /// Finds `"model":"<configured model>"`; None without a configured model.
    model_needle: Option<memchr::memmem::Finder<'static>>,
    t: Transcript,
    content_seen: bool,
    empty_response: bool,
    texts: String,
    summary_full: bool,
    seen_blocks: crate::dedup::RecentHashes,
    /// Every line through the general path (tests compare the two paths).
    slow_only: bool,
}

/// Block `i` of message `id` with this text, as a 64-bit XXH3 (the id is
/// length-prefixed, so no two (id, i, text) share their bytes).
fn block_key(id: &str, i: usize, text: &str) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&(id.len() as u64).to_le_bytes());
    h.update(id.as_bytes());
    h.update(&(i as u64).to_le_bytes());
    h.update(text.as_bytes());
    h.digest()
}

fn cap(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { s.chars().take(n).collect::<String>() + "…" }
}

impl TranscriptParser {
    pub fn new(configured_model: &str) -> Self {
        TranscriptParser {
            model_needle: (!configured_model.is_empty())
                .then(|| memchr::memmem::Finder::new(&format!("\"model\":\"{configured_model}\"")).into_owned()),
            t: Transcript::default(),
            content_seen: false,
            empty_response: false,
            texts: String::new(),
            summary_full: false,
            seen_blocks: crate::dedup::RecentHashes::new(SEEN_BLOCKS_CAP),
            slow_only: false,
        }
    }

    /// A parser without the fast path: the reference the fast path must
    /// agree with (property-tested in tests/hostile.rs).
    #[doc(hidden)]
    pub fn reference(configured_model: &str) -> Self {
        TranscriptParser { slow_only: true, ..Self::new(configured_model) }
    }

    /// One line of stdout, without its newline (invalid UTF-8 is read as U+FFFD).
    pub fn feed(&mut self, raw: &[u8]) {
        match simdutf8::basic::from_utf8(raw) {
            Ok(line) => self.feed_str(line),
            Err(_) => {
                let line = String::from_utf8_lossy(raw);
                let read = ReadLine { raw_len: raw.len(), ..self.read(&line) };
                self.apply(read);
            }
        }
    }

    /// [`Self::feed`] of a line already known to be UTF-8.
    pub fn feed_str(&mut self, line: &str) {
        let read = self.read(line);
        self.apply(read);
    }

    /// The first half of [`Self::feed_str`], which changes nothing: the
    /// line's one typed JSON read. A caller that must decide on the line
    /// first (the dedup net, which needs to know whether it is JSON) uses
    /// what it found, then hands it to [`Self::apply`] — or drops it.
    pub fn read<'a>(&self, line: &'a str) -> ReadLine<'a> {
        let trimmed = line.trim();
        let typed = if trimmed.starts_with('{') && !self.slow_only { serde_json::from_str::<FastLine>(trimmed).ok() } else { None };
        ReadLine { raw_len: line.len(), trimmed, typed }
    }

    /// The second half of [`Self::feed_str`]: what the line means for the transcript.
    pub fn apply(&mut self, read: ReadLine<'_>) {
        self.t.stdout_bytes += read.raw_len as u64 + 1;
        let line = read.trimmed;
        if line.is_empty() {
            return;
        }
        self.t.nonempty_lines += 1;
        if let Some(needle) = &self.model_needle
            && !self.t.mentions_configured_model
        {
            self.t.mentions_configured_model = needle.find(line.as_bytes()).is_some();
        }
        if let Some(typed) = read.typed
            && self.fast(typed)
        {
            return;
        }
        let parsed: Option<Map<String, Value>> = if line.starts_with('{') {
            serde_json::from_str::<Value>(line).ok().and_then(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            })
        } else {
            None
        };
        let typ = parsed.as_ref().and_then(|m| m.get("type")).and_then(Value::as_str).filter(|t| !t.is_empty());
        let (Some(obj), Some(typ)) = (parsed.as_ref(), typ) else {
            if self.t.first_unparsed_line.is_none() {
                self.t.first_unparsed_line = Some(cap(line, QUOTE_CAP));
            }
            return;
        };
        let sid = obj.get("session_id").and_then(Value::as_str).filter(|s| !s.is_empty());
        match typ {
            "system" if obj.get("subtype").and_then(Value::as_str) == Some("api_retry") => {
                self.t.last_api_retry = Some(ApiRetry {
                    retry_delay_ms: obj.get("retry_delay_ms").and_then(Value::as_u64),
                    error_status: obj.get("error_status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok()),
                    error: obj.get("error").and_then(Value::as_str).map(|e| cap(e, QUOTE_CAP)),
                });
            }
            "system" if obj.get("subtype").and_then(Value::as_str) == Some("init") => {
                if let Some(s) = sid {
                    self.t.session_id = Some(s.to_owned());
                }
                if let Some(m) = obj.get("model").and_then(Value::as_str).filter(|m| !m.is_empty()) {
                    self.t.model = m.to_owned();
                }
            }
            "assistant" => {
                if let Some(s) = sid {
                    self.t.session_id = Some(s.to_owned());
                }
                self.assistant(obj);
            }
            "result" => {
                if let Some(s) = sid {
                    self.t.session_id = Some(s.to_owned());
                }
                self.t.result_json = Some(obj.clone());
            }
            _ => {}
        }
    }

    /// The common lines — assistant blocks, tool results — read without
    /// building a `Value` (most of a transcript's parsing time went there).
    /// Returns false when the line is not one of them; a line whose shape
    /// the typed read refuses (wrong types, duplicate keys) never gets here.
    /// The general path then reads it exactly as before, so results never differ.
    fn fast(&mut self, l: FastLine<'_>) -> bool {
        match l.typ.as_deref() {
            Some("assistant") => {
                if let Some(s) = l.session_id.as_deref().filter(|s| !s.is_empty()) {
                    self.t.session_id = Some(s.to_owned());
                }
                let Some(Object(msg)) = l.message else { return true };
                let id = msg.id.as_deref().unwrap_or_default();
                let texts = msg.content.iter().flatten().enumerate().filter(|(_, b)| b.typ.as_deref() == Some("text"));
                for (i, b) in texts {
                    if let Some(text) = b.text.as_deref() {
                        self.assistant_text(id, i, text);
                    }
                }
                let output_tokens = l.output_tokens.or_else(|| msg.usage.and_then(|u| u.0.output_tokens));
                self.assistant_tokens(output_tokens, matches!(msg.stop_reason, Some(None)));
                true
            }
            // Types the result ignores (user/tool lines, stream events).
            Some(t) if !t.is_empty() && !matches!(t, "system" | "result") => true,
            _ => false,
        }
    }

    fn assistant(&mut self, obj: &Map<String, Value>) {
        let Some(msg) = obj.get("message").and_then(Value::as_object) else { return };
        let id = msg.get("id").and_then(Value::as_str).unwrap_or_default();
        if let Some(blocks) = msg.get("content").and_then(Value::as_array) {
            for (i, b) in blocks.iter().enumerate() {
                if b.get("type").and_then(Value::as_str) != Some("text") {
                    continue;
                }
                if let Some(text) = b.get("text").and_then(Value::as_str) {
                    self.assistant_text(id, i, text);
                }
            }
        }
        let usage = msg.get("usage");
        let output_tokens = obj
            .get("output_tokens")
            .and_then(Value::as_f64)
            .or_else(|| usage.and_then(|u| u.get("output_tokens")).and_then(Value::as_f64));
        self.assistant_tokens(output_tokens, msg.get("stop_reason").is_some_and(Value::is_null));
    }

    /// One text block of an assistant message (block `i` of message `id`).
    fn assistant_text(&mut self, id: &str, i: usize, text: &str) {
        let text = text.trim();
        // The text only feeds the summary: once that is full, nothing to do.
        if text.is_empty() || self.summary_full {
            return;
        }
        // CLI 2.x prints one line per block, all with the same message id and
        // index 0: key by id + text so no block is lost, and a replayed
        // block is not counted twice.
        if self.seen_blocks.insert(block_key(id, i, text)) {
            self.push_text(text);
        }
    }

    fn assistant_tokens(&mut self, output_tokens: Option<f64>, stop_null: bool) {
        if stop_null && output_tokens == Some(0.0) {
            self.empty_response = true;
        }
        if output_tokens.is_some_and(|n| n > 0.0) {
            self.content_seen = true;
        }
    }

    fn push_text(&mut self, text: &str) {
        if self.summary_full {
            return;
        }
        if !self.texts.is_empty() {
            self.texts.push_str("\n\n");
        }
        let room = SUMMARY_CAP.saturating_sub(self.texts.len());
        if text.len() <= room {
            self.texts.push_str(text);
        } else {
            let mut end = room;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            self.texts.push_str(&text[..end]);
            self.summary_full = true;
        }
    }

    pub fn finish(self) -> Transcript {
        let mut t = self.t;
        t.model_output_seen = self.content_seen;
        let summary_from_texts = self.texts.trim().to_owned();
        match &t.result_json {
            Some(r) => {
                let usage = r.get("usage");
                let n = |k: &str| usage.and_then(|u| u.get(k)).and_then(Value::as_f64).map(|f| f.max(0.0) as u64).unwrap_or(0);
                t.usage = Some(Usage {
                    input_tokens: n("input_tokens"),
                    cached_input_tokens: n("cache_read_input_tokens"),
                    output_tokens: n("output_tokens"),
                });
                t.cost_usd = r.get("total_cost_usd").and_then(Value::as_f64).filter(|c| c.is_finite());
                t.summary = match r.get("result").and_then(Value::as_str) {
                    Some(s) if !s.trim().is_empty() => s.trim().to_owned(),
                    _ => summary_from_texts,
                };
                t.llm_api_empty_response = false;
                t.truncated_mid_stream = false;
            }
            None => {
                t.summary = summary_from_texts;
                t.llm_api_empty_response = self.empty_response && !self.content_seen;
                t.truncated_mid_stream = self.content_seen;
            }
        }
        t
    }
}

/// A line read by [`TranscriptParser::read`], not yet applied.
pub struct ReadLine<'a> {
    raw_len: usize,
    trimmed: &'a str,
    /// The typed read, when the line is an object it accepts.
    typed: Option<FastLine<'a>>,
}

impl<'a> ReadLine<'a> {
    /// The line without surrounding whitespace (`str::trim`).
    pub fn trimmed(&self) -> &'a str {
        self.trimmed
    }

    /// serde_json read [`Self::trimmed`] as one JSON object. False means
    /// only that the typed read did not accept it (it may still be JSON).
    pub fn is_json_object(&self) -> bool {
        self.typed.is_some()
    }
}

/// The fields of a stream-json line the fast path reads; the rest is skipped.
#[derive(Deserialize)]
struct FastLine<'a> {
    #[serde(rename = "type", borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Object<FastMessage<'a>>>,
    output_tokens: Option<f64>,
}

#[derive(Deserialize)]
struct FastMessage<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<Vec<Object<FastBlock<'a>>>>,
    usage: Option<Object<FastUsage>>,
    /// Absent → `None`; `null` → `Some(None)` (what "no stop reason" is).
    #[serde(default, deserialize_with = "present")]
    stop_reason: Option<Option<IgnoredAny>>,
}

#[derive(Deserialize)]
struct FastBlock<'a> {
    #[serde(rename = "type", borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct FastUsage {
    output_tokens: Option<f64>,
}

/// A typed read of a JSON *object* only. serde's derived structs also take
/// an array, by position (`"usage":[12]` would be output_tokens 12), where
/// the general path's `as_object()` sees nothing: refusing it sends such a
/// line down the general path, so both read it alike.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Only<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Only<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Only(std::marker::PhantomData)).map(Object)
    }
}

impl<T> std::ops::Deref for Object<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<IgnoredAny>>, D::Error> {
    Option::<IgnoredAny>::deserialize(d).map(Some)
}

/// Parses a whole stdout at once (tests, one-shot reads).
pub fn parse_all(stdout: &[u8], configured_model: &str) -> Transcript {
    let mut p = TranscriptParser::new(configured_model);
    for line in stdout.split(|b| *b == b'\n') {
        if !line.is_empty() {
            p.feed(line);
        }
    }
    p.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INIT: &str = r#"{"type":"system","subtype":"init","model":"claude-sonnet-4-6","session_id":"sess_test123"}"#;
    const RESULT: &str = r#"{"type":"result","subtype":"success","result":"Done.","session_id":"sess_test123","usage":{"input_tokens":100,"output_tokens":50,"cache_read_input_tokens":10},"total_cost_usd":0.001}"#;

    #[test]
    fn happy_path() {
        let t = parse_all(format!("{INIT}\n{RESULT}\n").as_bytes(), "claude-sonnet-4-6");
        assert_eq!(t.session_id.as_deref(), Some("sess_test123"));
        assert_eq!(t.model, "claude-sonnet-4-6");
        assert_eq!(t.usage, Some(Usage { input_tokens: 100, cached_input_tokens: 10, output_tokens: 50 }));
        assert_eq!(t.cost_usd, Some(0.001));
        assert_eq!(t.summary, "Done.");
        assert!(t.mentions_configured_model);
        assert!(!t.llm_api_empty_response && !t.truncated_mid_stream);
        assert_eq!(t.nonempty_lines, 2);
    }

    #[test]
    fn every_block_of_a_multi_block_message_counts() {
        // CLI 2.1.x: one line per block, same message id (the original kept only the first).
        let a = |text: &str| format!(r#"{{"type":"assistant","message":{{"id":"msg_1","content":[{{"type":"text","text":"{text}"}}],"stop_reason":null,"usage":{{"output_tokens":1}}}},"session_id":"s"}}"#);
        let out = format!("{INIT}\n{}\n{}\n{}\n", a("one"), a("two"), a("two"));
        let t = parse_all(out.as_bytes(), "");
        assert_eq!(t.summary, "one\n\ntwo");
        assert!(t.truncated_mid_stream);
        assert!(!t.llm_api_empty_response);
    }

    #[test]
    fn empty_response_and_truncation_flags() {
        let empty = r#"{"type":"assistant","message":{"id":"m","content":[],"stop_reason":null,"usage":{"output_tokens":0}}}"#;
        let t = parse_all(format!("{INIT}\n{empty}\n").as_bytes(), "");
        assert!(t.llm_api_empty_response && !t.truncated_mid_stream);
        let t = parse_all(format!("{INIT}\n{empty}\n{RESULT}\n").as_bytes(), "");
        assert!(!t.llm_api_empty_response && t.result_json.is_some());
    }

    #[test]
    fn garbage_never_panics_and_is_quoted() {
        let mut p = TranscriptParser::new("m");
        p.feed(b"\xff\xfe\x00 not json");
        p.feed(b"[1,2]");
        p.feed(b"{\"type\":\"\"}");
        p.feed(b"{\"type\":\"assistant\",\"message\":7}");
        p.feed(b"{\"type\":\"result\"}");
        p.feed(&vec![b'{'; 100_000]);
        p.feed("x".repeat(10_000).as_bytes());
        let t = p.finish();
        assert!(t.first_unparsed_line.unwrap().contains("not json"));
        assert!(t.result_json.is_some());
    }

    /// JSON text with the shapes that separate the typed read from
    /// serde_json's plain validation: duplicate keys, wrong types, deep
    /// nesting, numbers out of f64 range, escapes (lone surrogates too),
    /// control characters, whitespace, and cuts that leave it invalid.
    /// `beyond_value`: also numbers beyond f64, lone surrogate escapes and
    /// nesting beyond serde_json's recursion limit, which a `Value` cannot
    /// hold but the typed read skips (`typed_read_skips_what_a_value_cannot_hold`).
    fn jsonish(beyond_value: bool) -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let big = if beyond_value { "1e400" } else { "1e300" };
        let limit = if beyond_value { 200 } else { 100 };
        let lone = if beyond_value { r#""lone \ud800""# } else { r#""pair \ud800\udc00""# };
        let atom = prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("0".to_owned()),
            Just("12".to_owned()),
            Just("-1.5e3".to_owned()),
            Just(big.to_owned()),
            Just("01".to_owned()),
            Just(r#""text""#.to_owned()),
            Just(r#""assistant""#.to_owned()),
            Just(r#""user""#.to_owned()),
            Just(r#""a\nb\"c\u00e9\ud83d\ude80""#.to_owned()),
            Just(lone.to_owned()),
            Just("\"tab\there\"".to_owned()),
            Just(r#""bad \x""#.to_owned()),
            "[a-z é]{0,6}".prop_map(|s| format!("{s:?}")),
        ];
        let key = prop_oneof![
            Just("type"), Just("message"), Just("content"), Just("text"), Just("id"), Just("session_id"),
            Just("usage"), Just("output_tokens"), Just("stop_reason"), Just("subtype"), Just("x"),
        ];
        let value = atom.prop_recursive(5, 48, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((key.clone(), inner), 0..5)
                    .prop_map(|kv| format!("{{{}}}", kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect::<Vec<_>>().join(","))),
            ]
        });
        (value, 0usize..4, any::<u16>(), 0usize..limit).prop_map(|(v, how, at, depth)| {
            let v = format!(r#"{{"type":"assistant","message":{v},"session_id":"s","x":{v}}}"#);
            let at = usize::from(at) % (v.len() + 1);
            match how {
                0 => v,
                // A cut: mostly invalid.
                1 if v.is_char_boundary(at) => v[..at].to_owned(),
                // Nesting deeper than serde_json's recursion limit.
                2 => format!(r#"{{"type":"user","x":{}{}}}"#, "[".repeat(depth), "]".repeat(depth)),
                _ => format!(" \t{v}\r "),
            }
        })
    }

    proptest::proptest! {
        /// What the dedup net relies on when it skips its own validation: a
        /// line the typed read accepts is one serde_json's validation accepts.
        #[test]
        fn typed_read_accepts_only_json(line in jsonish(true)) {
            let p = TranscriptParser::new("m");
            let read = p.read(&line);
            if read.is_json_object() {
                proptest::prop_assert!(serde_json::from_slice::<IgnoredAny>(read.trimmed().as_bytes()).is_ok());
                let t = read.trimmed();
                proptest::prop_assert!(t.starts_with('{') && t.ends_with('}'), "{:?}", t);
            }
        }

        /// read + apply is feed, and the typed read gives the general path's transcript.
        #[test]
        fn read_then_apply_is_the_general_path(lines in proptest::collection::vec(jsonish(false), 0..8)) {
            let (mut split, mut reference) = (TranscriptParser::new("claude-sonnet-4-6"), TranscriptParser::reference("claude-sonnet-4-6"));
            for l in &lines {
                let read = split.read(l);
                split.apply(read);
                reference.feed(l.as_bytes());
            }
            proptest::prop_assert_eq!(split.finish(), reference.finish());
        }
    }

    /// Where the typed read (in use since it came) and the general path
    /// differ: JSON that serde_json validates but a `Value` cannot hold — a
    /// number beyond f64, a lone surrogate escape (`\ud800`, which
    /// JSON.stringify writes for half a surrogate pair) or nesting past its
    /// recursion limit — in a field the typed read skips. The line counts as
    /// parsed; the general path would quote it as unparsed. Kept as it is.
    #[test]
    fn typed_read_skips_what_a_value_cannot_hold() {
        let deep = format!(r#"{{"type":"user","x":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        for line in [r#"{"type":"user","x":1e400}"#, r#"{"type":"user","x":"\ud800"}"#, deep.as_str()] {
            let mut p = TranscriptParser::new("");
            p.feed(line.as_bytes());
            assert_eq!(p.finish().first_unparsed_line, None);
            let mut p = TranscriptParser::reference("");
            p.feed(line.as_bytes());
            assert!(p.finish().first_unparsed_line.is_some());
        }
    }

    #[test]
    fn summary_is_capped() {
        let mut p = TranscriptParser::new("");
        let block = "y".repeat(100_000);
        for i in 0..10 {
            p.feed(format!(r#"{{"type":"assistant","message":{{"id":"m{i}","content":[{{"type":"text","text":"{block}"}}],"usage":{{"output_tokens":5}}}}}}"#).as_bytes());
        }
        let t = p.finish();
        assert!(t.summary.len() <= SUMMARY_CAP);
        assert!(t.summary.len() > SUMMARY_CAP - 100_000);
    }

    /// An array where an object belongs is not read by position.
    #[test]
    fn arrays_are_not_objects_on_either_path() {
        let line = br#"{"type":"assistant","message":{"id":"m","content":[["text","hi"]],"usage":[12],"stop_reason":null}}"#;
        let mut fast = TranscriptParser::new("m");
        let mut slow = TranscriptParser::reference("m");
        fast.feed(line);
        slow.feed(line);
        let (fast, slow) = (fast.finish(), slow.finish());
        assert_eq!(fast, slow);
        assert!(!fast.truncated_mid_stream && !fast.model_output_seen, "no usage was read from [12]");
    }

}
