//! The pods of the run's Job, as the pod watch shows them.
//!
//! Why a book and not "the latest pod event": the watcher re-lists after a
//! gap, a pod can be deleted before its last update reached us, and (on old
//! Job controllers) a replacement pod can appear after the one we followed
//! went away. The book answers two questions through all of that:
//! [`PodBook::current`] — the run's pod while it exists — and
//! [`PodBook::last_known`] — its last state, live or departed, which is where
//! the exit code comes from.
//!
//! Invariants:
//! - Once a pod is followed, it alone is the run's pod; no other pod of the
//!   Job is ever taken for it.
//! - A pod that leaves (a `Delete`, or missing from a relist) keeps its last
//!   state in `departed`: an exit code seen once is never forgotten.
//! - Memory is bounded by the pods of one Job.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;

/// The pods of our Job as the watch shows them.
#[derive(Default)]
pub(super) struct PodBook {
    pods: HashMap<String, Pod>,
    listing: Vec<String>,
    pub(super) ever_seen: bool,
    /// The first list has completed (so "no pod" is a fact, not a gap).
    pub(super) listed_once: bool,
    /// The last state seen of each pod that is gone. Another reader of the
    /// same Job (a reattached run, or the run we reattached from) may delete
    /// the Job the moment its container ends, before our watch delivered the
    /// terminated status as an update: the delete event still carries it.
    /// Bounded by the pods of one Job.
    departed: HashMap<String, Pod>,
    /// The pod whose `claude` is being followed. From then on it *is* the
    /// run's pod: a pod the Job controller starts after it went away is
    /// another, unattended run of the turn — never followed, and deleted
    /// with the Job. Only controllers before pod tracking with finalizers
    /// (GA in 1.26) do that with `backoffLimit: 0`: 1.20's replaces a pod
    /// deleted mid-run because it never counted it failed; 1.37's counts it
    /// (`FailureTarget`, `BackoffLimitExceeded`) and starts none.
    pub(super) followed: Option<String>,
}

fn newest<'a>(pods: impl Iterator<Item = &'a Pod>) -> Option<&'a Pod> {
    pods.max_by(|a, b| a.metadata.creation_timestamp.cmp(&b.metadata.creation_timestamp))
}

impl PodBook {
    pub(super) fn apply(&mut self, ev: watcher::Event<Pod>) {
        use watcher::Event;
        match ev {
            Event::Init => self.listing.clear(),
            Event::InitApply(p) => {
                let name = p.metadata.name.clone().unwrap_or_default();
                self.listing.push(name.clone());
                self.ever_seen = true;
                self.pods.insert(name, p);
            }
            Event::InitDone => {
                let listed = std::mem::take(&mut self.listing);
                let gone: Vec<String> = self.pods.keys().filter(|n| !listed.contains(n)).cloned().collect();
                for n in gone {
                    if let Some(p) = self.pods.remove(&n) {
                        self.departed.insert(n, p);
                    }
                }
                self.listed_once = true;
            }
            Event::Apply(p) => {
                self.ever_seen = true;
                self.pods.insert(p.metadata.name.clone().unwrap_or_default(), p);
            }
            Event::Delete(p) => {
                let name = p.metadata.name.clone().unwrap_or_default();
                self.pods.remove(&name);
                self.departed.insert(name, p);
            }
        }
    }

    /// The run's pod while it exists: the followed one, or before that the
    /// newest (with `backoffLimit: 0` there is one).
    pub(super) fn current(&self) -> Option<&Pod> {
        match &self.followed {
            Some(name) => self.pods.get(name),
            None => newest(self.pods.values()),
        }
    }

    /// The current pod, or else the last state of the one that went away.
    pub(super) fn last_known(&self) -> Option<&Pod> {
        match &self.followed {
            Some(name) => self.pods.get(name).or_else(|| self.departed.get(name)),
            None => self.current().or_else(|| newest(self.departed.values())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod;
    use kube::runtime::watcher::Event;

    fn pod(name: &str, exit: Option<i32>) -> Pod {
        let state = match exit {
            Some(c) => serde_json::json!({"terminated": {"exitCode": c}}),
            None => serde_json::json!({"running": {}}),
        };
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"containerStatuses": [{"name": "claude", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": state}]}
        }))
        .unwrap()
    }

    fn exit_of(book: &PodBook) -> Option<i32> {
        book.last_known().and_then(pod::claude_terminated).map(|t| t.exit_code)
    }

    #[test]
    fn a_deleted_pod_keeps_its_exit_code() {
        // The regression: a reattached run saw the exit, then the other run
        // deleted the Job; the exit code must survive the delete event.
        let mut book = PodBook::default();
        book.apply(Event::Apply(pod("p", None)));
        book.apply(Event::Apply(pod("p", Some(0))));
        book.apply(Event::Delete(pod("p", Some(0))));
        assert!(book.current().is_none());
        assert_eq!(exit_of(&book), Some(0));
    }

    #[test]
    fn a_pod_missing_from_a_relist_is_departed_not_forgotten() {
        let mut book = PodBook::default();
        book.apply(Event::Apply(pod("p", Some(3))));
        book.apply(Event::Init);
        book.apply(Event::InitDone);
        assert!(book.current().is_none());
        assert_eq!(exit_of(&book), Some(3));
        // A live pod is preferred over a departed one.
        book.apply(Event::Apply(pod("q", None)));
        assert_eq!(exit_of(&book), None);
    }

    #[test]
    fn a_replacement_pod_is_not_taken_for_the_followed_one() {
        let mut book = PodBook::default();
        book.apply(Event::Apply(pod("p", None)));
        book.followed = Some("p".into());
        // p is evicted; the Job controller starts q anyway.
        book.apply(Event::Delete(pod("p", Some(137))));
        let mut q = pod("q", None);
        q.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-01-01T00:01:00Z".parse().unwrap()));
        book.apply(Event::Apply(q));
        assert!(book.current().is_none(), "the followed pod is gone, whatever else runs");
        assert_eq!(exit_of(&book), Some(137));
    }
}
