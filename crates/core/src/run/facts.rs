//! From what the loop observed to [`RunFacts`], the input of the pure
//! [`map_outcome`](crate::outcome::map_outcome).
//!
//! Why a separate step: the loop only records (the pod book, the Job view,
//! whether a deadline passed); deciding what those records *mean* for the
//! run's result belongs to `outcome`, and this is the one place where the
//! two meet. Keeping it pure lets the mapping be tested without a cluster.
//!
//! Invariants:
//! - The exit code comes from the pod's last known state, departed or not
//!   (see [`super::book`]): a Job deleted right after its container ended
//!   still yields the container's exit code.
//! - "The pod is gone" means a pod was seen and none is current, never
//!   "no pod was listed yet".
//! - Nothing here reads a secret: facts carry names, counts and conditions.

use std::time::Instant;

use k8s_openapi::api::batch::v1::Job;

use super::book::PodBook;
use super::watches::JobView;
use crate::config::AdapterConfig;
use crate::ctx::RunContext;
use crate::outcome::{PodTermination, RunFacts, WorkspaceParams};
use crate::pod;
use crate::transcript::Transcript;

/// What the loop saw of the run, once it has ended.
pub(super) struct Observed<'a> {
    pub(super) book: &'a PodBook,
    pub(super) job: &'a JobView,
    /// The run deadline passed, ours or the Job controller's.
    pub(super) timed_out: bool,
    /// When the log began to be followed.
    pub(super) pod_running_at: Option<Instant>,
}

/// The `claude` container's exit, from the pod's last known state.
pub(super) fn termination(book: &PodBook) -> Option<PodTermination> {
    let p = book.last_known()?;
    let mut t = pod::claude_terminated(p).map(PodTermination::from_terminated)?;
    t.memory_limit = pod::claude_memory_limit(p);
    Some(t)
}

/// The facts of the run of `job` in `namespace`, as of `now`.
pub(super) fn run_facts(rc: &RunContext, cfg: &AdapterConfig, job: &str, namespace: &str, seen: &Observed<'_>, now: Instant) -> RunFacts {
    let current = seen.book.current();
    let gone_at = seen.job.gone_at;
    RunFacts {
        timed_out: seen.timed_out,
        timeout_sec: cfg.timeout_sec,
        job_deleted_externally: gone_at.is_some(),
        detected_via: gone_at.map(|_| "job-watch-delete".to_owned()),
        job: job.to_owned(),
        namespace: namespace.to_owned(),
        elapsed_since_pod_running: seen.pod_running_at.map(|t| now.saturating_duration_since(t).as_secs()),
        completion_polls: seen.job.events_seen,
        last_job_conditions: seen.job.last.as_ref().map(job_conditions).unwrap_or_default(),
        configured_model: cfg.model.clone().unwrap_or_default(),
        incoming_session_id: rc.session_id().map(str::to_owned),
        workspace: WorkspaceParams::from_context(&rc.context),
        pod_gone: seen.book.ever_seen && current.is_none(),
        pod_phase: current.and_then(|p| p.status.as_ref()).and_then(|s| s.phase.clone()),
        pod_disruption: seen.book.last_known().and_then(pod::disruption),
        now: None,
    }
}

/// The CLI failed because it does not know the session it was asked to
/// resume (the run then tells the host to clear it).
pub(super) fn transcript_is_unknown_session(_facts: &RunFacts, t: &Transcript, term: Option<&PodTermination>) -> bool {
    let exit = term.and_then(|t| t.exit_code);
    t.result_json.as_ref().is_some_and(|r| exit.is_some_and(|c| c != 0) && crate::failure::is_unknown_session_error(r))
}

