use super::*;
use crate::transcript::parse_all;

const INIT: &str = r#"{"type":"system","subtype":"init","model":"claude-sonnet-4-6","session_id":"sess_test123"}"#;
const RESULT: &str = r#"{"type":"result","subtype":"success","result":"Done.","session_id":"sess_test123","usage":{"input_tokens":100,"output_tokens":50,"cache_read_input_tokens":10},"total_cost_usd":0.001}"#;

fn facts() -> RunFacts {
    RunFacts { job: "ac-a-r-123456".into(), namespace: "ns".into(), configured_model: "claude-sonnet-4-6".into(), ..Default::default() }
}

fn exit(c: i32) -> PodTermination {
    PodTermination { exit_code: Some(c), ..Default::default() }
}

fn t(lines: &[&str]) -> Transcript {
    parse_all(lines.join("\n").as_bytes(), "claude-sonnet-4-6")
}

#[test]
fn success_fields() {
    let mut f = facts();
    f.workspace = WorkspaceParams { cwd: Some("/w".into()), workspace_id: Some("ws1".into()), ..Default::default() };
    let r = map_outcome(&f, &t(&[INIT, RESULT]), Some(&exit(0)));
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["exitCode"], 0);
    assert_eq!(v["signal"], Value::Null);
    assert_eq!(v["timedOut"], false);
    assert!(v.get("errorMessage").is_none() && v.get("errorCode").is_none());
    assert_eq!(v["usage"], json!({"inputTokens": 100, "cachedInputTokens": 10, "outputTokens": 50}));
    assert_eq!(v["sessionId"], "sess_test123");
    assert_eq!(v["sessionDisplayId"], "sess_test123");
    assert_eq!(v["sessionParams"], json!({"sessionId": "sess_test123", "cwd": "/w", "workspaceId": "ws1"}));
    assert_eq!(v["provider"], "anthropic");
    assert_eq!(v["billingType"], "api");
    assert_eq!(v["model"], "claude-sonnet-4-6");
    assert_eq!(v["costUsd"], 0.001);
    assert_eq!(v["summary"], "Done.");
    assert_eq!(v["clearSession"], false);
    assert_eq!(v["resultJson"]["result"], "Done.");
}

#[test]
fn error_results_have_null_exit_and_signal() {
    let v = serde_json::to_value(RunResult::error("k8s_job_create_failed", "x")).unwrap();
    assert_eq!(v, json!({"exitCode": null, "signal": null, "timedOut": false, "errorMessage": "x", "errorCode": "k8s_job_create_failed"}));
    assert_eq!(serde_json::to_value(RunResult::cancelled()).unwrap()["errorMessage"], "Run cancelled");
}

#[test]
fn nonzero_exit_with_result() {
    let res = r#"{"type":"result","subtype":"error_during_execution","is_error":true,"errors":["boom"],"session_id":"s"}"#;
    let r = map_outcome(&facts(), &t(&[INIT, res]), Some(&exit(1)));
    assert_eq!(r.error_message.as_deref(), Some("Claude run failed: subtype=error_during_execution: boom"));
    assert_eq!(r.exit_code, Some(1));
    assert_eq!(r.error_code, None);
}

#[test]
fn killed_after_a_successful_result_names_the_kill() {
    // Seen on the real node: claude OOM-killed while flushing its session, after its result line.
    let oom = PodTermination { exit_code: Some(137), reason: Some("OOMKilled".into()), ..Default::default() };
    let r = map_outcome(&facts(), &t(&[INIT, RESULT]), Some(&oom));
    assert_eq!(r.exit_code, Some(137));
    assert_eq!(
        r.error_message.as_deref(),
        Some("Claude exited with code 137 after reporting success [pod: reason=OOMKilled, SIGKILL (commonly OOMKilled)]")
    );
    assert_eq!(r.summary.as_deref(), Some("Done."));
    // A plain non-zero exit after success has no pod state to add.
    let r = map_outcome(&facts(), &t(&[INIT, RESULT]), Some(&exit(2)));
    assert_eq!(r.error_message.as_deref(), Some("Claude exited with code 2 after reporting success"));
    // An error result keeps 0.1.54's wording, plus the kill when there was one.
    let res = r#"{"type":"result","subtype":"error_during_execution","is_error":true,"errors":["boom"],"session_id":"s"}"#;
    let r = map_outcome(&facts(), &t(&[INIT, res]), Some(&oom));
    assert_eq!(
        r.error_message.as_deref(),
        Some("Claude run failed: subtype=error_during_execution: boom [pod: reason=OOMKilled, SIGKILL (commonly OOMKilled)]")
    );
}

#[test]
fn max_turns_clears_the_session() {
    let res = r#"{"type":"result","subtype":"error_max_turns","session_id":"s"}"#;
    assert_eq!(map_outcome(&facts(), &t(&[INIT, res]), Some(&exit(0))).clear_session, Some(true));
}

