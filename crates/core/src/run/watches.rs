//! What the run watches — its Job, the Job's pods, and (briefly) the Job's
//! `FailedCreate` events — and what the watches' own health says.
//!
//! Why health is tracked here rather than left to the watcher: kube-runtime's
//! watcher retries forever with backoff, which is right for a controller but
//! not for a run someone is waiting on. Two things end the wait instead:
//! a watch the Role forbids (a 403 that lasts [`FORBIDDEN_GRACE`]: an
//! apiserver that just restarted answers 403 until its RBAC caches are warm),
//! and watches that keep failing for [`STATE_RECHECK`], after which the Job's
//! state counts as unknowable.
//!
//! Invariants:
//! - Any event from either watch, except the `Init` that merely announces a
//!   (re)list, counts as health: the watcher yields `Init` again before every
//!   retry of a failing list, so it is no sign the apiserver answers.
//! - A refusal (403) is remembered from its *first* occurrence; any other
//!   failure, or a success, forgets it — an outage is not a refusal.
//! - Nothing here decides from the wall clock by itself: callers pass `now`,
//!   so each rule can be tested.

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

use super::Running;

/// How long watches may fail in a row before the Job's state counts as unknowable.
pub(super) const STATE_RECHECK: Duration = Duration::from_secs(60);
/// How long a watch may be refused (403) before that is taken as final: an
/// apiserver that just restarted answers 403 until its RBAC caches are warm.
pub(super) const FORBIDDEN_GRACE: Duration = Duration::from_secs(8);

pub(super) type PodEvents = BoxStream<'static, Result<watcher::Event<Pod>, watcher::Error>>;
/// The Job: `Some` while it exists, `None` once it is gone.
pub(super) type JobEvents = BoxStream<'static, Result<Option<Job>, watcher::Error>>;
pub(super) type RefusalEvents = BoxStream<'static, Result<watcher::Event<CoreEvent>, watcher::Error>>;

/// The Job's pods, by the Job's uid when known (a name can be reused).
pub(super) fn pod_events(run: &Running) -> PodEvents {
    let pods: Api<Pod> = Api::namespaced(run.client.clone(), &run.namespace);
    let selector = match &run.job_uid {
        Some(uid) => format!("controller-uid={uid}"),
        None => format!("job-name={}", run.job_name),
    };
    crate::watch::watch(pods, watcher::Config::default().labels(&selector), run.lists.clone()).default_backoff().boxed()
}

pub(super) fn job_events(run: &Running) -> JobEvents {
    let jobs: Api<Job> = Api::namespaced(run.client.clone(), &run.namespace);
    crate::watch::watch_object(jobs, &run.job_name, run.lists.clone()).default_backoff().boxed()
}

/// The Job's `FailedCreate` events. No backoff: one failure (no right to
/// read events, say) ends this watch, and the schedule timeout still ends
/// the wait for a pod.
pub(super) fn refusal_events(run: &Running) -> RefusalEvents {
    let events: Api<CoreEvent> = Api::namespaced(run.client.clone(), &run.namespace);
    let fields = format!("involvedObject.uid={},reason=FailedCreate", run.job_uid.as_deref().unwrap_or_default());
    crate::watch::watch(events, watcher::Config::default().fields(&fields), run.lists.clone())
}

/// The message of a `FailedCreate` event that says admission refused the
/// pod ("Error creating: pods \"…\" is forbidden: violates PodSecurity …"):
/// it will refuse every retry of the same template.
pub(super) fn refused_pod(event: CoreEvent) -> Option<String> {
    let msg = event.message.unwrap_or_default();
    msg.contains("forbidden").then_some(msg)
}

/// Why the watches cannot tell us how the run goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unwatchable {
    /// The Role forbids watching the Job's pods (with the apiserver's words).
    Pods(String),
    /// The Role forbids watching the Job.
    Job(String),
    /// The watches have failed for [`STATE_RECHECK`].
    StateUnknown,
}

/// The health of the pod and Job watches.
#[derive(Debug, Default)]
pub(super) struct WatchHealth {
    /// Since when the watches have been failing; a success of either resets it.
    failing_since: Option<Instant>,
    /// The pod watch's last word was an error.
    pods_failing: bool,
    /// Since when each watch has been refused by RBAC, and the apiserver's words.
    pods_denied: Option<(Instant, String)>,
    job_denied: Option<(Instant, String)>,
}

impl WatchHealth {
    /// An event of the pod watch (see the module invariants about `Init`).
    pub(super) fn pod_event(&mut self, ev: &watcher::Event<Pod>) {
        if !matches!(ev, watcher::Event::Init) {
            self.failing_since = None;
            self.pods_failing = false;
            self.pods_denied = None;
        }
    }

    pub(super) fn job_event(&mut self) {
        self.failing_since = None;
        self.job_denied = None;
    }

