//! The prompt the pod feeds to `claude` on stdin (contract §1.7, §2.4).
//!
//! Sections, each trimmed and dropped when empty, joined by a blank line:
//! the bootstrap prompt (only when no session is resumed), the wake prompt,
//! the session handoff note, and the heartbeat prompt (skipped when a resumed
//! session has a wake prompt — the wake is then the whole delta).

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::config::AdapterConfig;
use crate::ctx::RunContext;

/// `renderTemplate`: replaces `{{ path.to.value }}` (path of
/// `[A-Za-z0-9_.-]`); missing or null → `""`; non-strings as JSON.
pub fn render_template(template: &str, data: &Value) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let inner = after[..end].trim();
                let valid = !inner.is_empty()
                    && inner.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
                if valid {
                    out.push_str(&lookup(data, inner));
                } else {
                    out.push_str(&rest[start..start + 2 + end + 2]);
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn lookup(data: &Value, path: &str) -> String {
    let mut cur = data;
    for part in path.split('.') {
        cur = match cur {
            Value::Object(m) => match m.get(part) {
                Some(v) => v,
                None => return String::new(),
            },
            Value::Array(a) => match part.parse::<usize>().ok().and_then(|i| a.get(i)) {
                Some(v) => v,
                None => return String::new(),
            },
            _ => return String::new(),
        };
    }
    match cur {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `renderPaperclipWakePrompt`: `Wake reason: …` and one `Comment: …` per comment.
pub fn wake_prompt(wake: Option<&Value>) -> String {
    let Some(Value::Object(w)) = wake else { return String::new() };
    let reason = w.get("reason").and_then(Value::as_str).map(str::trim).unwrap_or_default();
    let comments = w.get("comments").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut parts = Vec::new();
    if !reason.is_empty() {
        parts.push(format!("Wake reason: {reason}"));
    }
    for c in &comments {
        if let Some(body) = c.get("body").and_then(Value::as_str).map(str::trim).filter(|b| !b.is_empty()) {
            parts.push(format!("Comment: {body}"));
        }
    }
    parts.join("\n\n")
}

/// `promptMetrics` (character counts, UTF-16 units as JS `length` counts them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptMetrics {
    pub prompt_chars: usize,
    pub bootstrap_prompt_chars: usize,
    pub wake_prompt_chars: usize,
    pub session_handoff_chars: usize,
    pub heartbeat_prompt_chars: usize,
}

fn js_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// The template data of the original.
pub fn template_data(rc: &RunContext) -> Value {
    let agent = json!({
        "id": rc.agent.id,
        "companyId": rc.agent.company_id,
        "name": rc.agent.name,
        "adapterType": rc.agent.adapter_type,
        "adapterConfig": Value::Object(rc.config.clone()),
    });
    json!({
        "agentId": rc.agent.id,
        "companyId": rc.agent.company_id,
        "runId": rc.run_id,
        "company": {"id": rc.agent.company_id},
        "agent": agent,
        "run": {"id": rc.run_id, "source": "on_demand"},
        "context": Value::Object(rc.context.clone()),
    })
}

/// Builds the prompt and its metrics.
pub fn build_prompt(rc: &RunContext, cfg: &AdapterConfig) -> (String, PromptMetrics) {
    let data = template_data(rc);
    let resumed = rc.session_id().is_some();
    let bootstrap = match (&cfg.bootstrap_prompt_template, resumed) {
        (Some(t), false) if !t.trim().is_empty() => render_template(t, &data).trim().to_owned(),
        _ => String::new(),
    };
    let wake = wake_prompt(rc.context.get("paperclipWake"));
    let heartbeat = if resumed && !wake.is_empty() { String::new() } else { render_template(&cfg.prompt_template, &data) };
    let handoff = str_of(&rc.context, "paperclipSessionHandoffMarkdown").trim().to_owned();
    let prompt = [&bootstrap, &wake, &handoff, &heartbeat]
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join("\n\n");
    let metrics = PromptMetrics {
        prompt_chars: js_len(&prompt),
        bootstrap_prompt_chars: js_len(&bootstrap),
        wake_prompt_chars: js_len(&wake),
        session_handoff_chars: js_len(&handoff),
        heartbeat_prompt_chars: js_len(&heartbeat),
    };
    (prompt, metrics)
}

fn str_of<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc(v: Value) -> RunContext {
        RunContext::from_json(&v)
    }

    #[test]
    fn templates() {
        let d = json!({"a": {"b": "x", "n": 5, "o": {"k": 1}, "z": null}, "list": ["p", "q"]});
        assert_eq!(render_template("{{a.b}}-{{ a.n }}-{{a.o}}-{{a.z}}-{{missing.x}}", &d), "x-5-{\"k\":1}--");
        assert_eq!(render_template("{{list.1}} {{ }} {{a b}} {{unclosed", &d), "q {{ }} {{a b}} {{unclosed");
        assert_eq!(render_template("no braces", &d), "no braces");
    }

    /// A template that prints an object prints it in the host's key order.
    #[test]
    fn printed_objects_keep_the_hosts_key_order() {
        let ctx: Value = serde_json::from_str(
            r#"{"agent":{"id":"a"},"context":{"paperclipWake":{"reason":"comment_added","comments":[{"z":1,"a":2}]}}}"#,
        )
        .unwrap();
        let data = template_data(&rc(ctx));
        assert_eq!(
            render_template("{{context.paperclipWake}}", &data),
            r#"{"reason":"comment_added","comments":[{"z":1,"a":2}]}"#
        );
    }

    #[test]
    fn default_prompt() {
        let r = rc(json!({"runId": "r1", "agent": {"id": "agent-abc", "name": "Test Agent", "companyId": "co1"}}));
        let cfg = AdapterConfig::from_map(&Map::new()).unwrap();
        let (p, m) = build_prompt(&r, &cfg);
        assert_eq!(p, "You are agent agent-abc (Test Agent). Continue your Paperclip work.");
        assert_eq!(m.prompt_chars, p.len());
        assert_eq!(m.heartbeat_prompt_chars, p.len());
        assert_eq!(m.bootstrap_prompt_chars + m.wake_prompt_chars + m.session_handoff_chars, 0);
    }

    #[test]
    fn sections_in_order_and_resume_delta() {
        let ctx = json!({"runId": "r1", "agent": {"id": "a", "name": "N"},
            "context": {"paperclipWake": {"reason": " mentioned ", "comments": [{"body": "hi"}, {"body": "  "}, 3]},
                        "paperclipSessionHandoffMarkdown": " handoff "}});
        let mut cfg = AdapterConfig::from_map(&Map::new()).unwrap();
        cfg.bootstrap_prompt_template = Some("Boot {{agentId}}".into());
        let (p, m) = build_prompt(&rc(ctx.clone()), &cfg);
        assert_eq!(
            p,
            "Boot a\n\nWake reason: mentioned\n\nComment: hi\n\nhandoff\n\nYou are agent a (N). Continue your Paperclip work."
        );
        assert_eq!(m.wake_prompt_chars, "Wake reason: mentioned\n\nComment: hi".len());
        // Resumed with a wake: no bootstrap, no heartbeat.
        let mut resumed = ctx;
        resumed["runtime"] = json!({"sessionId": "s1"});
        let (p, m) = build_prompt(&rc(resumed), &cfg);
        assert_eq!(p, "Wake reason: mentioned\n\nComment: hi\n\nhandoff");
        assert_eq!((m.bootstrap_prompt_chars, m.heartbeat_prompt_chars), (0, 0));
    }

    #[test]
    fn metrics_count_like_js() {
        let r = rc(json!({"agent": {"id": "a", "name": "é\u{1F600}"}}));
        let cfg = AdapterConfig::from_map(&Map::new()).unwrap();
        let (p, m) = build_prompt(&r, &cfg);
        assert_eq!(m.prompt_chars, p.chars().count() + 1); // the emoji is two UTF-16 units
    }
}
