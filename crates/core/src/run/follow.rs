//! Following a started Job to its end: a loop over what happens next — a
//! pod event, a Job event, the log follower's end, a cancellation, a
//! deadline, a tick — and, once it ends, the outcome.
//!
//! The loop is a small state machine in the manner of kube-runtime's
//! `watcher`: [`Following::next`] waits for one [`Happening`] (the only
//! place that waits on the world), [`Following::on`] applies it and says
//! what comes [`Next`], and after each happening that did not end the run,
//! [`Following::after_each`] asks whether the host cancelled or the watches
//! can no longer tell us anything.
//!
//! Invariants:
//! - The loop ends in exactly one of four ways: the log is drained (or
//!   cannot be read and the container ended), which maps the outcome from
//!   the facts; the run is abandoned with an adapter error; the run is
//!   cancelled (the Job deleted, the follower stopped first); or the Job's
//!   state is unknowable (the Job retained for the UI).
//! - Host calls happen in one order: a pod's description line, then the
//!   node's silence (or return), then whatever the follower reports once it
//!   is told the pod's state.
//! - Deadlines are timers, never polls of the apiserver: the schedule
//!   timeout, the run deadline (`timeoutSec + graceSec`), the lost-node
//!   timeout, the drain after the Job vanished, the wait for a first pod.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tracing::Instrument;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use kube::Api;
use kube::runtime::watcher;
use tokio::task::JoinError;
use tokio::time::{Interval, Sleep};

use super::book::PodBook;
use super::follower::{Follower, FollowerOutput};
use super::watches::{self, JobEvents, JobNews, JobView, PodEvents, RefusalEvents, Unwatchable, WatchHealth};
use super::{RunError, Running, delete_job, facts};
use crate::cancel::{self, CancelProbe, Poll};
use crate::config::AdapterConfig;
use crate::ctx::RunContext;
use crate::host::Host;
use crate::job_events::Milestone;
use crate::logs::FollowEnd;
use crate::outcome::{RunResult, map_outcome};
use crate::pod::{self, NodeSilence, PodProgress};
use crate::report::Reporter;

/// How often the keepalive line is considered.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// After the Job vanished, how long the log may still drain.
const JOB_GONE_DRAIN: Duration = Duration::from_secs(10);
/// How long a new Job may be without a pod before its events are read for
/// a refused pod (Pod Security, a quota, a LimitRange). The Job controller
/// creates the pod within milliseconds; admission refuses it as fast, and
/// only says so in a `FailedCreate` event: the Job itself shows nothing.
const NO_POD_YET: Duration = Duration::from_secs(3);
/// A timer that is not armed (yet).
const NEVER: Duration = Duration::from_secs(u64::MAX / 4);

/// What following the run produced.
pub(super) struct Followed {
    pub(super) result: RunResult,
    /// Keep the Job (state mismatch: the UI is waiting on it).
    pub(super) retain: bool,
    /// The Job is already gone (cancelled and deleted, or deleted externally).
    pub(super) job_already_deleted: bool,
}

/// One thing that happened, as the loop's `select!` picked it.
// As large as the select!'s own output was: one value at a time, on the
// stack, moved straight into its handler.
#[allow(clippy::large_enum_variant)]
enum Happening {
    Pods(Option<Result<watcher::Event<Pod>, watcher::Error>>),
    Job(Option<Result<Option<Job>, watcher::Error>>),
    LogEnded(Result<FollowerOutput, JoinError>),
    /// The Job has been without a pod for [`NO_POD_YET`].
    NoPodYet,
    Refusal(Option<Result<watcher::Event<CoreEvent>, watcher::Error>>),
    ScheduleTimeout,
    RunDeadline,
    NodeLost,
    JobGoneDrained,
    CancelPoll,
    HostCancelled,
    Keepalive,
}

/// What the loop does after a happening.
enum Next {
    Wait,
    /// The log is done with: map the outcome.
    Drained,
    /// End the run with this adapter error.
    Abandon(RunResult),
    /// The run is settled already (cancelled, or its state unknowable).
    Settled(Followed),
}