    pub(super) fn pod_failed(&mut self, e: &watcher::Error, now: Instant) {
        self.failing_since.get_or_insert(now);
        self.pods_failing = true;
        note_denied(&mut self.pods_denied, e, now);
    }

    pub(super) fn job_failed(&mut self, e: &watcher::Error, now: Instant) {
        self.failing_since.get_or_insert(now);
        note_denied(&mut self.job_denied, e, now);
    }

    /// Whether the pod watch has failed since it last delivered: what it
    /// last showed of the pod may no longer be so.
    pub(super) fn pods_failing(&self) -> bool {
        self.pods_failing
    }

    /// Whether to stop waiting, first match wins: the pods cannot be watched
    /// (only matters before the log is followed), the Job cannot be watched,
    /// the watches have failed too long.
    pub(super) fn verdict(&self, now: Instant, following: bool) -> Option<Unwatchable> {
        let lasted = |since: Instant, limit: Duration| now.saturating_duration_since(since) >= limit;
        if let Some((since, msg)) = &self.pods_denied
            && lasted(*since, FORBIDDEN_GRACE)
            && !following
        {
            return Some(Unwatchable::Pods(msg.clone()));
        }
        if let Some((since, msg)) = &self.job_denied
            && lasted(*since, FORBIDDEN_GRACE)
        {
            return Some(Unwatchable::Job(msg.clone()));
        }
        match self.failing_since {
            Some(since) if lasted(since, STATE_RECHECK) => Some(Unwatchable::StateUnknown),
            _ => None,
        }
    }
}

/// Records when a watch was first refused by RBAC (403), with the message.
fn note_denied(denied: &mut Option<(Instant, String)>, e: &watcher::Error, now: Instant) {
    let status: Option<&kube::core::Status> = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => Some(s),
        watcher::Error::WatchError(s) => Some(s),
        _ => None,
    };
    match status.filter(|s| s.code == 403) {
        Some(s) => {
            denied.get_or_insert_with(|| (now, s.message.clone()));
        }
        // Any other failure (the apiserver down, say) is not a refusal.
        None => *denied = None,
    }
}

/// What a Job event changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JobNews {
    /// The Job as it is now; whether its deadline has passed.
    Seen { deadline_exceeded: bool },
    /// The Job is gone, and this is the first we hear of it.
    Vanished,
    /// Gone, as we already knew.
    StillGone,
}

/// The Job as its watch shows it.
#[derive(Debug, Default)]
pub(super) struct JobView {
    /// Its last observed state.
    pub(super) last: Option<Job>,
    /// When it was first seen gone (deleted, by us or anyone).
    pub(super) gone_at: Option<Instant>,
    /// How many states of it were seen (the original counted completion polls).
    pub(super) events_seen: u32,
}

impl JobView {
    pub(super) fn observe(&mut self, job: Option<Job>, now: Instant) -> JobNews {
        match job {
            Some(j) => {
                self.events_seen += 1;
                let deadline_exceeded = job_deadline_exceeded(&j);
                self.last = Some(j);
                JobNews::Seen { deadline_exceeded }
            }
            None if self.gone_at.is_none() => {
                self.gone_at = Some(now);
                JobNews::Vanished
            }
            None => JobNews::StillGone,
        }
    }
}

