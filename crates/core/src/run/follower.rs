//! The log follower as the run drives it: one task reading the `claude`
//! container's log into the host and the transcript parser, told about the
//! pod through a [`ContainerView`] the pod watch publishes.
//!
//! Why a task: the log is read while the loop in [`super::follow`] keeps
//! watching the pod and the Job, ticking deadlines and polling for
//! cancellation; the follower must not wait on any of that, nor they on it.
//!
//! Invariants:
//! - At most one follower per run, started once (the followed pod is the
//!   run's pod from then on, see [`super::book`]).
//! - The transcript parser has one owner at a time: this struct while no
//!   follower runs, the task while it does; it comes back when the task ends.
//! - The task is aborted when this struct is dropped: a run that ends early
//!   (a failed callback, say) never leaves a follower calling the host after
//!   `execute` has settled.
//! - `view.started` never goes back to false, and `stop` is only ever set.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::sync::watch;
use tokio::task::JoinError;
use tokio_util::task::AbortOnDropHandle;

use super::RunError;
use crate::host::{Host, HostError};
use crate::job_events::EventSink;
use crate::logs::{ContainerView, FollowEnd, FollowStats, LogFollower};
use crate::report::Reporter;
use crate::transcript::TranscriptParser;

/// What the log follower task hands back: how it ended, the parser it fed, its counters.
pub(super) type FollowerOutput = (Result<FollowEnd, HostError>, TranscriptParser, FollowStats);

pub(super) struct Follower {
    view: watch::Sender<ContainerView>,
    /// Never read here: each follower gets a clone, which starts from the
    /// view's first version.
    view_rx: watch::Receiver<ContainerView>,
    task: Option<AbortOnDropHandle<FollowerOutput>>,
    parser: TranscriptParser,
    /// The follower ended without being able to read the log.
    pub(super) unreadable: bool,
    /// Windows in which the log lost lines to rotation.
    pub(super) gaps: Vec<crate::lines::LogGap>,
}

impl Follower {
    pub(super) fn new(model: &str) -> Self {
        let (view, view_rx) = watch::channel(ContainerView::default());
        Follower { view, view_rx, task: None, parser: TranscriptParser::new(model), unreadable: false, gaps: Vec::new() }
    }

    /// What the follower was last told about the pod.
    pub(super) fn view(&self) -> ContainerView {
        *self.view.borrow()
    }

    pub(super) fn is_running(&self) -> bool {
        self.task.is_some()
    }

    /// Starts following `pod`'s log, handing the task the parser.
    pub(super) fn start<H: Host + 'static>(&mut self, pods: Api<Pod>, pod: String, reporter: Arc<Reporter<H>>, events: EventSink) {
        let parser = std::mem::replace(&mut self.parser, TranscriptParser::new(""));
        self.task = Some(spawn_follower(pods, pod, reporter, events, self.view_rx.clone(), parser));
    }

    /// Tells the follower (running or yet to start) to stop now.
    pub(super) fn stop(&self) {
        self.view.send_modify(|v| v.stop = true);
    }

    /// Publishes what the pod watch saw; wakes the follower only on a change.
    pub(super) fn publish(&self, spawned: bool, terminated: bool, pod_gone: bool) {
        self.view.send_if_modified(|v| {
            let new = next_view(*v, spawned, terminated, pod_gone);
            let changed = new != *v;
            *v = new;
            changed
        });
    }

    /// The running task's end, for the loop's `select!`. Panics if none
    /// runs: guard the branch with [`Follower::is_running`].
    pub(super) async fn ended(&mut self) -> Result<FollowerOutput, JoinError> {
        self.task.as_mut().expect("guarded").await
    }

    /// Takes back what the ended task returned: the parser, and how it ended
    /// (a failed callback is the run's error).
    pub(super) fn on_ended(&mut self, joined: Result<FollowerOutput, JoinError>) -> Result<FollowEnd, RunError> {
        self.task = None;
        match joined {
            Ok((end, parser, stats)) => {
                self.parser = parser;
                self.gaps.extend(stats.gaps);
                Ok(end?)
            }
            Err(e) => Err(RunError::Setup(format!("log follower failed: {e}"))),
        }
    }

    /// Stops the follower and waits for it, whatever it ended with (the run
    /// is settled already: cancelled, or its state unknowable).
    pub(super) async fn abandon(&mut self) {
        self.stop();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Stops a follower still running, waits for it, and returns the parser
    /// with everything the log fed it.
    pub(super) async fn finish(mut self) -> Result<(TranscriptParser, Vec<crate::lines::LogGap>), RunError> {
        if let Some(t) = self.task.take() {
            self.stop();
            if let Ok((end, parser, stats)) = t.await {
                self.parser = parser;
                self.gaps.extend(stats.gaps);
                end?;
            }
        }
        Ok((self.parser, self.gaps))
    }
}

/// The view after a pod event: `started` latches once the log is followed,
/// `stop` is kept as it was.
fn next_view(v: ContainerView, spawned: bool, terminated: bool, pod_gone: bool) -> ContainerView {
    ContainerView { started: v.started || spawned, terminated, pod_gone, stop: v.stop }
}

fn spawn_follower<H: Host + 'static>(
    pods: Api<Pod>,
    pod: String,
    reporter: Arc<Reporter<H>>,
    events: EventSink,
    view: watch::Receiver<ContainerView>,
    mut parser: TranscriptParser,
) -> AbortOnDropHandle<FollowerOutput> {
    // A span of its own, inside the run's (a spawned task does not inherit it).
    let span = tracing::info_span!("log", %pod);
    AbortOnDropHandle::new(tokio::spawn(tracing::Instrument::instrument(
        async move {
            let mut follower = LogFollower::new(pods, pod, reporter).with_events(events);
            let end = follower.run(&mut parser, view).await;
            (end, parser, follower.stats)
        },
        span,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_latches_and_stop_is_kept() {
        let stopped = ContainerView { stop: true, ..ContainerView::default() };
        let v = next_view(stopped, true, false, false);
        assert_eq!(v, ContainerView { started: true, terminated: false, pod_gone: false, stop: true });
        // The followed pod disappears from the book: started stays.
        assert_eq!(next_view(v, true, false, true), ContainerView { started: true, pod_gone: true, stop: true, terminated: false });
        assert!(!next_view(ContainerView::default(), false, true, false).started, "a terminated pod nobody follows is not started");
    }

    #[tokio::test]
    async fn publish_wakes_the_follower_only_on_a_change_and_stop_wins() {
        let f = Follower::new("m");
        let mut rx = f.view_rx.clone();
        f.publish(false, false, false);
        assert!(!rx.has_changed().unwrap(), "nothing new: no wake-up");
        f.publish(true, false, false);
        assert!(rx.has_changed().unwrap());
        assert!(rx.borrow_and_update().started);
        f.stop();
        f.publish(true, true, false);
        let v = *rx.borrow_and_update();
        assert!(v.stop && v.terminated && v.started);
        assert_eq!(f.view(), v);
    }

    #[tokio::test]
    async fn without_a_task_the_parser_is_handed_back_untouched() {
        let mut f = Follower::new("claude-x");
        assert!(!f.is_running());
        f.abandon().await;
        assert!(f.view().stop, "abandon tells a follower yet to start to stop too");
        let (parser, _) = f.finish().await.unwrap();
        assert!(parser.finish().result_json.is_none());
    }
}
