//! Paperclip's result, mapped from what the run observed (contract §1.5
//! step 17, §1.6), in the original's order: timeout, unknown session, Job
//! deleted externally, empty LLM response, truncation, partial run, success.
//!
//! Pure: [`map_outcome`] takes facts and returns data. Agent failures are
//! results, not errors.

use k8s_openapi::api::core::v1::ContainerStateTerminated;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::failure::{describe_claude_failure, is_max_turns_result, is_unknown_session_error};
use crate::retry::{Classified, Family};
use crate::transcript::{Transcript, Usage};

/// `AdapterExecutionResult`. `exitCode` and `signal` are always present (null
/// allowed), as the host's type requires; other absent fields are omitted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    pub timed_out: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// `transient_upstream`, `provider_quota`, `model_refusal` (see [`crate::retry`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_family: Option<String>,
    /// ISO-8601, as `Date#toISOString` writes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_not_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_meta: Option<Value>,
    /// `{kind: "bootstrap", providerWorkStarted: false}`: positive evidence
    /// that the model did nothing, so the host may replay the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_recovery: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_params: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_display_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub billing_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_json: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clear_session: Option<bool>,
}

impl RunResult {
    /// An adapter error before anything ran: no exit code, no signal.
    pub fn error(code: &str, message: &str) -> Self {
        Self::error_with_exit(code, message, None)
    }

    pub fn error_with_exit(code: &str, message: &str, exit_code: Option<i32>) -> Self {
        RunResult {
            exit_code,
            error_code: Some(code.to_owned()),
            error_message: Some(message.to_owned()),
            ..Default::default()
        }
    }

    pub fn cancelled() -> Self {
        Self::error("cancelled", "Run cancelled")
    }

    /// `cancelled`, telling the host that the work really stopped: newer
    /// hosts refuse to close a cancelled run until its adapter acknowledges
    /// (`resultJson.executionCancellation.state = "acknowledged"`). `proof`
    /// says how we know (the Job deleted, or nothing was started).
    pub fn cancelled_acknowledged(proof: &str) -> Self {
        let at = k8s_openapi::jiff::Timestamp::now().to_string();
        RunResult {
            result_json: Some(serde_json::json!({
                "executionCancellation": {"state": "acknowledged", "acknowledgedAt": at, "proof": proof}
            })),
            ..Self::cancelled()
        }
    }
}

/// The `claude` container's terminated state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodTermination {
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub signal: Option<i32>,
    /// The container's memory limit (from the pod spec), for the OOM warning.
    pub memory_limit: Option<String>,
}

impl PodTermination {
    /// The kernel's OOM killer killed a process in the container, but not
    /// `claude` itself: the container exited on its own (0, or 1 from
    /// claude's own failure) with the runtime's `OOMKilled` reason (cgroup
    /// v1 reports any OOM kill in the cgroup that way; a build or test
    /// runner the agent started, say). The turn's result stands; the run
    /// carries a warning. `claude` killed shows as 137 (SIGKILL).
    pub fn oom_killed_a_child(&self) -> bool {
        self.reason.as_deref() == Some("OOMKilled") && self.exit_code.is_some_and(|c| c != 137) && self.signal.is_none()
    }

    /// The warning of [`Self::oom_killed_a_child`].
    pub fn oom_warning(&self) -> Option<String> {
        self.oom_killed_a_child().then(|| {
            let limit = self.memory_limit.as_deref().map(|l| format!("memory limit {l}")).unwrap_or_else(|| "no memory limit set on the container".into());
            format!(
                "Warning: a process in the pod was OOM-killed ({limit}); claude itself exited with code {} — its result stands, but work it started may be incomplete",
                self.exit_code.unwrap_or(-1)
            )
        })
    }
}

/// Adds what the run must not pass over silently to `resultJson`: lines
/// lost to log rotation (`logLinesLost`) and a process OOM-killed beside
/// claude (`podOomKilled`).
pub fn annotate(result: &mut RunResult, lost: &[crate::lines::LogGap], pod: Option<&PodTermination>) {
    let oom = pod.filter(|p| p.oom_killed_a_child());
    if lost.is_empty() && oom.is_none() {
        return;
    }
    let rj = result.result_json.get_or_insert_with(|| json!({}));
    let Some(obj) = rj.as_object_mut() else { return };
    if !lost.is_empty() {
        let windows: Vec<Value> = lost
            .iter()
            .map(|g| json!({"after": g.after.to_string(), "before": g.before.map(|b| b.to_string()), "cause": "log_rotation"}))
            .collect();
        obj.insert("logLinesLost".into(), Value::Array(windows));
    }
    if let Some(p) = oom {
        obj.insert(
            "podOomKilled".into(),
            json!({"reason": "OOMKilled", "claudeExitCode": p.exit_code, "memoryLimit": p.memory_limit, "message": p.oom_warning()}),
        );
    }
}