/// Puts a timer back to waiting [`NEVER`].
fn disarm(timer: &mut Pin<Box<Sleep>>) {
    timer.as_mut().reset(tokio::time::Instant::now() + NEVER);
}

/// The run's timers. Unarmed ones wait [`NEVER`].
struct Timers {
    schedule: Pin<Box<Sleep>>,
    /// `timeoutSec + graceSec`, when there is a timeout.
    run: Pin<Box<Sleep>>,
    run_limit: Option<Duration>,
    node_lost: Pin<Box<Sleep>>,
    node_lost_limit: Option<Duration>,
    job_gone_drain: Pin<Box<Sleep>>,
    no_pod_yet: Pin<Box<Sleep>>,
    keepalive: Interval,
    cancel_poll: Interval,
}

impl Timers {
    fn new(cfg: &AdapterConfig) -> Self {
        let node_lost_limit = (cfg.node_lost_timeout_sec > 0).then(|| Duration::from_secs(cfg.node_lost_timeout_sec as u64));
        let run_limit = (cfg.timeout_sec > 0).then(|| Duration::from_secs((cfg.timeout_sec + cfg.grace_sec.max(0)) as u64));
        let now = tokio::time::Instant::now;
        Timers {
            node_lost: Box::pin(tokio::time::sleep(NEVER)),
            node_lost_limit,
            schedule: Box::pin(tokio::time::sleep(Duration::from_secs(pod::SCHEDULE_TIMEOUT_SECS))),
            run: Box::pin(tokio::time::sleep(run_limit.unwrap_or(NEVER))),
            run_limit,
            keepalive: tokio::time::interval_at(now() + KEEPALIVE_INTERVAL, KEEPALIVE_INTERVAL),
            cancel_poll: tokio::time::interval_at(now() + cancel::POLL_INTERVAL, cancel::POLL_INTERVAL),
            job_gone_drain: Box::pin(tokio::time::sleep(NEVER)),
            no_pod_yet: Box::pin(tokio::time::sleep(NO_POD_YET)),
        }
    }
}

/// Follows `run` until it ends, then maps its outcome.
pub(super) async fn follow<H: Host + 'static>(
    rc: &RunContext,
    cfg: &AdapterConfig,
    run: &Running,
    reporter: &Arc<Reporter<H>>,
    probe: Option<CancelProbe>,
) -> Result<Followed, RunError> {
    let mut f = Following::new(cfg, run, reporter, probe);
    let early = loop {
        let happening = f.next().await;
        let next = match f.on(happening).await? {
            Next::Wait => f.after_each().await?,
            other => other,
        };
        match next {
            Next::Wait => {}
            Next::Drained => break None,
            Next::Abandon(result) => break Some(result),
            Next::Settled(followed) => return Ok(followed),
        }
    };
    f.schedule_span = None;
    f.conclude(rc, early).instrument(tracing::info_span!("outcome")).await
}

/// The state of one run being followed.
struct Following<'a, H: Host> {
    cfg: &'a AdapterConfig,
    run: &'a Running,
    reporter: &'a Arc<Reporter<H>>,
    probe: Option<CancelProbe>,
    host_cancel: crate::host::CancellationToken,
    pods: Api<Pod>,
    pod_events: PodEvents,
    job_events: JobEvents,
    /// The Job's `FailedCreate` events, watched only once it has gone
    /// [`NO_POD_YET`] without a pod.
    refusals: Option<RefusalEvents>,
    refusals_opened: bool,
    timers: Timers,
    follower: Follower,
    book: PodBook,
    health: WatchHealth,
    job: JobView,
    /// The pod last seen as the run's (named in the lost-node error).
    pod_name: Option<String>,
    last_description: String,
    /// The log follower was started (once, for good).
    spawned: bool,
    pod_running_at: Option<Instant>,
    /// Open from the start of following until the pod runs: its close (the
    /// subscriber's `time.idle`) is how long scheduling, the image pull and
    /// the container's start took.
    schedule_span: Option<tracing::Span>,
    /// Since when the pod's node has been silent (see `pod::node_silence`).
    node_silent: Option<NodeSilence>,
    /// The lost-node timer ran out while the pod watch was failing: the node
    /// may have come back unseen, so the timer starts again once the pod
    /// watch sees again (or the watches' own verdict, `StateUnknown`, ends
    /// the run first).
    node_lost_unconfirmed: bool,
    timed_out: bool,
    cancelled_by: Option<&'static str>,
    /// The run's pods (name, uid) its egress policy has been made to belong
    /// to: the policy outlives each of them (see `super::own_egress_policy`).
    policy_pods: Vec<(String, String)>,
}