#[test]
fn timeout_comes_first() {
    let mut f = facts();
    f.timed_out = true;
    f.timeout_sec = 30;
    let r = map_outcome(&f, &t(&[INIT, RESULT]), Some(&exit(137)));
    assert_eq!((r.error_code.as_deref(), r.error_message.as_deref(), r.timed_out, r.exit_code), (Some("timeout"), Some("Timed out after 30s"), true, Some(137)));
}

#[test]
fn unknown_session() {
    let res = r#"{"type":"result","subtype":"error_during_execution","is_error":true,"errors":["No conversation found with session ID: abc"]}"#;
    let r = map_outcome(&facts(), &t(&[res]), Some(&exit(1)));
    assert_eq!(r.error_code.as_deref(), Some("session_unavailable"));
    assert_eq!(r.clear_session, Some(true));
    assert_eq!(r.error_message.as_deref(), Some("Claude run failed: subtype=error_during_execution: No conversation found with session ID: abc"));
    // Exit 0: not an error.
    assert_eq!(map_outcome(&facts(), &t(&[res]), Some(&exit(0))).error_code, None);
}

#[test]
fn deleted_externally_forensics() {
    let mut f = facts();
    f.job_deleted_externally = true;
    f.detected_via = Some("job-watch-delete".into());
    f.elapsed_since_pod_running = Some(12);
    f.completion_polls = 3;
    f.last_job_conditions = vec!["Failed=True(DeadlineExceeded)".into()];
    let r = map_outcome(&f, &t(&[INIT]), None);
    assert_eq!(r.error_code.as_deref(), Some("k8s_job_deleted_externally"));
    let bytes = INIT.len() + 1;
    assert_eq!(
        r.error_message.unwrap(),
        format!("K8s Job was deleted externally before Claude could complete [detected_via=job-watch-delete, job=ac-a-r-123456, ns=ns, elapsed_since_pod_running=12s, completion_polls=3, last_job_conditions=[Failed=True(DeadlineExceeded)], stdout_bytes={bytes}, stdout_nonempty_lines=1]")
    );
    let mut f = facts();
    f.job_deleted_externally = true;
    let r = map_outcome(&f, &t(&[]), None);
    assert!(r.error_message.unwrap().contains("[job=ac-a-r-123456, ns=ns, completion_polls=0, last_job_conditions=none_observed, stdout_bytes=0"));
    // A container that exited on its own was not stopped by the deletion…
    assert_ne!(map_outcome(&f, &t(&[INIT]), Some(&exit(1))).error_code.as_deref(), Some("k8s_job_deleted_externally"));
    // …one killed by it (SIGTERM on pod deletion) was.
    assert_eq!(map_outcome(&f, &t(&[INIT]), Some(&exit(143))).error_code.as_deref(), Some("k8s_job_deleted_externally"));
}

#[test]
fn llm_api_error() {
    let empty = r#"{"type":"assistant","message":{"id":"m","content":[],"stop_reason":null,"usage":{"output_tokens":0}}}"#;
    let r = map_outcome(&facts(), &t(&[INIT, empty]), Some(&exit(1)));
    assert_eq!(r.error_code.as_deref(), Some("llm_api_error"));
    assert_eq!(r.exit_code, Some(1));
    assert!(r.error_message.unwrap().starts_with("LLM API returned an empty response (stop_reason: null, output_tokens: 0)"));
}

#[test]
fn truncation_causes() {
    let said = r#"{"type":"assistant","message":{"id":"m","content":[{"type":"text","text":"partial"}],"stop_reason":null,"usage":{"output_tokens":7}}}"#;
    let tr = t(&[INIT, said]);
    let oom = PodTermination { exit_code: Some(137), reason: Some("OOMKilled".into()), ..Default::default() };
    let r = map_outcome(&facts(), &tr, Some(&oom));
    assert_eq!(r.error_code.as_deref(), Some("claude_truncated"));
    assert_eq!(
        r.error_message.unwrap(),
        "Claude run was truncated mid-stream (model: claude-sonnet-4-6) — assistant produced content but no result event arrived; exit code 137, SIGKILL (commonly OOMKilled), reason=OOMKilled"
    );
    let f = facts();
    assert_eq!(describe_truncation_cause(Some(&exit(143)), &f), "exit code 143, SIGTERM");
    let odd = PodTermination { exit_code: None, signal: Some(9), message: Some("bye".into()), ..Default::default() };
    assert_eq!(describe_truncation_cause(Some(&odd), &f), "no exit code, signal 9, message=bye");
    let gone = RunFacts { pod_gone: true, ..facts() };
    assert!(describe_truncation_cause(None, &gone).starts_with("pod is gone"));
    let phase = RunFacts { pod_phase: Some("Running".into()), ..facts() };
    assert!(describe_truncation_cause(None, &phase).starts_with("container terminated state not yet observable (pod phase=Running)"));
    assert_eq!(describe_truncation_cause(None, &facts()), "pod state unavailable — exit cause unknown");
    let evicted = RunFacts { pod_disruption: Some("TerminationByKubelet: The node was low on resource: memory.".into()), ..facts() };
    assert_eq!(
        describe_truncation_cause(Some(&exit(137)), &evicted),
        "exit code 137, SIGKILL (commonly OOMKilled); the pod was disrupted: TerminationByKubelet: The node was low on resource: memory."
    );
}

