//! Kubernetes Events on the run's Job (issue 25): the milestones an operator
//! looks for with `kubectl describe job` or `kubectl get events`, reported
//! the way controllers report — `events.k8s.io/v1` Events through kube-rs's
//! [`Recorder`], `regarding` the Job, `related` the pod where one is meant,
//! from the controller `paperclip.io/claude-k8s` and the instance that runs
//! the adapter (the host's pod, or its hostname).
//!
//! Milestones: the log stream resumed after it broke, log lines lost to
//! rotation, the pod refused by admission, and the outcome — succeeded,
//! failed (with its `errorCode`), timed out, or cancelled by the host.
//!
//! Optional by design. Events need `create` (and `patch`, with which the
//! Recorder counts a repeated milestone into the first Event's `series`
//! rather than writing another; without it a repeat is not counted) on
//! `events.k8s.io` `events`:
//! deploy/rbac-events.yaml. Without them nothing breaks: the first refusal
//! turns Events off for this run and, for [`FORBIDDEN_MEMORY`], for every
//! run in that namespace, so a cluster that does not grant them pays one
//! refused request per namespace every few minutes, not one per milestone.
//!
//! Invariants:
//! - Publishing never holds up the run: milestones go through a bounded
//!   queue to a task of the run's own, which writes them in order; a full
//!   queue drops the milestone (counted, logged at debug), never waits.
//! - The outcome is the last Event, written before the Job is cleaned up
//!   (so `kubectl describe job` of a retained Job shows it) and waited for
//!   at most [`FLUSH_TIMEOUT`].
//! - A note carries identifiers, counts, times, error codes and apiserver
//!   messages — never a token, key, prompt or transcript line; notes are cut
//!   to the API's 1 KiB.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::outcome::RunResult;

/// The `reportingController` of every Event we write.
pub const CONTROLLER: &str = "paperclip.io/claude-k8s";
/// How long the outcome may hold up the end of a run.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a refusal (403) keeps Events off in its namespace.
pub const FORBIDDEN_MEMORY: Duration = Duration::from_secs(300);
/// Milestones queued and not yet written, at most.
const QUEUE: usize = 32;
/// `note` is limited to 1 KiB by the API.
const NOTE_LIMIT: usize = 1024;

/// Namespaces whose Role refused an Event, and when.
static FORBIDDEN: LazyLock<Mutex<HashMap<String, Instant>>> = LazyLock::new(Default::default);

/// Refusals are remembered per identity and namespace: the key joins the
/// kubeconfig a run uses (agents may each have their own) and the namespace.
fn refusal_key(kubeconfig: Option<&str>, namespace: &str) -> String {
    format!("{}\n{namespace}", kubeconfig.unwrap_or("(in-cluster)"))
}

fn forbidden_now(key: &str) -> bool {
    let mut map = FORBIDDEN.lock().unwrap_or_else(|p| p.into_inner());
    map.retain(|_, at| at.elapsed() < FORBIDDEN_MEMORY);
    map.contains_key(key)
}

fn remember_forbidden(key: &str) {
    FORBIDDEN.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_owned(), Instant::now());
}

/// Something an operator would want to see on the Job.
#[derive(Debug, Clone, PartialEq)]
pub enum Milestone {
    /// The log stream broke and was opened again (`connection` counts from 1).
    LogResumed { pod: String, connection: u32, since: Option<String> },
    /// Lines written in this window may never have been read.
    LinesLost { pod: String, after: String, before: Option<String> },
    /// Admission refused the Job's pod.
    PodRefused { message: String },
    /// How the run ended.
    Outcome { run_id: String, exit_code: Option<i32>, error_code: Option<String>, timed_out: bool, cancelled: bool },
}

impl Milestone {
    /// The outcome of `result`, as an Event says it.
    pub fn outcome(run_id: &str, result: &RunResult) -> Self {
        Milestone::Outcome {
            run_id: run_id.to_owned(),
            exit_code: result.exit_code,
            // An error without a code is still one (the host shows its message).
            error_code: result.error_code.clone().or_else(|| result.error_message.as_ref().map(|_| "an error without a code".to_owned())),
            timed_out: result.timed_out,
            cancelled: result.error_code.as_deref() == Some("cancelled"),
        }
    }