impl<'a, H: Host + 'static> Following<'a, H> {
    fn new(cfg: &'a AdapterConfig, run: &'a Running, reporter: &'a Arc<Reporter<H>>, probe: Option<CancelProbe>) -> Self {
        Following {
            cfg,
            run,
            reporter,
            probe,
            host_cancel: reporter.cancellation(),
            pods: Api::namespaced(run.client.clone(), &run.namespace),
            pod_events: watches::pod_events(run),
            job_events: watches::job_events(run),
            refusals: None,
            refusals_opened: false,
            follower: Follower::new(cfg.model.as_deref().unwrap_or_default()),
            book: PodBook::default(),
            health: WatchHealth::default(),
            job: JobView::default(),
            pod_name: None,
            last_description: String::new(),
            spawned: false,
            pod_running_at: None,
            schedule_span: Some(tracing::info_span!("schedule")),
            node_silent: None,
            node_lost_unconfirmed: false,
            timed_out: false,
            cancelled_by: None,
            policy_pods: Vec::new(),
            timers: Timers::new(cfg),
        }
    }

    /// Waits for the next happening. Each branch's guard says when it can happen.
    async fn next(&mut self) -> Happening {
        let started = self.follower.view().started;
        let t = &mut self.timers;
        tokio::select! {
            ev = self.pod_events.next() => Happening::Pods(ev),
            ev = self.job_events.next() => Happening::Job(ev),
            joined = self.follower.ended(), if self.follower.is_running() => Happening::LogEnded(joined),
            _ = &mut t.no_pod_yet, if !self.refusals_opened && !self.book.ever_seen && !self.run.reattached && self.run.job_uid.is_some() => Happening::NoPodYet,
            ev = async { self.refusals.as_mut().expect("guarded").next().await }, if self.refusals.is_some() && !self.book.ever_seen => Happening::Refusal(ev),
            _ = &mut t.schedule, if !started && !self.spawned && self.job.gone_at.is_none() => Happening::ScheduleTimeout,
            _ = &mut t.run, if t.run_limit.is_some() => Happening::RunDeadline,
            _ = &mut t.node_lost, if self.node_silent.is_some() && t.node_lost_limit.is_some() => Happening::NodeLost,
            _ = &mut t.job_gone_drain, if self.job.gone_at.is_some() => Happening::JobGoneDrained,
            _ = t.cancel_poll.tick(), if self.probe.is_some() => Happening::CancelPoll,
            _ = self.host_cancel.cancelled(), if self.cancelled_by.is_none() => Happening::HostCancelled,
            _ = t.keepalive.tick() => Happening::Keepalive,
        }
    }

    async fn on(&mut self, happening: Happening) -> Result<Next, RunError> {
        match happening {
            Happening::Pods(ev) => self.on_pods(ev).await,
            Happening::Job(ev) => {
                self.on_job(ev);
                Ok(Next::Wait)
            }
            Happening::LogEnded(joined) => self.on_log_ended(joined).await,
            Happening::NoPodYet => {
                self.refusals_opened = true;
                self.refusals = Some(watches::refusal_events(self.run));
                Ok(Next::Wait)
            }
            Happening::Refusal(ev) => Ok(self.on_refusal(ev)),
            Happening::ScheduleTimeout => {
                let detail = format!("Timed out waiting for pod to be scheduled ({}s)", pod::SCHEDULE_TIMEOUT_SECS);
                Ok(Next::Abandon(wait_failed(self.run.reattached, &detail)))
            }
            // A deadline fires once: an elapsed `Sleep` stays ready, so it is
            // disarmed, or the loop would spin (re-sending `stop`) until a
            // follower held up by a slow host callback ends.
            Happening::RunDeadline => {
                self.timed_out = true;
                disarm(&mut self.timers.run);
                Ok(self.stop_following())
            }
            // The node lifecycle controller's mark is a fact only while we
            // can see it stand. After kube-apiserver comes back from an
            // outage, the controller runs on stale caches for tens of seconds
            // and marks pods of a node that is reporting (seen on the real
            // node: a pod started 17 s after the kubelet posted Ready); the
            // kubelet clears the mark on its next status sync. If the
            // apiserver went away again meanwhile, the timer would call a
            // healthy node lost on a mark nobody could see lifted.
            Happening::NodeLost if self.health.pods_failing() => {
                disarm(&mut self.timers.node_lost);
                self.node_lost_unconfirmed = true;
                tracing::info!("lost-node timer ran out while the pod watch fails; restarted when the pods are seen again");
                Ok(Next::Wait)
            }
            Happening::NodeLost => Ok(Next::Abandon(self.node_lost())),
            Happening::JobGoneDrained => {
                disarm(&mut self.timers.job_gone_drain);
                Ok(self.stop_following())
            }
            Happening::CancelPoll => {
                match self.probe.as_ref().expect("guarded").poll().await {
                    Poll::Cancelled => {
                        tracing::info!("cancelled through the host's API");
                        self.cancelled_by = Some("externally")
                    }
                    Poll::Transient(msg) => self.reporter.warn(msg).await?,
                    Poll::KeepGoing => {}
                }
                Ok(Next::Wait)
            }
            Happening::HostCancelled => {
                tracing::info!("cancelled by the host");
                self.cancelled_by = Some("by the host");
                Ok(Next::Wait)
            }
            Happening::Keepalive => {
                self.keepalive().await?;
                Ok(Next::Wait)
            }
        }
    }

    /// A deadline passed: the log is read no further; once the follower has
    /// stopped, the run is mapped as it stands.
    fn stop_following(&mut self) -> Next {
        self.follower.stop();
        if self.follower.is_running() { Next::Wait } else { Next::Drained }
    }

    async fn on_pods(&mut self, ev: Option<Result<watcher::Event<Pod>, watcher::Error>>) -> Result<Next, RunError> {
        // Whether the book now holds the pods as they are: a watch event, or
        // the end of a re-list (its `InitApply`s are only part of it).
        let mut current_state = false;
        match ev {
            Some(Ok(ev)) => {
                self.health.pod_event(&ev);
                current_state = matches!(ev, watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone);
                self.book.apply(ev);
            }
            Some(Err(e)) => {
                self.health.pod_failed(&e, Instant::now());
                tracing::debug!(error = %e, "pod watch error");
            }
            None => {}
        }
        let current = self.book.current().cloned();
        if let Some(p) = &current
            && let Some(failed) = self.on_run_pod(p).await?
        {
            return Ok(Next::Abandon(failed));
        }
        self.on_node(current.as_ref().and_then(pod::node_silence)).await?;
        if self.node_lost_unconfirmed && current_state {
            // Seen again. Lifted, the node is back (said above). Still marked,
            // the mark may be the one the controller set on stale caches and
            // the kubelet has not re-synced yet: it must stand a whole
            // timeout in view before the node is called lost.
            self.node_lost_unconfirmed = false;
            if self.node_silent.is_some()
                && let Some(l) = self.timers.node_lost_limit
            {
                self.timers.node_lost.as_mut().reset(tokio::time::Instant::now() + l);
            }
        }
        let terminated = current.as_ref().is_some_and(|p| pod::claude_terminated(p).is_some());
        let gone = self.book.ever_seen && current.is_none();
        self.follower.publish(self.spawned, terminated, gone);
        if self.follower.unreadable && (terminated || gone) {
            return Ok(Next::Drained);
        }
        if self.run.reattached && !self.spawned && self.book.listed_once && !self.book.ever_seen {
            let detail = format!("Reattach target Job {} has no pod", self.run.job_name);
            return Ok(Next::Abandon(wait_failed(true, &detail)));
        }
        Ok(Next::Wait)
    }

    /// The run's pod as it is now: its description line when it changed, and
    /// the start of the log follower (or the end of the wait for it).
    async fn on_run_pod(&mut self, p: &Pod) -> Result<Option<RunResult>, RunError> {
        let name = p.metadata.name.clone().unwrap_or_default();
        let description = pod::describe(p);
        if description != self.last_description {
            self.reporter.info(format!("Pod {name}: {description}")).await?;
            self.last_description = description;
        }
        if self.pod_name.as_deref() != Some(name.as_str()) {
            self.pod_name = Some(name.clone());
        }
        if self.run.egress_policy.is_some()
            && let Some(uid) = p.metadata.uid.as_ref()
            && !self.policy_pods.iter().any(|(_, u)| u == uid)
        {
            self.policy_pods.push((name.clone(), uid.clone()));
            if let Err(e) = super::own_egress_policy(self.run, &self.policy_pods).await {
                self.reporter.warn(format!("Warning: could not make the egress NetworkPolicy outlive pod {name}: {e}")).await?;
            }
        }
        match pod::assess(p) {
            PodProgress::Started if !self.spawned => {
                tracing::info!(pod = %name, node = p.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or_default(), "pod running; following its log");
                self.spawned = true;
                self.book.followed = Some(name.clone());
                self.pod_running_at = Some(Instant::now());
                self.schedule_span = None;
                self.follower.start(self.pods.clone(), name, self.reporter.clone(), self.run.events.clone());
            }
            PodProgress::Failed(msg) if !self.spawned => {
                return Ok(Some(wait_failed(self.run.reattached, &msg)));
            }
            _ => {}
        }
        Ok(None)
    }

    /// Reports the node going silent (and arms the lost-node timer) or coming back.
    async fn on_node(&mut self, silence: Option<NodeSilence>) -> Result<(), RunError> {
        match node_change(silence, self.node_silent.as_ref()) {
            Some(NodeChange::Silent(silence)) => {
                let since = silence.since.as_deref().unwrap_or("now");
                let wait = match self.timers.node_lost_limit {
                    Some(l) => format!("the run is given up in {}s unless it comes back", l.as_secs()),
                    None => "waiting for it (nodeLostTimeoutSec is 0)".to_owned(),
                };
                self.reporter
                    .warn(format!("Warning: node {} stopped reporting (pod not ready since {since}); {wait}", silence.node))
                    .await?;
                if let Some(l) = self.timers.node_lost_limit {
                    self.timers.node_lost.as_mut().reset(tokio::time::Instant::now() + l);
                }
                self.node_silent = Some(silence);
            }
            Some(NodeChange::Back) => {
                let node = self.node_silent.as_ref().map(|s| s.node.as_str()).unwrap_or_default();
                self.reporter.info(format!("Node {node} is reporting again")).await?;
                self.node_silent = None;
            }
            None => {}
        }
        Ok(())
    }

    fn on_job(&mut self, ev: Option<Result<Option<Job>, watcher::Error>>) {
        match ev {
            Some(Ok(state)) => {
                self.health.job_event();
                match self.job.observe(state, Instant::now()) {
                    JobNews::Seen { deadline_exceeded: true } => self.timed_out = true,
                    JobNews::Vanished => {
                        self.timers.job_gone_drain.as_mut().reset(tokio::time::Instant::now() + JOB_GONE_DRAIN);
                        if !self.spawned {
                            // Nothing will ever run: stop waiting for a pod.
                            self.follower.stop();
                        }
                    }
                    JobNews::Seen { .. } | JobNews::StillGone => {}
                }
            }
            Some(Err(e)) => {
                self.health.job_failed(&e, Instant::now());
                tracing::debug!(error = %e, "job watch error");
            }
            None => {}
        }
    }

    async fn on_log_ended(&mut self, joined: Result<FollowerOutput, JoinError>) -> Result<Next, RunError> {
        match self.follower.on_ended(joined)? {
            // No log to read: still wait for the container's exit code.
            FollowEnd::Unreadable(msg) => {
                self.reporter.warn(format!("Warning: could not read the pod's log: {msg}")).await?;
                self.follower.unreadable = true;
                // The container may have ended already: no pod event will come.
                let v = self.follower.view();
                Ok(if v.terminated || v.pod_gone { Next::Drained } else { Next::Wait })
            }
            _ => Ok(Next::Drained),
        }
    }

    fn on_refusal(&mut self, ev: Option<Result<watcher::Event<CoreEvent>, watcher::Error>>) -> Next {
        match ev {
            Some(Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e))) => {
                if let Some(msg) = watches::refused_pod(e) {
                    self.run.events.note(Milestone::PodRefused { message: msg.clone() });
                    return Next::Abandon(RunResult::error(
                        "k8s_job_create_failed",
                        &format!("Failed to create Kubernetes Job: Job {} was created but its pod was refused — {msg}", self.run.job_name),
                    ));
                }
            }
            Some(Err(e)) => {
                // No right to read events (or they fail): the schedule timeout still ends the wait.
                tracing::debug!(error = %e, "events watch failed; not watching for refused pods");
                self.refusals = None;
            }
            None => self.refusals = None,
            Some(Ok(_)) => {}
        }
        Next::Wait
    }

    fn node_lost(&self) -> RunResult {
        let silence = self.node_silent.as_ref().expect("guarded");
        let pod = self.pod_name.as_deref().unwrap_or("?");
        RunResult::error(
            "k8s_node_lost",
            &format!(
                "Node {} stopped reporting: pod {pod} has been marked not ready by the node controller since {} while claude was still running, and the node did not come back within {}s (nodeLostTimeoutSec); the run is abandoned and Job {} {}",
                silence.node,
                silence.since.as_deref().unwrap_or("an unknown time"),
                self.cfg.node_lost_timeout_sec,
                self.run.job_name,
                if self.cfg.retain_jobs { "kept (retainJobs)" } else { "deleted" },
            ),
        )
    }

    async fn keepalive(&mut self) -> Result<(), RunError> {
        if self.spawned {
            let silent = self.reporter.since_last_log().as_secs();
            if silent >= KEEPALIVE_INTERVAL.as_secs() {
                self.reporter.info(format!("keepalive — job {} running ({silent}s since last output)", self.run.job_name)).await?;
            }
        }
        Ok(())
    }

    /// After a happening that did not end the run: a cancellation settles
    /// it; a watch the Role forbids will not start working by waiting, so
    /// say so now, in the words of the step that needed it.
    async fn after_each(&mut self) -> Result<Next, RunError> {
        if let Some(by) = self.cancelled_by {
            return Ok(Next::Settled(self.cancel(by).await?));
        }
        Ok(match self.health.verdict(Instant::now(), self.spawned) {
            None => Next::Wait,
            Some(Unwatchable::Pods(msg)) => {
                let detail = format!("cannot watch the Job's pods (the Role must allow list and watch on pods): {msg}");
                Next::Abandon(wait_failed(self.run.reattached, &detail))
            }
            Some(Unwatchable::Job(msg)) => Next::Abandon(RunResult::error(
                "k8s_job_state_mismatch",
                &format!("Job {} cannot be followed (the Role must allow list and watch on jobs): {msg}", self.run.job_name),
            )),
            Some(Unwatchable::StateUnknown) => {
                self.follower.abandon().await;
                Next::Settled(Followed {
                    result: RunResult::error_with_exit(
                        "k8s_job_state_mismatch",
                        &format!("Job {} did not complete cleanly (log stream ended before job reached terminal state)", self.run.job_name),
                        None,
                    ),
                    retain: true,
                    job_already_deleted: false,
                })
            }
        })
    }

    async fn cancel(&mut self, by: &str) -> Result<Followed, RunError> {
        self.reporter.info(format!("Run cancelled {by} — deleting Job {}", self.run.job_name)).await?;
        self.follower.abandon().await;
        // Acknowledge only what is true: the Job (and so its pod) is gone.
        let result = if delete_job(self.run, self.reporter).await {
            RunResult::cancelled_acknowledged("k8s_job_deleted")
        } else {
            RunResult::cancelled()
        };
        Ok(Followed { result, retain: false, job_already_deleted: true })
    }

    /// The loop has ended: stop the follower, and map the outcome (unless
    /// the run was abandoned with an error already).
    async fn conclude(self, rc: &RunContext, early: Option<RunResult>) -> Result<Followed, RunError> {
        let job_already_deleted = self.job.gone_at.is_some();
        let (parser, lost) = self.follower.finish().await?;
        if let Some(result) = early {
            return Ok(Followed { result, retain: false, job_already_deleted });
        }
        let termination = facts::termination(&self.book);
        let transcript = parser.finish();
        let seen = facts::Observed { book: &self.book, job: &self.job, timed_out: self.timed_out, pod_running_at: self.pod_running_at };
        let facts = facts::run_facts(rc, self.cfg, &self.run.job_name, &self.run.namespace, &seen, Instant::now());
        if facts::transcript_is_unknown_session(&facts, &transcript, termination.as_ref()) {
            self.reporter.info("Claude session is unavailable; clearing for next run.").await?;
        }
        if let Some(warning) = termination.as_ref().and_then(|t| t.oom_warning()) {
            self.reporter.warn(&warning).await?;
        }
        let mut result = map_outcome(&facts, &transcript, termination.as_ref());
        crate::outcome::annotate(&mut result, &lost, termination.as_ref());
        Ok(Followed { result, retain: false, job_already_deleted })
    }
}

