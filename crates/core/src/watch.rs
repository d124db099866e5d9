//! The run's watches: kube-runtime's [`watcher`], opened as a **streaming
//! list** where the apiserver serves one (`sendInitialEvents=true`: the
//! initial state and the changes after it in one request, Kubernetes 1.34+
//! by default), and as list + watch where it does not (1.20, or a 1.27–1.33
//! apiserver with the `WatchList` gate off).
//!
//! Which one a cluster speaks is learned from its first answer and kept in
//! the [`Cluster`](crate::cluster::Cluster) for the life of the process, so
//! only the first watch against an older apiserver pays for the refused
//! request. Such an apiserver refuses the parameters outright: 1.20 forbids
//! `resourceVersionMatch` on a watch, later ones `sendInitialEvents` without
//! the gate — a 400/422, never a watch that hangs.
//!
//! Invariant: the events a caller sees are the watcher's, whatever the
//! strategy: `Init`, `InitApply`…, `InitDone`, then `Apply`/`Delete`; the
//! refused streaming attempt itself is never passed on.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use futures::stream::BoxStream;
use futures::{StreamExt, future};
use kube::Api;
use kube::Resource;
use kube::runtime::watcher::{self, Event, watcher};
use serde::de::DeserializeOwned;

const UNKNOWN: u8 = 0;
const STREAMING: u8 = 1;
const LIST_WATCH: u8 = 2;

/// What one apiserver is known to serve. Shared by every run on it.
#[derive(Debug, Default)]
pub struct ListSupport(AtomicU8);

/// How a watch starts, as far as we know yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Not tried yet: try a streaming list, fall back if refused.
    Unknown,
    Streaming,
    ListWatch,
}

impl ListSupport {
    pub fn strategy(&self) -> Strategy {
        match self.0.load(Ordering::Relaxed) {
            STREAMING => Strategy::Streaming,
            LIST_WATCH => Strategy::ListWatch,
            _ => Strategy::Unknown,
        }
    }

    fn learn(&self, streaming: bool) {
        // Only the first answer counts: a later refusal is some other fault.
        let _ = self.0.compare_exchange(UNKNOWN, if streaming { STREAMING } else { LIST_WATCH }, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn refuse(&self) {
        self.0.store(LIST_WATCH, Ordering::Relaxed);
    }
}

/// True when the apiserver refused the streaming-list parameters themselves
/// (as opposed to RBAC, an outage, or a gone resource version).
fn refuses_streaming(e: &watcher::Error) -> bool {
    matches!(e, watcher::Error::WatchStartFailed(kube::Error::Api(s)) if s.code == 400 || s.code == 422)
}

type Events<K> = BoxStream<'static, Result<Event<K>, watcher::Error>>;

/// A watcher of `api` with `config`, as a streaming list when the apiserver
/// serves them (see the module docs). Errors are the watcher's, unbacked-off:
/// add `default_backoff()` as for any watcher.
pub fn watch<K>(api: Api<K>, config: watcher::Config, support: Arc<ListSupport>) -> Events<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    if support.strategy() == Strategy::ListWatch {
        return traced::<K>(watcher(api, config).boxed(), LIST_WATCH);
    }
    let streaming = traced::<K>(watcher(api.clone(), config.clone().streaming_lists()).boxed(), STREAMING);
    let state = Attempt::Streaming { events: streaming, api, config, support };
    futures::stream::unfold(state, |state| async move {
        match state {
            Attempt::Streaming { mut events, api, config, support } => {
                let next = events.next().await?;
                match next {
                    Err(e) if refuses_streaming(&e) => {
                        tracing::debug!(error = %e, "streaming lists refused; list + watch from now on");
                        support.refuse();
                        let mut fallback = traced::<K>(watcher(api, config).boxed(), LIST_WATCH);
                        let first = fallback.next().await?;
                        Some((first, Attempt::Settled(fallback)))
                    }
                    other => {
                        if other.is_ok() {
                            support.learn(true);
                        }
                        // Until the first success a failure may still be the refusal
                        // (after an outage, say): keep looking at the start of each attempt.
                        let state = if other.is_ok() { Attempt::Settled(events) } else { Attempt::Streaming { events, api, config, support } };
                        Some((other, state))
                    }
                }
            }
            Attempt::Settled(mut events) => {
                let next = events.next().await?;
                Some((next, Attempt::Settled(events)))
            }
        }
    })
    .boxed()
}

/// `events`, telling the operator (at debug) each time the watch (re)starts
/// — its initial list, on the first start and after every 410 or error —
/// and how, and each error it backs off from.
fn traced<K: 'static>(events: Events<K>, strategy: u8) -> Events<K> {
    let kind = std::any::type_name::<K>().rsplit("::").next().unwrap_or("object");
    let protocol = if strategy == STREAMING { "streaming list" } else { "list + watch" };
    events
        .inspect(move |ev| match ev {
            Ok(Event::Init) => tracing::debug!(kind, protocol, "watch (re)started"),
            Err(e) => tracing::debug!(kind, error = %e, "watch failed; backing off, then restarting it"),
            Ok(_) => {}
        })
        .boxed()
}

