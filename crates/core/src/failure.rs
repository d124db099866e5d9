//! Reading a Claude `result` object for what went wrong (contract §2.6, the
//! claude-local helpers of `@paperclipai/adapter-claude-local` 2026.403.0,
//! widened where 2026.707.0 widened detection).

use serde_json::{Map, Value};

fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// The first error message of `errors[]`: a string, or an object's
/// `message` / `error` / `code`, or its JSON.
fn first_error(r: &Map<String, Value>) -> Option<String> {
    let errors = r.get("errors")?.as_array()?;
    errors.iter().find_map(|e| match e {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Object(o) => ["message", "error", "code"]
            .iter()
            .find_map(|k| text(o.get(*k)).map(str::to_owned))
            .or_else(|| Some(e.to_string())),
        _ => None,
    })
}

fn error_texts(r: &Map<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = text(r.get("result")).map(str::to_owned).into_iter().collect();
    for e in r.get("errors").and_then(Value::as_array).into_iter().flatten() {
        match e {
            Value::String(s) => out.push(s.clone()),
            other => out.push(other.to_string()),
        }
    }
    out
}

/// `describeClaudeFailure`: `Claude run failed[: subtype=…][: detail]`, or
/// `None` when there is nothing beyond the first part.
pub fn describe_claude_failure(r: &Map<String, Value>) -> Option<String> {
    let mut parts = vec!["Claude run failed".to_owned()];
    if let Some(sub) = text(r.get("subtype")) {
        parts.push(format!("subtype={sub}"));
    }
    if let Some(detail) = text(r.get("result")).map(str::to_owned).or_else(|| first_error(r)) {
        parts.push(detail);
    }
    (parts.len() > 1).then(|| parts.join(": "))
}

/// `isClaudeMaxTurnsResult` (2026.403.0, plus 2026.707.0's stop-reason and error-code fields).
pub fn is_max_turns_result(r: &Map<String, Value>) -> bool {
    let lower = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_lowercase);
    if lower("subtype").as_deref() == Some("error_max_turns") {
        return true;
    }
    let codes = ["max_turns", "max_turns_exhausted", "turn_limit", "turn_limit_exhausted"];
    if ["stop_reason", "stopReason", "error_code", "errorCode"].iter().any(|k| lower(k).is_some_and(|v| codes.contains(&v.as_str()))) {
        return true;
    }
    text(r.get("result")).is_some_and(|t| {
        let t = t.to_lowercase();
        // /max(?:imum)?\s+turns?/
        t.match_indices("max").any(|(i, _)| {
            let rest = &t[i + 3..];
            let rest = rest.strip_prefix("imum").unwrap_or(rest);
            let trimmed = rest.trim_start();
            trimmed.len() < rest.len() && trimmed.starts_with("turn")
        })
    })
}

/// `isClaudeUnknownSessionError` (with 2026.707.0's extra phrasings).
pub fn is_unknown_session_error(r: &Map<String, Value>) -> bool {
    error_texts(r).iter().any(|t| {
        let t = t.to_lowercase();
        t.contains("no conversation found with session id")
            || t.contains("unknown session")
            || session_not_found(&t)
            || t.contains("not a valid uuid")
            || t.contains("--resume requires a valid session")
            || t.contains("is not a uuid")
            || t.contains("does not match any session title")
    })
}

/// `/session .* not found/`.
fn session_not_found(t: &str) -> bool {
    t.match_indices("session ").any(|(i, _)| t[i + 8..].contains(" not found") || t[i + 8..].starts_with("not found"))
}

/// `detectClaudeLoginRequired`.
pub fn detect_login_required(text: &str) -> bool {
    let t = text.to_lowercase();
    let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let t = squeeze(&t);
    [
        "not logged in",
        "please log in",
        "please run claude login",
        "please run `claude login`",
        "login required",
        "requires login",
        "unauthorized",
        "authentication required",
    ]
    .iter()
    .any(|p| t.contains(p))
}

/// `extractClaudeLoginUrl`: the first `https://…` URL mentioning claude or anthropic, else the first URL.
pub fn extract_login_url(text: &str) -> Option<String> {
    let urls: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '<' || c == '>' || c == '`')
        .filter(|w| w.starts_with("https://") || w.starts_with("http://"))
        .map(|w| w.trim_end_matches(['.', ',', ')', ']', ';']))
        .collect();
    urls.iter()
        .find(|u| u.contains("claude") || u.contains("anthropic"))
        .or(urls.first())
        .map(|u| (*u).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn describes_failures() {
        assert_eq!(
            describe_claude_failure(&m(json!({"subtype": "error_during_execution", "result": " boom "}))).as_deref(),
            Some("Claude run failed: subtype=error_during_execution: boom")
        );
        assert_eq!(
            describe_claude_failure(&m(json!({"errors": [{"message": "bad key"}]}))).as_deref(),
            Some("Claude run failed: bad key")
        );
        assert_eq!(
            describe_claude_failure(&m(json!({"errors": [{"x": 1}]}))).as_deref(),
            Some("Claude run failed: {\"x\":1}")
        );
        assert_eq!(describe_claude_failure(&m(json!({}))), None);
    }

    #[test]
    fn max_turns() {
        assert!(is_max_turns_result(&m(json!({"subtype": "ERROR_MAX_TURNS"}))));
        assert!(is_max_turns_result(&m(json!({"stop_reason": "max_turns"}))));
        assert!(is_max_turns_result(&m(json!({"errorCode": "turn_limit_exhausted"}))));
        assert!(is_max_turns_result(&m(json!({"result": "Reached maximum  turns"}))));
        assert!(is_max_turns_result(&m(json!({"result": "max turn hit"}))));
        assert!(!is_max_turns_result(&m(json!({"result": "maxturns", "subtype": "success"}))));
        assert!(!is_max_turns_result(&m(json!({"result": "all done"}))));
    }

    #[test]
    fn unknown_session() {
        assert!(is_unknown_session_error(&m(json!({"result": "No conversation found with session ID: abc"}))));
        assert!(is_unknown_session_error(&m(json!({"errors": ["Session abc was not found"]}))));
        assert!(is_unknown_session_error(&m(json!({"errors": ["--resume requires a valid session ID"]}))));
        assert!(!is_unknown_session_error(&m(json!({"result": "all good"}))));
    }

    #[test]
    fn login() {
        assert!(detect_login_required("Error: Not  logged in. Please run `claude login`"));
        assert!(detect_login_required("401 Unauthorized"));
        assert!(!detect_login_required("everything fine"));
        assert_eq!(
            extract_login_url("visit https://example.com/x or https://claude.ai/oauth?x=1.").as_deref(),
            Some("https://claude.ai/oauth?x=1")
        );
        assert_eq!(extract_login_url("none"), None);
    }
}