    /// The Event: its type, reason, action and note, and the pod it relates to.
    pub fn event(&self) -> (Event, Option<&str>) {
        let (type_, reason, action, note, pod) = match self {
            // The Recorder writes a repeat into the first Event's series and
            // keeps its note: so the note says nothing a repeat would change
            // (the connection and cursor are in the tracing events).
            Milestone::LogResumed { pod, .. } => (
                EventType::Normal,
                "LogStreamResumed",
                "FollowLog",
                format!("The log stream of pod {pod} broke and was resumed after the last line delivered; none is delivered twice (each resume counts in this Event's series)"),
                Some(pod.as_str()),
            ),
            Milestone::LinesLost { pod, after, before } => (
                EventType::Warning,
                "LogLinesLost",
                "FollowLog",
                format!(
                    "Log lines of pod {pod} written after {after} and {} may be lost: the kubelet rotated the container's log file before they were read",
                    before.as_ref().map(|b| format!("before {b}")).unwrap_or_else(|| "up to the container's end".into())
                ),
                Some(pod.as_str()),
            ),
            Milestone::PodRefused { message } => {
                (EventType::Warning, "PodRefused", "WaitForPod", format!("The Job's pod was refused, the run fails: {message}"), None)
            }
            Milestone::Outcome { run_id, exit_code, error_code, timed_out, cancelled } => {
                let exit = exit_code.map(|c| format!("exit code {c}")).unwrap_or_else(|| "no exit code".into());
                let (type_, reason, how) = if *cancelled {
                    (EventType::Normal, "RunCancelled", "cancelled by the host".to_owned())
                } else if *timed_out {
                    (EventType::Warning, "RunTimedOut", format!("timed out ({exit})"))
                } else if let Some(code) = error_code {
                    (EventType::Warning, "RunFailed", format!("failed: {code} ({exit})"))
                } else if exit_code.is_some_and(|c| c != 0) {
                    (EventType::Warning, "RunFailed", format!("failed: {exit}"))
                } else {
                    // No code, no message, exit 0 — or no exit code readable, as the outcome maps it: success.
                    (EventType::Normal, "RunSucceeded", format!("succeeded ({exit})"))
                };
                (type_, reason, "Run", format!("Paperclip run {run_id} {how}"), None)
            }
        };
        let event = Event { type_, reason: reason.into(), note: Some(cut(note, NOTE_LIMIT)), action: action.into(), secondary: None };
        (event, pod)
    }
}

