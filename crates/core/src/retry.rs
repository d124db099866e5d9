//! What the host can do about a failed run: adapter-utils 2026.916.1's
//! `errorFamily` and `retryNotBefore`, with `claude_local`'s error codes.
//!
//! The host retries `transient_upstream` and `provider_quota` failures (2026.916.1:
//! two attempts 30 s apart, no earlier than `retryNotBefore`, and only with
//! positive evidence that no provider work started — `executionRecovery`;
//! 2026.707.0: `transient_upstream` only, at 2, 10, 30 minutes and 2 hours). A
//! refusal is worth no retry; a login problem needs a human.
//!
//! The evidence is the CLI's own: the `result` line (`api_error_status`, its
//! text), and its `api_retry` lines (the back-off it computed, honouring the
//! API's `retry-after`). Unlike `claude_local`, which also matches its login
//! and quota phrases against the whole stdout (so an agent that prints
//! "401 Unauthorized" in a successful run is told to log in), only the result's
//! own fields are read: the transcript is the model's prose, not evidence.
//!
//! Where the issue and `claude_local` 2026.916.1 differ, this module follows
//! the documented intent of each family: 5xx and a connection lost mid-answer
//! are `transient_upstream` (claude_local matches only 503/529), and a 429 /
//! rate limit is `provider_quota` (claude_local calls it transient).

use std::sync::LazyLock;

use jiff::{Span, Timestamp, ToSpan, Zoned, civil, tz::TimeZone};
use regex::Regex;
use serde_json::{Map, Value};

use crate::transcript::Transcript;

/// The delay asked for when a transient failure gives no hint of its own: the
/// host's own bounded-retry step (2026.916.1), so it neither hurries nor
/// holds back a retry the host would schedule anyway.
pub const DEFAULT_TRANSIENT_DELAY_SECS: i64 = 30;

/// `AdapterExecutionErrorFamily` (the values this adapter produces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    TransientUpstream,
    ProviderQuota,
    ModelRefusal,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::TransientUpstream => "transient_upstream",
            Family::ProviderQuota => "provider_quota",
            Family::ModelRefusal => "model_refusal",
        }
    }
}

/// What a failure amounts to for the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// `claude_local`'s code: `claude_auth_required`, `provider_quota`,
    /// `claude_transient_upstream`, `claude_refusal`.
    pub error_code: &'static str,
    pub family: Option<Family>,
    pub retry_not_before: Option<Timestamp>,
    /// The transcript shows that the model produced nothing (every API call
    /// failed): the host may replay the run safely.
    pub provider_work_started: bool,
    /// A login URL quoted by the CLI (`errorMeta.loginUrl`).
    pub login_url: Option<String>,
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid built-in pattern")
}