impl PodTermination {
    pub fn from_terminated(t: &ContainerStateTerminated) -> Self {
        PodTermination {
            exit_code: Some(t.exit_code),
            reason: t.reason.clone().filter(|r| !r.is_empty()),
            message: t.message.as_deref().map(str::trim).filter(|m| !m.is_empty()).map(str::to_owned),
            signal: t.signal.filter(|s| *s != 0),
            memory_limit: None,
        }
    }
}

/// `context.paperclipWorkspace` fields carried into `sessionParams`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceParams {
    pub cwd: Option<String>,
    pub workspace_id: Option<String>,
    pub repo_url: Option<String>,
    pub repo_ref: Option<String>,
}

impl WorkspaceParams {
    pub fn from_context(context: &Map<String, Value>) -> Self {
        let ws = context.get("paperclipWorkspace");
        let s = |k: &str| ws.and_then(|w| w.get(k)).and_then(Value::as_str).filter(|v| !v.is_empty()).map(str::to_owned);
        WorkspaceParams { cwd: s("cwd"), workspace_id: s("workspaceId"), repo_url: s("repoUrl"), repo_ref: s("repoRef") }
    }
}

/// What the run observed, besides the transcript and the pod's exit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFacts {
    pub timed_out: bool,
    pub timeout_sec: i64,
    pub job_deleted_externally: bool,
    pub detected_via: Option<String>,
    pub job: String,
    pub namespace: String,
    pub elapsed_since_pod_running: Option<u64>,
    /// Job watch events seen (the original counted completion polls).
    pub completion_polls: u32,
    /// `Type=Status(Reason)` of the Job's last observed conditions.
    pub last_job_conditions: Vec<String>,
    pub configured_model: String,
    pub incoming_session_id: Option<String>,
    pub workspace: WorkspaceParams,
    pub pod_gone: bool,
    pub pod_phase: Option<String>,
    /// Why the pod was disrupted, when Kubernetes said so: the
    /// `DisruptionTarget` condition (1.26+: eviction by the kubelet or the
    /// Eviction API, preemption, a lost node's taint) or a kubelet's
    /// `Evicted` status — see [`crate::pod::disruption`].
    pub pod_disruption: Option<String>,
    /// When the outcome is mapped (`retryNotBefore` counts from it); `None`: now.
    pub now: Option<jiff::Timestamp>,
}