#[test]
fn partial_run_messages() {
    let m = "claude-sonnet-4-6";
    let e = |lines: &[&str], code: Option<i32>, pod: Option<&PodTermination>| build_partial_run_error(code, m, &t(lines), pod);
    assert_eq!(e(&[INIT], Some(0), None), "Failed to parse Claude JSON output");
    assert_eq!(e(&["Error: bad flag", INIT], Some(2), None), "Claude exited with code 2: Error: bad flag");
    assert_eq!(e(&["{\"no\":\"type\"}"], None, None), "Claude exited with code -1: {\"no\":\"type\"}");
    assert_eq!(
        e(&[INIT], Some(1), None),
        "Claude exited immediately after init (model: claude-sonnet-4-6) (exit code 1) — the model may be unsupported or the session may have been rejected before producing output"
    );
    let user = r#"{"type":"user","message":{"content":[]}}"#;
    assert_eq!(
        e(&[INIT, user], Some(1), None),
        "Claude started but did not produce a result (model: claude-sonnet-4-6) — check API credentials, model support, and adapter config"
    );
    assert_eq!(e(&[], Some(3), None), "Claude exited with code 3");
    let oom = PodTermination { exit_code: Some(137), reason: Some("OOMKilled".into()), message: Some("m".into()), signal: None, memory_limit: None };
    assert_eq!(e(&[], Some(137), Some(&oom)), "Claude exited with code 137 [pod: reason=OOMKilled, message=m, SIGKILL (commonly OOMKilled)]");
    let r = map_outcome(&facts(), &t(&[]), Some(&exit(3)));
    assert_eq!((r.error_code, r.exit_code), (None, Some(3)));
    assert_eq!(r.error_message.as_deref(), Some("Claude exited with code 3"));
}

#[test]
fn transient_failures_carry_family_retry_time_and_recovery_evidence() {
    let retry = r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":1,"retry_delay_ms":1155,"error_status":529,"error":"overloaded"}"#;
    let synthetic = r#"{"type":"assistant","message":{"id":"x","model":"<synthetic>","content":[{"type":"text","text":"API Error: 529 Overloaded."}],"stop_reason":"stop_sequence","usage":{"output_tokens":0}},"error":"server_error"}"#;
    let res = r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 529 Overloaded.","api_error_status":529,"terminal_reason":"api_error","session_id":"s"}"#;
    let mut f = facts();
    f.now = Some("2026-04-22T15:15:00Z".parse().unwrap());
    let r = map_outcome(&f, &t(&[INIT, retry, synthetic, res]), Some(&exit(1)));
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["errorCode"], "claude_transient_upstream");
    assert_eq!(v["errorFamily"], "transient_upstream");
    assert_eq!(v["retryNotBefore"], "2026-04-22T15:15:01.155Z");
    assert_eq!(v["executionRecovery"], json!({"kind": "bootstrap", "providerWorkStarted": false}));
    assert_eq!(v["errorMessage"], "Claude run failed: subtype=success: API Error: 529 Overloaded.");
    assert_eq!(v["resultJson"]["errorFamily"], "transient_upstream");
    assert_eq!(v["resultJson"]["transientRetryNotBefore"], "2026-04-22T15:15:01.155Z");
    assert_eq!(v["resultJson"]["api_error_status"], 529, "the CLI's result is kept");
    // The key order of the CLI's result stays, the additions come last.
    let keys: Vec<_> = v["resultJson"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys.first().map(String::as_str), Some("type"));
    assert_eq!(keys.last().map(String::as_str), Some("transientRetryNotBefore"));
}

#[test]
fn an_empty_answer_is_transient_too() {
    let empty = r#"{"type":"assistant","message":{"id":"m","content":[],"stop_reason":null,"usage":{"output_tokens":0}}}"#;
    let mut f = facts();
    f.now = Some("2026-04-22T15:15:00Z".parse().unwrap());
    let r = map_outcome(&f, &t(&[INIT, empty]), Some(&exit(1)));
    assert_eq!(r.error_code.as_deref(), Some("llm_api_error"), "the original's code stays");
    assert_eq!(r.error_family.as_deref(), Some("transient_upstream"));
    assert_eq!(r.retry_not_before.as_deref(), Some("2026-04-22T15:15:30.000Z"));
    assert!(r.execution_recovery.is_some());
}

