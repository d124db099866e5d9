use super::*;
use crate::transcript::{ApiRetry, parse_all};
use serde_json::json;

fn now() -> Timestamp {
    "2026-04-22T15:15:00Z".parse().unwrap()
}

fn m(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// The CLI 2.1's failed `result` line for an API error (as it printed it against the mock API).
fn api_error(result: &str, status: Option<u16>) -> Map<String, Value> {
    m(json!({"type": "result", "subtype": "success", "is_error": true, "result": result,
             "api_error_status": status, "terminal_reason": "api_error", "stop_reason": "stop_sequence"}))
}

fn retried(delay_ms: u64, status: Option<u16>) -> Transcript {
    Transcript { last_api_retry: Some(ApiRetry { retry_delay_ms: Some(delay_ms), error_status: status, error: None }), ..Default::default() }
}

fn at(s: &str) -> Option<Timestamp> {
    Some(s.parse().unwrap())
}

#[test]
fn overloaded_and_5xx_are_transient_with_the_clis_backoff() {
    let r = api_error("API Error: 529 Overloaded. This is a server-side issue, usually temporary — try again in a moment.", Some(529));
    let c = classify(&r, true, &retried(1155, Some(529)), now()).unwrap();
    assert_eq!((c.error_code, c.family), ("claude_transient_upstream", Some(Family::TransientUpstream)));
    assert_eq!(c.retry_not_before, at("2026-04-22T15:15:01.155Z"));
    assert!(!c.provider_work_started);
    let r = api_error("API Error: 500 Internal server error.", Some(500));
    let c = classify(&r, true, &Transcript::default(), now()).unwrap();
    assert_eq!(c.family, Some(Family::TransientUpstream));
    assert_eq!(c.retry_not_before, at("2026-04-22T15:15:30Z"), "no hint: the default delay");
    // From the text alone (older CLIs print no status).
    let r = m(json!({"is_error": true, "errors": [{"type": "overloaded_error", "message": "Overloaded"}]}));
    assert_eq!(classify(&r, true, &Transcript::default(), now()).unwrap().family, Some(Family::TransientUpstream));
}

#[test]
fn a_connection_lost_mid_answer_is_transient() {
    let r = api_error("API Error: Connection to the API was lost (ECONNRESET). This is usually temporary — try again.", None);
    let c = classify(&r, true, &retried(520, None), now()).unwrap();
    assert_eq!(c.error_code, "claude_transient_upstream");
    assert_eq!(c.retry_not_before, at("2026-04-22T15:15:00.52Z"));
}

#[test]
fn rate_limits_and_usage_limits_are_provider_quota() {
    let r = api_error("API Error: Request rejected (429) · Number of requests has exceeded your rate limit", Some(429));
    let c = classify(&r, true, &retried(7999, Some(429)), now()).unwrap();
    assert_eq!((c.error_code, c.family), ("provider_quota", Some(Family::ProviderQuota)));
    assert_eq!(c.retry_not_before, at("2026-04-22T15:15:07.999Z"), "the CLI's back-off honours retry-after");
    // No hint at all: no retryNotBefore (the host picks its own).
    let r = m(json!({"is_error": true, "result": "5-hour limit reached."}));
    let c = classify(&r, true, &Transcript::default(), now()).unwrap();
    assert_eq!((c.family, c.retry_not_before), (Some(Family::ProviderQuota), None));
}

#[test]
fn usage_window_reset_times() {
    for (text, want) in [
        ("Claude usage limit reached. Your limit will reset at 3pm (America/New_York).", "2026-04-22T19:00:00Z"),
        ("You've hit your limit · resets 3pm (Europe/Berlin)", "2026-04-23T13:00:00Z"),
        ("You’ve hit your session limit - resets at 4pm (America/Chicago).", "2026-04-22T21:00:00Z"),
        ("Usage limit reached. Resets at 3:15 AM (UTC).", "2026-04-23T03:15:00Z"),
        ("5-hour limit reached ∙ resets 3pm", "2026-04-23T15:00:00Z"),
        ("5-hour limit reached ∙ resets 11pm (Not/AZone)", "2026-04-22T23:00:00Z"),
        ("Claude AI usage limit reached|1776873600", "2026-04-22T16:00:00Z"),
        ("Rate limit exceeded, try again in 2 minutes", "2026-04-22T15:17:00Z"),
    ] {
        assert_eq!(reset_time(text, now()), at(want), "{text}");
        let c = classify(&m(json!({"is_error": true, "result": text})), true, &retried(500, Some(429)), now()).unwrap();
        assert_eq!((c.family, c.retry_not_before), (Some(Family::ProviderQuota), at(want)), "{text}");
    }
    assert_eq!(reset_time("usage limit reached. resets 13pm", now()), None);
    assert_eq!(reset_time("Claude AI usage limit reached|1745367600", now()), None, "a reset in the past");
}

#[test]
fn auth_failures_need_a_login_not_a_retry() {
    let r = api_error("Invalid API key · Fix external API key", Some(401));
    let c = classify(&r, true, &retried(582, Some(401)), now()).unwrap();
    assert_eq!((c.error_code, c.family, c.retry_not_before), ("claude_auth_required", None, None));
    let r = m(json!({"is_error": true, "result": "Not logged in · Please run /login at https://claude.ai/login."}));
    let c = classify(&r, true, &Transcript::default(), now()).unwrap();
    assert_eq!(c.error_code, "claude_auth_required");
    assert_eq!(c.login_url.as_deref(), Some("https://claude.ai/login"));
    let r = m(json!({"is_error": true, "subtype": "success", "api_error_status": 401, "error": "authentication_failed",
                     "result": "Failed to authenticate. API Error: 401 Invalid bearer token"}));
    assert_eq!(classify(&r, true, &Transcript::default(), now()).unwrap().error_code, "claude_auth_required");
}

#[test]
fn refusals_even_on_a_clean_exit() {
    let r = m(json!({"type": "result", "subtype": "success", "is_error": true, "stop_reason": "refusal",
                     "result": "API Error: Sonnet 4.6 can't help with this. Start a new session to continue."}));
    let c = classify(&r, true, &Transcript::default(), now()).unwrap();
    assert_eq!((c.error_code, c.family, c.retry_not_before), ("claude_refusal", Some(Family::ModelRefusal), None));
    for r in [json!({"stopReason": "refusal"}), json!({"subtype": "model_refusal", "is_error": false}), json!({"stop_reason": "  Refusal "})] {
        assert_eq!(classify(&m(r), false, &Transcript::default(), now()).unwrap().family, Some(Family::ModelRefusal));
    }
}

#[test]
fn successes_and_deterministic_failures_are_left_alone() {
    // A successful run that talks about 401s and rate limits is a success (claude_local would say "log in").
    let ok = m(json!({"subtype": "success", "is_error": false, "result": "The server said 401 Unauthorized; rate limit 429 handled."}));
    assert_eq!(classify(&ok, false, &Transcript::default(), now()), None);
    for r in [
        json!({"is_error": true, "subtype": "error_max_turns", "result": "overloaded"}),
        json!({"is_error": true, "result": "No conversation found with session ID: abc"}),
        json!({"is_error": true, "result": "Invalid request_error: Unknown parameter 'foo'."}),
        json!({"is_error": true, "subtype": "error_during_execution", "errors": ["boom"]}),
    ] {
        assert_eq!(classify(&m(r.clone()), true, &Transcript::default(), now()), None, "{r}");
    }
}

#[test]
fn model_output_means_provider_work_started() {
    let tr = parse_all(
        concat!(
            r#"{"type":"assistant","message":{"id":"m1","model":"claude-sonnet-4-6","content":[{"type":"text","text":"Working"}],"stop_reason":"tool_use","usage":{"output_tokens":12}}}"#,
            "\n",
            r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":1,"retry_delay_ms":600,"error_status":529,"error":"overloaded"}"#,
        )
        .as_bytes(),
        "claude-sonnet-4-6",
    );
    assert_eq!(tr.last_api_retry, Some(ApiRetry { retry_delay_ms: Some(600), error_status: Some(529), error: Some("overloaded".into()) }));
    let c = classify(&api_error("API Error: 529 Overloaded.", None), true, &tr, now()).unwrap();
    assert!(c.provider_work_started);
    assert_eq!(c.retry_not_before, at("2026-04-22T15:15:00.6Z"));
}

#[test]
fn iso_is_date_to_iso_string() {
    assert_eq!(iso("2026-04-22T19:00:00Z".parse().unwrap()), "2026-04-22T19:00:00.000Z");
    assert_eq!(iso("2026-04-22T15:15:01.155Z".parse().unwrap()), "2026-04-22T15:15:01.155Z");
}