/// `Type=Status(Reason)` of each of the Job's conditions.
fn job_conditions(job: &Job) -> Vec<String> {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|c| format!("{}={}({})", c.type_, c.status, c.reason.as_deref().unwrap_or("")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::watcher::Event;
    use serde_json::json;
    use std::time::Duration;

    fn rc() -> RunContext {
        RunContext::from_json(&json!({
            "runId": "r1",
            "agent": {"id": "a1", "companyId": "c", "name": "A"},
            "runtime": {"sessionId": "sess-in"},
            "config": {"model": "claude-x", "timeoutSec": 600},
            "context": {"paperclipWorkspace": {"cwd": "/w"}},
        }))
    }

    fn pod(name: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name}, "status": status})).unwrap()
    }

    fn finished(exit: i32) -> Pod {
        pod("p", json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory",
            "containerStatuses": [{"name": "claude", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": exit, "reason": "Error"}}}]}))
    }

    fn job(conditions: serde_json::Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "j"}, "status": {"conditions": conditions}})).unwrap()
    }

    #[test]
    fn a_job_deleted_after_its_pod_ended_keeps_the_exit_and_says_how_it_was_seen() {
        let rc = rc();
        let cfg = AdapterConfig::from_ctx(&rc).unwrap();
        let mut book = PodBook::default();
        book.apply(Event::Apply(finished(137)));
        book.apply(Event::Delete(finished(137)));
        let t0 = Instant::now();
        let mut job_view = JobView::default();
        job_view.observe(Some(job(json!([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]))), t0);
        job_view.observe(None, t0);
        let seen = Observed { book: &book, job: &job_view, timed_out: true, pod_running_at: Some(t0) };
        let f = run_facts(&rc, &cfg, "j", "ns", &seen, t0 + Duration::from_secs(42));

        assert!(f.timed_out && f.job_deleted_externally && f.pod_gone);
        assert_eq!(f.timeout_sec, 600);
        assert_eq!(f.detected_via.as_deref(), Some("job-watch-delete"));
        assert_eq!(f.elapsed_since_pod_running, Some(42));
        assert_eq!(f.completion_polls, 1);
        assert_eq!(f.last_job_conditions, vec!["Failed=True(DeadlineExceeded)".to_owned()]);
        assert_eq!(f.pod_phase, None, "no current pod, so no phase");
        assert_eq!(f.pod_disruption.as_deref(), Some("Evicted: low on memory"));
        assert_eq!(f.configured_model, "claude-x");
        assert_eq!(f.incoming_session_id.as_deref(), Some("sess-in"));
        assert_eq!(f.workspace.cwd.as_deref(), Some("/w"));
        assert_eq!((f.job.as_str(), f.namespace.as_str()), ("j", "ns"));
        assert_eq!(termination(&book).and_then(|t| t.exit_code), Some(137));
    }

    #[test]
    fn no_pod_seen_is_not_a_pod_gone() {
        let rc = rc();
        let cfg = AdapterConfig::from_ctx(&rc).unwrap();
        let (book, job_view) = (PodBook::default(), JobView::default());
        let seen = Observed { book: &book, job: &job_view, timed_out: false, pod_running_at: None };
        let f = run_facts(&rc, &cfg, "j", "ns", &seen, Instant::now());
        assert!(!f.pod_gone && !f.job_deleted_externally);
        assert_eq!((f.detected_via, f.elapsed_since_pod_running, f.completion_polls), (None, None, 0));
        assert!(f.last_job_conditions.is_empty());
        assert!(termination(&book).is_none());
    }

    #[test]
    fn a_live_pod_gives_its_phase() {
        let rc = rc();
        let cfg = AdapterConfig::from_ctx(&rc).unwrap();
        let mut book = PodBook::default();
        book.apply(Event::Apply(pod("p", json!({"phase": "Running"}))));
        let job_view = JobView::default();
        let seen = Observed { book: &book, job: &job_view, timed_out: false, pod_running_at: None };
        let f = run_facts(&rc, &cfg, "j", "ns", &seen, Instant::now());
        assert_eq!(f.pod_phase.as_deref(), Some("Running"));
        assert!(!f.pod_gone);
    }

    #[test]
    fn an_unknown_session_counts_only_when_claude_failed() {
        let result = r#"{"type":"result","subtype":"error_during_execution","is_error":true,"result":"No conversation found with session ID: abc"}"#;
        let t = crate::transcript::parse_all(result.as_bytes(), "m");
        let failed = PodTermination { exit_code: Some(1), ..Default::default() };
        let ok = PodTermination { exit_code: Some(0), ..Default::default() };
        let f = RunFacts::default();
        assert!(transcript_is_unknown_session(&f, &t, Some(&failed)));
        assert!(!transcript_is_unknown_session(&f, &t, Some(&ok)));
        assert!(!transcript_is_unknown_session(&f, &t, None));
    }
}