/// The wait for the pod failed: in the words of scheduling, or of reattaching.
fn wait_failed(reattached: bool, detail: &str) -> RunResult {
    let (code, prefix) =
        if reattached { ("k8s_pod_reattach_failed", "Pod reattach failed") } else { ("k8s_pod_schedule_failed", "Pod scheduling failed") };
    RunResult::error(code, &format!("{prefix}: {detail}"))
}

/// How the node's silence changed with a pod event.
#[derive(Debug, PartialEq, Eq)]
enum NodeChange {
    /// It went silent (reported once, however many events show it).
    Silent(NodeSilence),
    /// It reports again.
    Back,
}

fn node_change(now: Option<NodeSilence>, was: Option<&NodeSilence>) -> Option<NodeChange> {
    match (now, was) {
        (Some(silence), None) => Some(NodeChange::Silent(silence)),
        (None, Some(_)) => Some(NodeChange::Back),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An elapsed deadline stays ready until disarmed; disarmed, it no longer fires.
    #[tokio::test(start_paused = true)]
    async fn a_disarmed_deadline_stops_firing() {
        let mut t: Pin<Box<Sleep>> = Box::pin(tokio::time::sleep(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_secs(2)).await;
        (&mut t).await;
        assert!(t.is_elapsed(), "still ready: a select! branch on it fires every pass");
        disarm(&mut t);
        assert!(!t.is_elapsed());
        assert!(tokio::time::timeout(Duration::from_secs(3600), &mut t).await.is_err());
    }

    fn silence(node: &str) -> NodeSilence {
        NodeSilence { node: node.into(), since: Some("2026-12-02T10:00:00Z".into()) }
    }

    #[test]
    fn the_wait_fails_in_the_words_of_its_step() {
        let r = wait_failed(false, "Pod unschedulable: 0/1 nodes");
        assert_eq!(r.error_code.as_deref(), Some("k8s_pod_schedule_failed"));
        assert_eq!(r.error_message.as_deref(), Some("Pod scheduling failed: Pod unschedulable: 0/1 nodes"));
        let r = wait_failed(true, "Reattach target Job j has no pod");
        assert_eq!(r.error_code.as_deref(), Some("k8s_pod_reattach_failed"));
        assert_eq!(r.error_message.as_deref(), Some("Pod reattach failed: Reattach target Job j has no pod"));
        assert_eq!((r.exit_code, r.signal), (None, None));
    }

    #[test]
    fn a_silent_node_is_told_once_and_its_return_once() {
        assert_eq!(node_change(Some(silence("n1")), None), Some(NodeChange::Silent(silence("n1"))));
        // Still silent: every later pod event says so again, nothing new to report.
        assert_eq!(node_change(Some(silence("n1")), Some(&silence("n1"))), None);
        assert_eq!(node_change(None, Some(&silence("n1"))), Some(NodeChange::Back));
        assert_eq!(node_change(None, None), None);
    }
}