/// claude_local 2026.916.1's login prompts.
static LOGIN_PROMPT: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)not\s+logged\s+in|please\s+log\s+in|please\s+run\s+(?:`?claude\s+login`?|/login)|login\s+required|requires\s+login|unauthorized|authentication\s+required|invalid\s+api\s+key[\s\S]{0,120}(?:/login|claude\s+login|log\s+in)")
});
/// claude_local 2026.916.1's token failures, plus the CLI 2.1's "Invalid API key".
static TOKEN_FAILURE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)authentication[_\s-](?:failed|error)|failed\s+to\s+authenticate|invalid\s+bearer\s+token|invalid\s+(?:x-)?api[\s-]key|(?:invalid|expired|revoked)[\s\S]{0,40}(?:bearer|oauth|access)\s+token|(?:bearer|oauth|access)\s+token[\s\S]{0,40}(?:is\s+)?(?:invalid|expired|revoked)")
});
/// Usage windows and quotas (claude_local's) and rate limits (its transient list).
static QUOTA: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)you(?:'|’)ve\s+hit\s+your\s+(?:\w+\s+)?limit|session\s+limit\s+(?:reached|exceeded)|out\s+of\s+extra\s+usage|extra\s+usage\b|usage\s+limit\s+reached|usage\s+cap\s+reached|5[-\s]?hour\s+limit\s+reached|weekly\s+limit\s+reached|servicequotaexceededexception|rate[-\s]?limit(?:ed)?|rate_limit_error|too\s+many\s+requests|\(429\)|\b429\b|throttl(?:ed|ing)|throttlingexception")
});
/// Overload, 5xx and a connection lost on the way.
static TRANSIENT: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)overloaded(?:_error)?|service\s+unavailable|\b529\b|\b503\b|api\s+error:?\s*\(?5\d\d\b|high\s+demand|temporarily\s+unavailable|try\s+again\s+later|econnreset|econnrefused|etimedout|epipe|socket\s+hang\s+up|connection\s+(?:to\s+the\s+api\s+)?(?:was\s+)?(?:lost|reset|refused|closed)|connection\s+error|network\s+error")
});
/// A reset clock after a quota phrase: "… resets at 4pm (America/Chicago)".
static RESET_CLOCK: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)(?:you(?:'|’)ve\s+hit\s+your\s+(?:\w+\s+)?limit|session\s+limit\s+(?:reached|exceeded)|out\s+of\s+extra\s+usage|extra\s+usage|usage\s+limit\s+reached|usage\s+cap\s+reached|5[-\s]?hour\s+limit\s+reached|weekly\s+limit\s+reached|rate\s+limit)[\s\S]{0,120}?\bresets?\s+(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*([ap])\.?\s*m\.?(?:\s*\(([^)]+)\))?")
});
/// The CLI's subscription format: "Claude AI usage limit reached|1745367600".
static RESET_EPOCH: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)limit\s+reached\|(\d{9,11})\b"));
/// "try again in 2 minutes".
static TRY_AGAIN_IN: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)(?:try\s+again|retry)\s+in\s+(\d{1,6})\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)\b"));
static URL: LazyLock<Regex> = LazyLock::new(|| re(r#"https?://[^\s'"`<>()\[\]{};,!?]+[^\s'"`<>()\[\]{};,!.?:]"#));

fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// The result's own words: `result`, `error`, and each of `errors[]`.
fn result_texts(r: &Map<String, Value>) -> String {
    let mut out: Vec<String> = [text(r.get("result")), text(r.get("error"))].into_iter().flatten().map(str::to_owned).collect();
    for e in r.get("errors").and_then(Value::as_array).into_iter().flatten() {
        match e {
            Value::String(s) if !s.trim().is_empty() => out.push(s.trim().to_owned()),
            Value::Object(o) => {
                match ["message", "error", "code"].iter().find_map(|k| text(o.get(*k))) {
                    Some(m) => out.push(m.to_owned()),
                    None => out.push(e.to_string()),
                }
                if let Some(t) = text(o.get("type")) {
                    out.push(t.to_owned());
                }
            }
            _ => {}
        }
    }
    out.join("\n")
}

fn lower_field(r: &Map<String, Value>, k: &str) -> String {
    r.get(k).and_then(Value::as_str).map(|s| s.trim().to_lowercase()).unwrap_or_default()
}

/// `isClaudeRefusalResult`: a policy refusal, from the structured fields only.
pub fn is_refusal(r: &Map<String, Value>) -> bool {
    matches!(lower_field(r, "subtype").as_str(), "refusal" | "model_refusal")
        || ["stop_reason", "stopReason", "error_code", "errorCode"].iter().any(|k| lower_field(r, k) == "refusal")
}

/// The API status the CLI reports for its last failed call.
fn api_status(r: &Map<String, Value>, t: &Transcript) -> Option<u16> {
    ["api_error_status", "error_status"]
        .iter()
        .find_map(|k| r.get(*k).and_then(Value::as_u64))
        .and_then(|s| u16::try_from(s).ok())
        .or_else(|| t.last_api_retry.as_ref().and_then(|a| a.error_status))
}

/// Classifies the `result` of a run. `failed`: the pod exited non-zero or the
/// result says `is_error`. A refusal counts even when the CLI exited 0.
pub fn classify(r: &Map<String, Value>, failed: bool, t: &Transcript, now: Timestamp) -> Option<Classified> {
    // Deterministic failures have their own handling (contract §1.6).
    if crate::failure::is_max_turns_result(r) || crate::failure::is_unknown_session_error(r) {
        return None;
    }
    let words = result_texts(r);
    let status = api_status(r, t);
    let classified = |error_code, family, retry_not_before| Classified {
        error_code,
        family,
        retry_not_before,
        provider_work_started: t.model_output_seen,
        login_url: None,
    };
    if failed {
        let auth_status = matches!(r.get("api_error_status").and_then(Value::as_u64), Some(401 | 403));
        if auth_status || LOGIN_PROMPT.is_match(&words) || TOKEN_FAILURE.is_match(&words) {
            let login_url = URL.find_iter(&words).map(|m| m.as_str()).find(|u| ["claude", "anthropic", "auth"].iter().any(|k| u.contains(k)));
            return Some(Classified { login_url: login_url.map(str::to_owned), ..classified("claude_auth_required", None, None) });
        }
        let cli_delay = t.last_api_retry.as_ref().and_then(|a| a.retry_delay_ms).map(|ms| (ms as i64).milliseconds());
        if status == Some(429) || QUOTA.is_match(&words) {
            let at = reset_time(&words, now).or_else(|| cli_delay.and_then(|d| now.checked_add(d).ok()));
            return Some(classified("provider_quota", Some(Family::ProviderQuota), at));
        }
        let connection_lost = status.is_none() && lower_field(r, "terminal_reason") == "api_error" && TRANSIENT.is_match(&words);
        if status.is_some_and(|s| (500..600).contains(&s)) || connection_lost || TRANSIENT.is_match(&words) {
            let delay = try_again_in(&words).or(cli_delay).unwrap_or_else(|| DEFAULT_TRANSIENT_DELAY_SECS.seconds());
            return Some(classified("claude_transient_upstream", Some(Family::TransientUpstream), now.checked_add(delay).ok()));
        }
    }
    is_refusal(r).then(|| classified("claude_refusal", Some(Family::ModelRefusal), None))
}

/// An empty answer from the API (`llm_api_error`): an upstream fault, retried
/// after the default delay.
pub fn empty_response(t: &Transcript, now: Timestamp) -> Classified {
    let delay = t.last_api_retry.as_ref().and_then(|a| a.retry_delay_ms).map(|ms| (ms as i64).milliseconds());
    Classified {
        error_code: "llm_api_error",
        family: Some(Family::TransientUpstream),
        retry_not_before: now.checked_add(delay.unwrap_or_else(|| DEFAULT_TRANSIENT_DELAY_SECS.seconds())).ok(),
        provider_work_started: t.model_output_seen,
        login_url: None,
    }
}

fn try_again_in(words: &str) -> Option<Span> {
    let c = TRY_AGAIN_IN.captures(words)?;
    let n: i64 = c[1].parse().ok()?;
    let unit = c[2].to_lowercase();
    let secs = match unit.chars().next()? {
        's' => n,
        'm' => n * 60,
        'h' => n * 3600,
        _ => n * 86_400,
    };
    Some(secs.seconds())
}

/// When a usage window resets, as the CLI says it: an epoch after `|`, or a
/// wall clock ("resets 4pm (America/Chicago)") — the next such time after
/// `now`, in the zone named (UTC when none is named or the zone is unknown:
/// the host's own local zone means nothing to a pod's limits).
pub fn reset_time(words: &str, now: Timestamp) -> Option<Timestamp> {
    if let Some(c) = RESET_EPOCH.captures(words) {
        let at = Timestamp::from_second(c[1].parse().ok()?).ok()?;
        return (at > now).then_some(at);
    }
    if let Some(c) = RESET_CLOCK.captures(words) {
        let hour12: i8 = c[1].parse().ok()?;
        let minute: i8 = c.get(2).map_or(Some(0), |m| m.as_str().parse().ok())?;
        if !(1..=12).contains(&hour12) || !(0..=59).contains(&minute) {
            return None;
        }
        let hour = hour12 % 12 + if c[3].eq_ignore_ascii_case("p") { 12 } else { 0 };
        let zone = c.get(4).map(|m| m.as_str().trim()).and_then(zone_named).unwrap_or(TimeZone::UTC);
        return next_wall_clock(now, hour, minute, zone);
    }
    try_again_in(words).and_then(|d| now.checked_add(d).ok())
}

fn zone_named(name: &str) -> Option<TimeZone> {
    if name.eq_ignore_ascii_case("utc") || name.eq_ignore_ascii_case("gmt") {
        return Some(TimeZone::UTC);
    }
    TimeZone::get(name).ok()
}

/// The first `hour:minute` in `zone` strictly after `now`.
fn next_wall_clock(now: Timestamp, hour: i8, minute: i8, zone: TimeZone) -> Option<Timestamp> {
    let here: Zoned = now.to_zoned(zone.clone());
    let time = civil::Time::new(hour, minute, 0, 0).ok()?;
    for day in 0..2 {
        let date = here.date().checked_add(day.days()).ok()?;
        let at = date.to_datetime(time).to_zoned(zone.clone()).ok()?.timestamp();
        if at > now {
            return Some(at);
        }
    }
    None
}

/// `retryNotBefore`'s format: `Date#toISOString` (UTC, milliseconds, `Z`).
pub fn iso(t: Timestamp) -> String {
    format!("{:.3}", t)
}

#[cfg(test)]
mod tests;