impl RunResult {
    /// Adds what the host can do about this failure: the family, when to
    /// retry, the recovery evidence; and, as `claude_local` does, the same in
    /// `resultJson` (older hosts read only that).
    fn with_classification(mut self, c: Classified) -> Self {
        if self.error_code.is_none() {
            self.error_code = Some(c.error_code.to_owned());
        }
        let family = c.family.map(Family::as_str);
        let retry = c.retry_not_before.map(crate::retry::iso);
        let retryable = matches!(c.family, Some(Family::TransientUpstream | Family::ProviderQuota));
        let recovery = (retryable && !c.provider_work_started).then(|| json!({"kind": "bootstrap", "providerWorkStarted": false}));
        if let Some(url) = c.login_url {
            self.error_meta = Some(json!({"loginUrl": url}));
        }
        let mut rj = match self.result_json.take() {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        if c.family == Some(Family::ModelRefusal) {
            rj.insert("stopReason".into(), json!("refusal"));
        }
        if let Some(f) = family {
            rj.insert("errorFamily".into(), json!(f));
        }
        // 2026.916.1 copies the top-level field into the run's resultJson;
        // 2026.707.0 does not, so it is written there too (as claude_local does).
        if let Some(r) = &recovery {
            rj.insert("executionRecovery".into(), r.clone());
        }
        self.execution_recovery = recovery;
        if let Some(at) = &retry {
            rj.insert("retryNotBefore".into(), json!(at));
            rj.insert("transientRetryNotBefore".into(), json!(at));
            if c.family == Some(Family::ProviderQuota) {
                rj.insert("providerQuotaRetryNotBefore".into(), json!(at));
            }
        }
        self.result_json = (!rj.is_empty()).then_some(Value::Object(rj));
        self.error_family = family.map(str::to_owned);
        self.retry_not_before = retry;
        self
    }
}

/// `describeTruncationCause`.
pub fn describe_truncation_cause(pod: Option<&PodTermination>, facts: &RunFacts) -> String {
    let cause = truncation_cause(pod, facts);
    match &facts.pod_disruption {
        Some(d) => format!("{cause}; the pod was disrupted: {d}"),
        None => cause,
    }
}

fn truncation_cause(pod: Option<&PodTermination>, facts: &RunFacts) -> String {
    let Some(p) = pod else {
        if facts.pod_gone {
            return "pod is gone — Job pod was removed (eviction, preemption, or external delete) before exit could be read".into();
        }
        if let Some(phase) = &facts.pod_phase {
            return format!(
                "container terminated state not yet observable (pod phase={phase}) — kubelet status update did not land within retry window; exit cause unknown"
            );
        }
        return "pod state unavailable — exit cause unknown".into();
    };
    let mut parts = vec![match p.exit_code {
        Some(c) => format!("exit code {c}"),
        None => "no exit code".into(),
    }];
    match p.exit_code {
        Some(137) => parts.push("SIGKILL (commonly OOMKilled)".into()),
        Some(143) => parts.push("SIGTERM".into()),
        _ => {}
    }
    if let Some(s) = p.signal {
        parts.push(format!("signal {s}"));
    }
    if let Some(r) = &p.reason {
        parts.push(format!("reason={r}"));
    }
    if let Some(m) = &p.message {
        parts.push(format!("message={m}"));
    }
    parts.join(", ")
}

fn pod_suffix(pod: Option<&PodTermination>) -> String {
    let Some(p) = pod else { return String::new() };
    let mut parts = Vec::new();
    if let Some(r) = &p.reason {
        parts.push(format!("reason={r}"));
    }
    if let Some(m) = &p.message {
        parts.push(format!("message={m}"));
    }
    if let Some(s) = p.signal {
        parts.push(format!("signal={s}"));
    }
    if p.exit_code == Some(137) {
        parts.push("SIGKILL (commonly OOMKilled)".into());
    }
    if parts.is_empty() { String::new() } else { format!(" [pod: {}]", parts.join(", ")) }
}

/// The message of a run whose `result` event arrived but whose exit code is
/// not 0. 0.1.54 said `describeClaudeFailure(result)`, which for a result
/// that reports success read "Claude run failed: subtype=success: <answer>"
/// — and never named the kill. Seen on a real node: claude OOM-killed (137)
/// after writing its result, while flushing its session. So a successful
/// result followed by a non-zero exit says what happened, and claude killed
/// (137) adds the pod's state either way. (`OOMKilled` with claude's own exit
/// code is a child's death: `annotate` warns of it, the message stays.)
fn failed_with_result_message(parsed: &Map<String, Value>, exit: Option<i32>, is_error: bool, pod: Option<&PodTermination>) -> String {
    let code = exit.unwrap_or(-1);
    let reported_success = !is_error && parsed.get("subtype").and_then(Value::as_str) == Some("success");
    let base = if reported_success {
        format!("Claude exited with code {code} after reporting success")
    } else {
        describe_claude_failure(parsed).unwrap_or_else(|| format!("Claude exited with code {code}"))
    };
    let killed = pod.is_some_and(|p| p.exit_code == Some(137));
    if killed { format!("{base}{}", pod_suffix(pod)) } else { base }
}

/// `buildPartialRunError`: no result event, no error code.
pub fn build_partial_run_error(exit: Option<i32>, model: &str, t: &Transcript, pod: Option<&PodTermination>) -> String {
    let code = exit.unwrap_or(-1);
    let base = if exit == Some(0) {
        "Failed to parse Claude JSON output".to_owned()
    } else if let Some(line) = &t.first_unparsed_line {
        format!("Claude exited with code {code}: {line}")
    } else if t.mentions_configured_model && exit != Some(0) && t.nonempty_lines <= 1 {
        format!(
            "Claude exited immediately after init (model: {model}) (exit code {code}) — the model may be unsupported or the session may have been rejected before producing output"
        )
    } else if t.nonempty_lines > 0 && !model.is_empty() {
        format!(
            "Claude started but did not produce a result (model: {model}) — check API credentials, model support, and adapter config"
        )
    } else {
        format!("Claude exited with code {code}")
    };
    base + &pod_suffix(pod)
}

/// The forensic message of `k8s_job_deleted_externally`.
fn deleted_externally_message(f: &RunFacts, t: &Transcript) -> String {
    let mut parts = Vec::new();
    if let Some(d) = &f.detected_via {
        parts.push(format!("detected_via={d}"));
    }
    parts.push(format!("job={}", f.job));
    parts.push(format!("ns={}", f.namespace));
    if let Some(s) = f.elapsed_since_pod_running {
        parts.push(format!("elapsed_since_pod_running={s}s"));
    }
    parts.push(format!("completion_polls={}", f.completion_polls));
    let conds = if f.last_job_conditions.is_empty() { "none_observed".to_owned() } else { format!("[{}]", f.last_job_conditions.join(",")) };
    parts.push(format!("last_job_conditions={conds}"));
    parts.push(format!("stdout_bytes={}", t.stdout_bytes));
    parts.push(format!("stdout_nonempty_lines={}", t.nonempty_lines));
    format!("K8s Job was deleted externally before Claude could complete [{}]", parts.join(", "))
}

fn stdout_json(t: &Transcript) -> Value {
    json!({"stdout": format!("(streamed; {} bytes, {} non-empty lines)", t.stdout_bytes, t.nonempty_lines)})
}

/// The result of a run that reached the pod.
pub fn map_outcome(f: &RunFacts, t: &Transcript, pod: Option<&PodTermination>) -> RunResult {
    let exit = pod.and_then(|p| p.exit_code);
    let now = f.now.unwrap_or_else(jiff::Timestamp::now);
    if f.timed_out {
        return RunResult {
            exit_code: exit,
            timed_out: true,
            error_message: Some(format!("Timed out after {}s", f.timeout_sec)),
            error_code: Some("timeout".into()),
            ..Default::default()
        };
    }
    let model = if !t.model.is_empty() { t.model.clone() } else { f.configured_model.clone() };
    let Some(parsed) = &t.result_json else {
        // The original required "no exit code"; a container killed by the
        // deletion itself (SIGTERM 143 / SIGKILL 137) was still deleted externally.
        let killed_by_deletion = matches!(exit, None | Some(137) | Some(143));
        if f.job_deleted_externally && killed_by_deletion {
            return RunResult {
                error_code: Some("k8s_job_deleted_externally".into()),
                error_message: Some(deleted_externally_message(f, t)),
                result_json: Some(stdout_json(t)),
                ..Default::default()
            };
        }
        if t.llm_api_empty_response {
            return RunResult::error_with_exit(
                "llm_api_error",
                "LLM API returned an empty response (stop_reason: null, output_tokens: 0) — the upstream model API may be degraded or misconfigured",
                exit,
            )
            .with_classification(crate::retry::empty_response(t, now));
        }
        if t.truncated_mid_stream {
            return RunResult::error_with_exit(
                "claude_truncated",
                &format!(
                    "Claude run was truncated mid-stream (model: {model}) — assistant produced content but no result event arrived; {}",
                    describe_truncation_cause(pod, f)
                ),
                exit,
            );
        }
        return RunResult {
            exit_code: exit,
            error_message: Some(build_partial_run_error(exit, &model, t, pod)),
            result_json: Some(stdout_json(t)),
            ..Default::default()
        };
    };
    if exit.is_some_and(|c| c != 0) && is_unknown_session_error(parsed) {
        return RunResult {
            exit_code: exit,
            error_code: Some("session_unavailable".into()),
            error_message: Some(describe_claude_failure(parsed).unwrap_or_else(|| "Session unavailable".into())),
            clear_session: Some(true),
            result_json: Some(Value::Object(parsed.clone())),
            ..Default::default()
        };
    }
    let session_id = t
        .session_id
        .clone()
        .or_else(|| parsed.get("session_id").and_then(Value::as_str).map(str::to_owned))
        .or_else(|| f.incoming_session_id.clone());
    let session_params = session_id.as_ref().map(|sid| {
        let mut m = Map::new();
        m.insert("sessionId".into(), json!(sid));
        let w = &f.workspace;
        for (k, v) in [("cwd", &w.cwd), ("workspaceId", &w.workspace_id), ("repoUrl", &w.repo_url), ("repoRef", &w.repo_ref)] {
            if let Some(v) = v {
                m.insert(k.into(), json!(v));
            }
        }
        m
    });
    let failed = exit.unwrap_or(0) != 0;
    let model_out = [t.model.as_str(), parsed.get("model").and_then(Value::as_str).unwrap_or_default(), f.configured_model.as_str()]
        .into_iter()
        .find(|m| !m.is_empty())
        .map(str::to_owned);
    let summary = if t.summary.is_empty() {
        parsed.get("result").and_then(Value::as_str).unwrap_or_default().to_owned()
    } else {
        t.summary.clone()
    };
    let is_error = parsed.get("is_error").and_then(Value::as_bool) == Some(true);
    let classified = crate::retry::classify(parsed, failed || is_error, t, now);
    let result = RunResult {
        exit_code: exit,
        signal: None,
        timed_out: false,
        error_message: failed.then(|| failed_with_result_message(parsed, exit, is_error, pod)),
        error_code: None,
        usage: Some(t.usage.unwrap_or_default()),
        session_display_id: session_id.clone(),
        session_id,
        session_params,
        provider: Some("anthropic".into()),
        model: model_out,
        billing_type: Some("api".into()),
        cost_usd: Some(t.cost_usd.unwrap_or(0.0)),
        result_json: Some(Value::Object(parsed.clone())),
        summary: Some(summary),
        clear_session: Some(is_max_turns_result(parsed)),
        ..Default::default()
    };
    match classified {
        Some(c) => result.with_classification(c),
        None => result,
    }
}

#[cfg(test)]
mod tests;