/// `s` cut to at most `limit` bytes, on a character boundary.
fn cut(mut s: String, limit: usize) -> String {
    if s.len() > limit {
        let mut end = limit - '…'.len_utf8();
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Where a run's milestones go: cheap to clone, and a no-op when Events are off.
#[derive(Clone, Default)]
pub struct EventSink(Option<mpsc::Sender<Milestone>>);

impl EventSink {
    /// Queues `m`; never waits (a full queue drops it).
    pub fn note(&self, m: Milestone) {
        if let Some(tx) = &self.0
            && let Err(e) = tx.try_send(m)
        {
            tracing::debug!(error = %e, "Kubernetes Event dropped");
        }
    }
}

/// The run's Event writer: a task publishing the queued milestones in order.
pub struct JobEvents {
    sink: EventSink,
    task: Option<JoinHandle<()>>,
}

impl JobEvents {
    /// Events off: every milestone is dropped.
    pub fn off() -> Self {
        JobEvents { sink: EventSink::default(), task: None }
    }

    /// Events on the Job `name` (`uid`) in `namespace`, unless that
    /// namespace refused one to this identity (`kubeconfig`) a moment ago.
    pub fn start(client: Client, kubeconfig: Option<&str>, namespace: &str, name: &str, uid: Option<&str>, instance: Option<String>) -> Self {
        let key = refusal_key(kubeconfig, namespace);
        if forbidden_now(&key) {
            tracing::debug!(%namespace, "Kubernetes Events off: refused in this namespace a moment ago");
            return Self::off();
        }
        let job = ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            uid: uid.map(str::to_owned),
            ..ObjectReference::default()
        };
        let recorder = Recorder::new(client, Reporter { controller: CONTROLLER.into(), instance });
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(tracing::Instrument::in_current_span(publish_all(recorder, job, key, rx)));
        JobEvents { sink: EventSink(Some(tx)), task: Some(task) }
    }

    pub fn sink(&self) -> EventSink {
        self.sink.clone()
    }

    /// Queues the outcome — the writer's last milestone, after which it
    /// stops whoever still holds a sink — and waits at most
    /// [`FLUSH_TIMEOUT`] for everything queued to be written.
    /// True when the writer finished (rather than being given up on).
    pub async fn finish(mut self, outcome: Milestone) -> bool {
        debug_assert!(matches!(outcome, Milestone::Outcome { .. }));
        let Some(mut task) = self.task.take() else { return true };
        let tx = self.sink.0.take();
        let written = tokio::time::timeout(FLUSH_TIMEOUT, async {
            // Waits for room: the outcome is never the one dropped.
            if let Some(tx) = tx {
                let _ = tx.send(outcome).await;
            }
            let _ = (&mut task).await;
        });
        if written.await.is_err() {
            tracing::debug!("Kubernetes Events not all written in time; giving up on the rest");
            task.abort();
            return false;
        }
        true
    }
}

impl Drop for JobEvents {
    fn drop(&mut self) {
        // A run that ends without `finish` (a failed callback) leaves no writer behind.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn publish_all(recorder: Recorder, job: ObjectReference, key: String, mut rx: mpsc::Receiver<Milestone>) {
    // Reasons written: the Recorder writes a repeat as a patch of the first
    // Event's series, which a Role may refuse while allowing create.
    let mut written = std::collections::HashSet::new();
    while let Some(m) = rx.recv().await {
        let (mut event, pod) = m.event();
        event.secondary = pod.map(|p| ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(p.to_owned()),
            namespace: job.namespace.clone(),
            ..ObjectReference::default()
        });
        match recorder.publish(&event, &job).await {
            Ok(()) => {
                tracing::debug!(reason = %event.reason, "Kubernetes Event written");
                written.insert(event.reason);
            }
            Err(kube::Error::Api(s)) if s.code == 403 && written.contains(&event.reason) => {
                tracing::debug!(reason = %event.reason, message = %s.message, "a repeated Kubernetes Event not counted: the Role does not allow patch");
            }
            Err(kube::Error::Api(s)) if s.code == 403 => {
                let namespace = job.namespace.as_deref().unwrap_or_default();
                tracing::debug!(%namespace, message = %s.message, "Kubernetes Events off: the Role does not allow them (deploy/rbac-events.yaml)");
                remember_forbidden(&key);
                return;
            }
            Err(e) => tracing::debug!(error = %e, reason = %event.reason, "Kubernetes Event not written"),
        }
        if matches!(m, Milestone::Outcome { .. }) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(exit: Option<i32>, code: Option<&str>, timed_out: bool) -> RunResult {
        RunResult { exit_code: exit, error_code: code.map(Into::into), error_message: code.map(|_| "m".into()), timed_out, ..RunResult::error("x", "y") }
    }

    fn outcome(r: &RunResult) -> (EventType, String, String) {
        let m = Milestone::outcome("run-1", r);
        let (e, pod) = m.event();
        assert_eq!(pod, None);
        assert_eq!(e.action, "Run");
        (e.type_, e.reason, e.note.unwrap())
    }

    #[test]
    fn the_outcome_says_failure_as_a_warning() {
        let ok = outcome(&result(Some(0), None, false));
        assert_eq!(ok, (EventType::Normal, "RunSucceeded".into(), "Paperclip run run-1 succeeded (exit code 0)".into()));
        let (t, reason, note) = outcome(&result(Some(1), Some("claude_auth_required"), false));
        assert_eq!((t, reason.as_str()), (EventType::Warning, "RunFailed"));
        assert_eq!(note, "Paperclip run run-1 failed: claude_auth_required (exit code 1)");
        // An adapter error with exit code 0 still failed.
        assert_eq!(outcome(&result(Some(0), Some("k8s_job_state_mismatch"), false)).1, "RunFailed");
        // A non-zero exit without a code failed.
        let (t, reason, note) = outcome(&result(Some(137), None, false));
        assert_eq!((t, reason.as_str(), note.as_str()), (EventType::Warning, "RunFailed", "Paperclip run run-1 failed: exit code 137"));
        // No exit code readable and no error: the outcome is a success (map_outcome), and so is the Event.
        assert_eq!(outcome(&result(None, None, false)).1, "RunSucceeded");
        let mut with_message = result(Some(0), None, false);
        with_message.error_message = Some("Failed to parse Claude JSON output".into());
        let (t, reason, note) = outcome(&with_message);
        assert_eq!((t, reason.as_str(), note.as_str()), (EventType::Warning, "RunFailed", "Paperclip run run-1 failed: an error without a code (exit code 0)"));
        let (t, reason, _) = outcome(&result(None, Some("timeout"), true));
        assert_eq!((t, reason.as_str()), (EventType::Warning, "RunTimedOut"));
        let (t, reason, note) = outcome(&RunResult::cancelled_acknowledged("k8s_job_deleted"));
        assert_eq!((t, reason.as_str(), note.as_str()), (EventType::Normal, "RunCancelled", "Paperclip run run-1 cancelled by the host"));
    }

    #[test]
    fn log_milestones_relate_to_the_pod() {
        let m = Milestone::LogResumed { pod: "p-1".into(), connection: 3, since: Some("2026-12-06T00:00:01Z".into()) };
        let (e, pod) = m.event();
        assert_eq!((e.type_, e.reason.as_str(), pod), (EventType::Normal, "LogStreamResumed", Some("p-1")));
        assert_eq!(e.note.unwrap(), "The log stream of pod p-1 broke and was resumed after the last line delivered; none is delivered twice (each resume counts in this Event's series)");
        let lost = Milestone::LinesLost { pod: "p-1".into(), after: "t1".into(), before: None };
        let (e, pod) = lost.event();
        assert_eq!((e.type_, e.reason.as_str(), pod), (EventType::Warning, "LogLinesLost", Some("p-1")));
        assert!(e.note.unwrap().ends_with("after t1 and up to the container's end may be lost: the kubelet rotated the container's log file before they were read"));
    }

    #[test]
    fn notes_fit_the_api_on_a_character_boundary() {
        let refused = Milestone::PodRefused { message: "é".repeat(2000) };
        let (e, _) = refused.event();
        let note = e.note.unwrap();
        assert!(note.len() <= NOTE_LIMIT, "{}", note.len());
        assert!(note.ends_with('…'));
        assert_eq!(cut("short".into(), NOTE_LIMIT), "short");
    }

    #[test]
    fn a_refusal_is_remembered_per_namespace() {
        let key = refusal_key(Some("/a.kubeconfig"), "ns-a-refusal");
        assert!(!forbidden_now(&key));
        remember_forbidden(&key);
        assert!(forbidden_now(&key));
        assert!(!forbidden_now(&refusal_key(Some("/a.kubeconfig"), "ns-another")));
        assert!(!forbidden_now(&refusal_key(Some("/b.kubeconfig"), "ns-a-refusal")), "another identity");
        assert!(!forbidden_now(&refusal_key(None, "ns-a-refusal")), "in-cluster");
    }

    #[tokio::test]
    async fn off_drops_everything_without_waiting() {
        let events = JobEvents::off();
        let sink = events.sink();
        for i in 0..100 {
            sink.note(Milestone::LogResumed { pod: "p".into(), connection: i, since: None });
        }
        let outcome = Milestone::Outcome { run_id: "r".into(), exit_code: Some(0), error_code: None, timed_out: false, cancelled: false };
        assert!(events.finish(outcome).await);
    }

    /// The writer stops after the outcome, even while a sink is still held
    /// (the run's own copy, say): the end of a run never waits out the
    /// flush timeout. (Nothing listens on port 9: each write fails at once.)
    #[tokio::test]
    async fn the_outcome_ends_the_writer_whoever_holds_a_sink() {
        let client = kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let events = JobEvents::start(client, None, "ns-writer", "job", None, None);
        let held = events.sink();
        held.note(Milestone::PodRefused { message: "m".into() });
        let outcome = Milestone::Outcome { run_id: "r".into(), exit_code: Some(0), error_code: None, timed_out: false, cancelled: false };
        assert!(events.finish(outcome).await, "finished, not timed out");
        held.note(Milestone::PodRefused { message: "after the end: dropped".into() });
    }
}
