//! Names and label values built from ids (contract §1.7).
//!
//! Invariant: whatever the input, [`sanitize_label_value`] returns a valid
//! Kubernetes label value or `None`, and [`job_name`] a valid DNS-1123 label
//! of at most 43 characters.

use sha2::{Digest, Sha256};

/// `sanitizeLabelValue`: keep `[A-Za-z0-9._-]`, cut to 63, trim
/// non-alphanumerics at both ends; empty → `None`.
pub fn sanitize_label_value(value: &str) -> Option<String> {
    let kept: String = value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(63)
        .collect();
    let trimmed = kept.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// Lowercase, drop `[^a-z0-9-]`, first 16 chars, strip trailing `-`.
fn slug(s: &str) -> String {
    let mut out: String = s
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .take(16)
        .collect();
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// `ac-<agent slug>-<run slug>-<hash6>`, hash = sha256("<agent id>:<run id>").
pub fn job_name(agent_id: &str, run_id: &str) -> String {
    let hash = Sha256::digest(format!("{agent_id}:{run_id}").as_bytes());
    let hex: String = hash.iter().take(3).map(|b| format!("{b:02x}")).collect();
    let agent = slug(agent_id);
    let run = slug(run_id);
    // An empty slug would leave "--" in the name; still valid DNS-1123 (inner
    // dashes are allowed), kept for parity with the original.
    format!("ac-{agent}-{run}-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_keeps_label_characters() {
        assert_eq!(sanitize_label_value("agent-abc").as_deref(), Some("agent-abc"));
        assert_eq!(sanitize_label_value("a b/c:d").as_deref(), Some("abcd"));
        assert_eq!(sanitize_label_value("--x--").as_deref(), Some("x"));
        assert_eq!(sanitize_label_value("._-"), None);
        assert_eq!(sanitize_label_value(""), None);
        assert_eq!(sanitize_label_value("日本"), None);
        assert_eq!(sanitize_label_value(&"a".repeat(100)).unwrap().len(), 63);
        // A cut that ends on a dash is trimmed again.
        let v = format!("{}-b", "a".repeat(62));
        assert_eq!(sanitize_label_value(&v).unwrap(), "a".repeat(62));
    }

    #[test]
    fn job_name_shape() {
        let n = job_name("Agent_ABC-123", "run-test-001");
        assert!(n.starts_with("ac-agentabc-123-run-test-001-"), "{n}");
        assert_eq!(n.len(), "ac-agentabc-123-run-test-001-".len() + 6);
        assert_eq!(job_name("a", "r"), job_name("a", "r"));
        assert_ne!(job_name("a", "r1"), job_name("a", "r2"));
        let long = job_name(&"x".repeat(100), &"y".repeat(100));
        assert!(long.len() <= 43, "{long}");
    }

    #[test]
    fn labels_and_names_are_always_valid() {
        let inputs = ["", "-", "ÄÖÜ", "a\0b", "../..", "x".repeat(500).as_str(), "UPPER.case_ok", "a--b"]
            .map(str::to_owned);
        for s in inputs {
            if let Some(v) = sanitize_label_value(&s) {
                assert!(v.len() <= 63);
                assert!(v.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)));
                assert!(v.starts_with(|c: char| c.is_ascii_alphanumeric()));
                assert!(v.ends_with(|c: char| c.is_ascii_alphanumeric()));
            }
            let n = job_name(&s, &s);
            assert!(n.len() <= 63 && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
            assert!(n.ends_with(|c: char| c.is_ascii_alphanumeric()));
        }
    }
}