#[test]
fn work_done_before_a_transient_failure_withholds_the_recovery_evidence() {
    let said = r#"{"type":"assistant","message":{"id":"m","content":[{"type":"text","text":"step 1 done"}],"stop_reason":"tool_use","usage":{"output_tokens":30}}}"#;
    let res = r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 500 Internal server error.","api_error_status":500,"session_id":"s"}"#;
    let r = map_outcome(&facts(), &t(&[INIT, said, res]), Some(&exit(1)));
    assert_eq!(r.error_family.as_deref(), Some("transient_upstream"));
    assert_eq!(r.execution_recovery, None);
}

/// A process beside claude OOM-killed (cgroup v1 reports the container as
/// OOMKilled with claude's own exit code): the turn's result stands, with a
/// warning naming the memory limit; claude itself killed (137) stays a failure.
#[test]
fn oom_killed_child_keeps_the_result_with_a_warning() {
    let child = |code| PodTermination { exit_code: Some(code), reason: Some("OOMKilled".into()), memory_limit: Some("8Gi".into()), ..Default::default() };
    let mut r = map_outcome(&facts(), &t(&[INIT, RESULT]), Some(&child(0)));
    annotate(&mut r, &[], Some(&child(0)));
    assert_eq!((r.exit_code, r.error_code.as_deref(), r.error_message.as_deref()), (Some(0), None, None));
    assert_eq!(r.summary.as_deref(), Some("Done."));
    let rj = r.result_json.unwrap();
    assert_eq!(rj["result"], "Done.");
    assert_eq!(rj["podOomKilled"]["memoryLimit"], "8Gi");
    assert_eq!(rj["podOomKilled"]["claudeExitCode"], 0);
    let warning = child(0).oom_warning().unwrap();
    assert!(warning.contains("OOM-killed (memory limit 8Gi)") && warning.contains("its result stands"), "{warning}");

    // Exit 1: claude's own failure, mapped as without the OOM kill, plus the warning.
    let failed = r#"{"type":"result","subtype":"error_during_execution","is_error":true,"result":"boom","session_id":"s"}"#;
    let mut r = map_outcome(&facts(), &t(&[INIT, failed]), Some(&child(1)));
    let plain = map_outcome(&facts(), &t(&[INIT, failed]), Some(&exit(1)));
    annotate(&mut r, &[], Some(&child(1)));
    assert_eq!((r.error_message.clone(), r.exit_code), (plain.error_message, Some(1)));
    assert_eq!(r.result_json.unwrap()["podOomKilled"]["claudeExitCode"], 1);

    // claude itself killed: no warning, today's failure.
    let killed = PodTermination { exit_code: Some(137), reason: Some("OOMKilled".into()), ..Default::default() };
    assert!(killed.oom_warning().is_none());
    let mut r = map_outcome(&facts(), &t(&[INIT]), Some(&killed));
    annotate(&mut r, &[], Some(&killed));
    assert!(r.result_json.as_ref().is_none_or(|rj| rj.get("podOomKilled").is_none()));
    // Without a limit in the spec the warning says so.
    let mut no_limit = child(0);
    no_limit.memory_limit = None;
    assert!(no_limit.oom_warning().unwrap().contains("no memory limit set"));
}

/// Lines lost to rotation are named in resultJson, the result kept.
#[test]
fn lost_log_windows_are_in_the_result() {
    let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
    let gaps = [
        crate::lines::LogGap { after: at("2026-12-05T10:00:01.5Z"), before: Some(at("2026-12-05T10:00:09Z")) },
        crate::lines::LogGap { after: at("2026-12-05T10:01:00Z"), before: None },
    ];
    let mut r = map_outcome(&facts(), &t(&[INIT, RESULT]), Some(&exit(0)));
    annotate(&mut r, &gaps, Some(&exit(0)));
    let rj = r.result_json.unwrap();
    assert_eq!(rj["result"], "Done.");
    assert_eq!(
        rj["logLinesLost"],
        json!([
            {"after": "2026-12-05T10:00:01.5Z", "before": "2026-12-05T10:00:09Z", "cause": "log_rotation"},
            {"after": "2026-12-05T10:01:00Z", "before": null, "cause": "log_rotation"},
        ])
    );
    // A result without resultJson gets one.
    let mut r = RunResult::error("timeout", "Timed out after 5s");
    annotate(&mut r, &gaps[..1], None);
    assert_eq!(r.result_json.unwrap()["logLinesLost"][0]["cause"], "log_rotation");
}