/// The Job's deadline has passed, by the Job controller's word: `Failed`
/// with reason `DeadlineExceeded`, or (1.31+) the interim `FailureTarget`
/// it writes first — `Failed` follows only once the pod it deletes has
/// terminated, after our log has ended.
fn job_deadline_exceeded(job: &Job) -> bool {
    job.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
        cs.iter().any(|c| {
            matches!(c.type_.as_str(), "Failed" | "FailureTarget") && c.status == "True" && c.reason.as_deref() == Some("DeadlineExceeded")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn api_error(code: u16, message: &str) -> watcher::Error {
        let status = kube::core::Status::failure(message, "Forbidden").with_code(code);
        watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status)))
    }

    fn job(conditions: serde_json::Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "j"}, "status": {"conditions": conditions}})).unwrap()
    }

    fn event(message: &str) -> CoreEvent {
        serde_json::from_value(json!({"metadata": {"name": "e"}, "involvedObject": {}, "message": message})).unwrap()
    }

    #[test]
    fn a_refusal_is_final_only_after_the_grace_and_counts_from_its_first_sighting() {
        let t0 = Instant::now();
        let mut h = WatchHealth::default();
        h.pod_failed(&api_error(403, "pods is forbidden"), t0);
        assert_eq!(h.verdict(t0 + FORBIDDEN_GRACE - Duration::from_millis(1), false), None);
        // A second 403 later does not restart the clock.
        h.pod_failed(&api_error(403, "again"), t0 + Duration::from_secs(5));
        assert_eq!(h.verdict(t0 + FORBIDDEN_GRACE, false), Some(Unwatchable::Pods("pods is forbidden".into())));
        // Once the log is followed, a refused pod watch no longer ends the run by itself.
        assert_eq!(h.verdict(t0 + FORBIDDEN_GRACE, true), None);
    }

    #[test]
    fn an_outage_or_a_success_forgets_a_refusal() {
        let t0 = Instant::now();
        let mut h = WatchHealth::default();
        h.job_failed(&api_error(403, "jobs is forbidden"), t0);
        h.job_failed(&api_error(503, "unavailable"), t0 + Duration::from_secs(1));
        assert_eq!(h.verdict(t0 + FORBIDDEN_GRACE * 2, false), None);
        h.job_failed(&api_error(403, "jobs is forbidden"), t0 + Duration::from_secs(2));
        h.job_event();
        assert_eq!(h.verdict(t0 + STATE_RECHECK * 2, false), None, "a success also resets the failing clock");
    }

    #[test]
    fn the_pods_refusal_is_named_before_the_jobs() {
        let t0 = Instant::now();
        let mut h = WatchHealth::default();
        h.job_failed(&api_error(403, "jobs"), t0);
        h.pod_failed(&api_error(403, "pods"), t0);
        assert_eq!(h.verdict(t0 + FORBIDDEN_GRACE, false), Some(Unwatchable::Pods("pods".into())));
        assert_eq!(h.verdict(t0 + FORBIDDEN_GRACE, true), Some(Unwatchable::Job("jobs".into())));
    }

    #[test]
    fn init_is_no_sign_of_health_but_any_other_event_is() {
        let t0 = Instant::now();
        let mut h = WatchHealth::default();
        h.pod_failed(&api_error(500, "down"), t0);
        h.pod_event(&watcher::Event::Init);
        assert_eq!(h.verdict(t0 + STATE_RECHECK, false), Some(Unwatchable::StateUnknown));
        h.pod_event(&watcher::Event::InitDone);
        assert_eq!(h.verdict(t0 + STATE_RECHECK, false), None);
    }

    #[test]
    fn what_the_pod_watch_showed_is_stale_from_its_error_until_it_delivers_again() {
        let t0 = Instant::now();
        let mut h = WatchHealth::default();
        assert!(!h.pods_failing());
        // The Job's watch failing says nothing of what the pod watch showed.
        h.job_failed(&api_error(500, "down"), t0);
        assert!(!h.pods_failing());
        h.pod_failed(&api_error(500, "down"), t0);
        assert!(h.pods_failing());
        // Nor does the Job's watch coming back, or a re-list only begun.
        h.job_event();
        h.pod_event(&watcher::Event::Init);
        assert!(h.pods_failing());
        h.pod_event(&watcher::Event::InitDone);
        assert!(!h.pods_failing());
    }

    #[test]
    fn the_failing_clock_is_shared_by_both_watches() {
        let t0 = Instant::now();
        let mut h = WatchHealth::default();
        h.pod_failed(&api_error(500, "down"), t0);
        h.job_failed(&api_error(500, "down"), t0 + Duration::from_secs(30));
        assert_eq!(h.verdict(t0 + STATE_RECHECK - Duration::from_millis(1), false), None);
        assert_eq!(h.verdict(t0 + STATE_RECHECK, false), Some(Unwatchable::StateUnknown));
    }

    #[test]
    fn the_job_is_counted_its_deadline_read_and_its_disappearance_told_once() {
        let t0 = Instant::now();
        let mut v = JobView::default();
        assert_eq!(v.observe(Some(job(json!([]))), t0), JobNews::Seen { deadline_exceeded: false });
        let interim = json!([{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"}]);
        assert_eq!(v.observe(Some(job(interim)), t0), JobNews::Seen { deadline_exceeded: true });
        let other = json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]);
        assert_eq!(v.observe(Some(job(other)), t0), JobNews::Seen { deadline_exceeded: false });
        assert_eq!(v.events_seen, 3);
        assert_eq!(v.observe(None, t0 + Duration::from_secs(1)), JobNews::Vanished);
        assert_eq!(v.observe(None, t0 + Duration::from_secs(2)), JobNews::StillGone);
        assert_eq!(v.gone_at, Some(t0 + Duration::from_secs(1)));
        assert!(v.last.is_some(), "the last state survives the Job");
    }

    #[test]
    fn only_a_forbidden_pod_counts_as_refused() {
        let msg = "Error creating: pods \"j-abc\" is forbidden: violates PodSecurity \"restricted:latest\"";
        assert_eq!(refused_pod(event(msg)).as_deref(), Some(msg));
        assert_eq!(refused_pod(event("Error creating: Timeout: request did not complete within requested timeout")), None);
    }
}