enum Attempt<K: Resource + Clone + DeserializeOwned + Debug + Send + 'static> {
    Streaming { events: Events<K>, api: Api<K>, config: watcher::Config, support: Arc<ListSupport> },
    Settled(Events<K>),
}

/// One named object, as `kube::runtime::watcher::watch_object` gives it
/// (`Some` while it exists, `None` once it is gone or was never there), over
/// [`watch`].
///
/// A streaming list starts at resourceVersion "0" (kube-runtime always asks
/// so): its initial state comes from the apiserver's watch cache as it is,
/// which under load lags behind etcd. An object created a moment ago — our
/// Job — can be missing from it, and "not in the initial state" would read
/// as "deleted". So an absence at `InitDone` is confirmed with a GET (a
/// quorum read) before it is passed on; the watch's own `Delete` events
/// need no confirmation. (Seen here: 5 of 20 concurrent runs on 1.37.2
/// ended `k8s_job_deleted_externally` as their pods started.)
pub fn watch_object<K>(api: Api<K>, name: &str, support: Arc<ListSupport>) -> BoxStream<'static, Result<Option<K>, watcher::Error>>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let (getter, name) = (api.clone(), name.to_owned());
    watch(api, config, support)
        // Seen in this (re)list? If not, InitDone says it is gone.
        .scan(false, |seen, event| {
            match &event {
                Ok(Event::Init) => *seen = false,
                Ok(Event::InitApply(_)) => *seen = true,
                _ => {}
            }
            future::ready(Some((*seen, event)))
        })
        .filter_map(move |(seen, event)| {
            let (getter, name) = (getter.clone(), name.clone());
            async move {
                match event {
                    Ok(Event::Apply(o) | Event::InitApply(o)) => Some(Ok(Some(o))),
                    Ok(Event::Delete(_)) => Some(Ok(None)),
                    Ok(Event::InitDone) if !seen => match getter.get_opt(&name).await {
                        Ok(found) => Some(Ok(found)),
                        Err(e) => {
                            // Without an answer, the list's word stands.
                            tracing::debug!(error = %e, %name, "confirming an absence failed");
                            Some(Ok(None))
                        }
                    },
                    Ok(Event::Init | Event::InitDone) => None,
                    Err(e) => Some(Err(e)),
                }
            }
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> watcher::Error {
        let status = kube::core::Status::failure("x", "Invalid").with_code(code);
        watcher::Error::WatchStartFailed(kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn only_a_refusal_of_the_parameters_means_no_streaming_lists() {
        assert!(refuses_streaming(&api_error(422)));
        assert!(refuses_streaming(&api_error(400)));
        assert!(!refuses_streaming(&api_error(403)), "RBAC is not the server's capability");
        assert!(!refuses_streaming(&api_error(500)));
    }

    #[test]
    fn the_first_answer_is_kept() {
        let s = ListSupport::default();
        assert_eq!(s.strategy(), Strategy::Unknown);
        s.learn(true);
        s.learn(false);
        assert_eq!(s.strategy(), Strategy::Streaming);
        s.refuse();
        assert_eq!(s.strategy(), Strategy::ListWatch);
    }
}
