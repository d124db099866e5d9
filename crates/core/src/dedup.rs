//! The safety net against a log source that repeats lines (contract §1.9).
//!
//! With timestamp resume ([`crate::lines::ResumeCursor`]) nothing should ever
//! repeat; this filter only catches a line a misbehaving kubelet sends twice
//! verbatim. Unlike 0.1.54's filter — which keyed assistant lines by
//! `message.id` and so dropped every content block after the first of a
//! multi-block message — it never drops a line that differs from one it kept:
//! a line is dropped only if the same bytes were seen recently.
//!
//! Only JSON-object lines are candidates; blank and non-JSON lines (the
//! adapter's own `[paperclip] …` lines, tool output) always pass. Memory is
//! bounded: the hashes of the last [`WINDOW`] candidate lines.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// How many recent candidate lines are remembered.
pub const WINDOW: usize = 4096;

/// The last `capacity` distinct 64-bit hashes, with O(1) lookup: the memory
/// of both this filter and the transcript's block dedup. (A `VecDeque`
/// scanned linearly was a fifth of a run's CPU on a transcript of short
/// assistant lines.)
#[derive(Debug)]
pub struct RecentHashes {
    capacity: usize,
    order: VecDeque<u64>,
    seen: HashSet<u64, BuildHasherDefault<Prehashed>>,
}

impl RecentHashes {
    pub fn new(capacity: usize) -> Self {
        RecentHashes { capacity, order: VecDeque::with_capacity(capacity), seen: HashSet::default() }
    }

    /// Remembers `key`; false if it was already remembered.
    pub fn insert(&mut self, key: u64) -> bool {
        if self.seen.contains(&key) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.order.push_back(key);
        self.seen.insert(key);
        true
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// The keys are XXH3 hashes already: hashing them again (SipHash, the
/// default) would only cost time.
#[derive(Debug, Default, Clone, Copy)]
pub struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    /// Not used for `u64` keys; folds the bytes so that any key still works.
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
}

#[derive(Debug)]
pub struct LineDedup {
    recent: RecentHashes,
}

impl Default for LineDedup {
    fn default() -> Self {
        LineDedup { recent: RecentHashes::new(WINDOW) }
    }
}

impl LineDedup {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the line should be delivered.
    pub fn admit(&mut self, line: &[u8]) -> bool {
        self.admit_parsed(line, None)
    }

    /// [`Self::admit`] for a caller that has already read part of `line` as
    /// one JSON object with serde_json (`object`, a sub-slice of `line`):
    /// when that is exactly the candidate — the line without the ASCII
    /// whitespace around it — it is not validated a second time.
    pub fn admit_parsed(&mut self, line: &[u8], object: Option<&[u8]>) -> bool {
        let trimmed = line.trim_ascii();
        if !(trimmed.starts_with(b"{") && trimmed.ends_with(b"}")) {
            return true;
        }
        // Only lines that really are JSON objects (the original's rule).
        // Validated without building a value: `{…}` that parses is an object.
        let parsed = object.is_some_and(|o| std::ptr::eq(o, trimmed));
        if !parsed && serde_json::from_slice::<serde::de::IgnoredAny>(trimmed).is_err() {
            return true;
        }
        // A 64-bit XXH3 of the bytes (SipHash was a fifth of the pipeline's time).
        self.recent.insert(xxhash_rust::xxh3::xxh3_64(trimmed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_sharing_a_message_id_all_pass() {
        // The 8-line tool-use transcript shape of CLI 2.1.x: three assistant
        // lines share msg_1. 0.1.54's filter kept 6 of 8 lines.
        let lines = [
            r#"{"type":"system","subtype":"init","session_id":"s"}"#,
            r#"{"type":"assistant","message":{"id":"msg_1","content":[{"type":"thinking","thinking":"hm"}]}}"#,
            r#"{"type":"assistant","message":{"id":"msg_1","content":[{"type":"text","text":"Let me check."}]}}"#,
            r#"{"type":"assistant","message":{"id":"msg_1","content":[{"type":"tool_use","id":"tu_1","name":"Bash","input":{}}]}}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"tu_1","content":"ok"}]}}"#,
            r#"{"type":"assistant","message":{"id":"msg_2","content":[{"type":"text","text":"Done."}]}}"#,
            r#"{"type":"rate_limit_event"}"#,
            r#"{"type":"result","subtype":"success","session_id":"s"}"#,
        ];
        let mut d = LineDedup::new();
        assert!(lines.iter().all(|l| d.admit(l.as_bytes())));
        // A verbatim replay is dropped.
        assert!(lines.iter().all(|l| !d.admit(l.as_bytes())));
    }

    #[test]
    fn non_json_and_blank_lines_always_pass() {
        let mut d = LineDedup::new();
        for _ in 0..3 {
            assert!(d.admit(b"[paperclip] keepalive"));
            assert!(d.admit(b""));
            assert!(d.admit(b"{not json}"));
        }
    }

    #[test]
    fn a_parsed_object_is_trusted_only_if_it_is_the_candidate() {
        let mut d = LineDedup::new();
        let line = b" {\"type\":\"user\"} ";
        assert!(d.admit_parsed(line, Some(line.trim_ascii())));
        assert!(!d.admit(line), "the first was remembered");
        // A claim about other bytes (a copy, a part) is validated as before.
        let not_json = b"{not json}".to_vec();
        let copy = not_json.clone();
        for _ in 0..2 {
            assert!(d.admit_parsed(&not_json, Some(&copy)));
            assert!(d.admit_parsed(&not_json, Some(&not_json[..5])));
        }
        assert_eq!(d.recent.len(), 1);
    }

    #[test]
    fn memory_is_bounded() {
        let mut d = LineDedup::new();
        for i in 0..(WINDOW * 3) {
            assert!(d.admit(format!("{{\"n\":{i}}}").as_bytes()));
        }
        assert_eq!(d.recent.order.len(), WINDOW);
        assert_eq!(d.recent.seen.len(), WINDOW);
        // Out of the window: admitted again (a safety net, not a ledger).
        assert!(d.admit(b"{\"n\":0}"));
    }
}
