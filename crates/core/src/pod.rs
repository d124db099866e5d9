//! The Job's pod: how it is described in the log, and when waiting for it is
//! over (contract §1.5 step 10). Everything here is pure; the pipeline feeds
//! it the pod objects its watch delivers.
//!
//! Invariant: [`assess`] only reads the pod; it never decides from time. The
//! 120 s schedule timeout is the caller's.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// The container the Job runs Claude in.
pub const CLAUDE_CONTAINER: &str = "claude";

/// How long a pod may stay unscheduled / not started before the run fails.
pub const SCHEDULE_TIMEOUT_SECS: u64 = 120;

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Unknown")
}

fn describe_container(cs: &ContainerStatus) -> String {
    let state = cs.state.as_ref();
    if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
        format!("waiting ({})", w.reason.as_deref().unwrap_or("unknown"))
    } else if state.and_then(|s| s.running.as_ref()).is_some() {
        "running".into()
    } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        match &t.reason {
            Some(r) => format!("terminated (exit {}, {r})", t.exit_code),
            None => format!("terminated (exit {})", t.exit_code),
        }
    } else {
        "pending".into()
    }
}

/// The one-line summary the original logged on every change:
/// `phase=…, init/<n>: …, <c>: …`.
pub fn describe(pod: &Pod) -> String {
    let mut parts = vec![format!("phase={}", phase(pod))];
    let status = pod.status.as_ref();
    for cs in status.and_then(|s| s.init_container_statuses.as_ref()).into_iter().flatten() {
        let t = cs.state.as_ref().and_then(|s| s.terminated.as_ref());
        let d = match t {
            Some(t) if t.exit_code == 0 => "done (exit 0)".to_owned(),
            Some(t) => format!("done (exit {})", t.exit_code),
            None => describe_container(cs),
        };
        parts.push(format!("init/{}: {d}", cs.name));
    }
    for cs in status.and_then(|s| s.container_statuses.as_ref()).into_iter().flatten() {
        parts.push(format!("{}: {}", cs.name, describe_container(cs)));
    }
    parts.join(", ")
}

/// Where the wait for the pod stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodProgress {
    /// Keep waiting.
    Waiting,
    /// Claude's container runs (or already ran): follow its log.
    Started,
    /// The pod cannot run Claude; the message is the original's.
    Failed(String),
}

const IMAGE_PULL_REASONS: [&str; 3] = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"];

/// `waitForPod`'s decision for one observed pod.
pub fn assess(pod: &Pod) -> PodProgress {
    let name = pod.metadata.name.as_deref().unwrap_or("?");
    let status = pod.status.as_ref();
    let inits = status.and_then(|s| s.init_container_statuses.as_deref()).unwrap_or_default();
    let mains = status.and_then(|s| s.container_statuses.as_deref()).unwrap_or_default();

    for cs in inits {
        let state = cs.state.as_ref();
        if let Some(t) = state.and_then(|s| s.terminated.as_ref()).filter(|t| t.exit_code != 0) {
            return PodProgress::Failed(format!(
                "Init container \"{}\" failed with exit code {}: {}",
                cs.name,
                t.exit_code,
                t.reason.as_deref().unwrap_or("unknown")
            ));
        }
        if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.as_deref().unwrap_or_default();
            let detail = w.message.as_deref().unwrap_or(reason);
            if IMAGE_PULL_REASONS.contains(&reason) {
                return PodProgress::Failed(format!("Init container \"{}\" image pull failed: {detail}", cs.name));
            }
            if reason == "CrashLoopBackOff" {
                return PodProgress::Failed(format!("Init container \"{}\" crash loop: {detail}", cs.name));
            }
        }
    }
    for cs in mains {
        if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.as_deref().unwrap_or_default();
            let detail = w.message.as_deref().unwrap_or(reason);
            if IMAGE_PULL_REASONS.contains(&reason) {
                return PodProgress::Failed(format!("Image pull failed for \"{}\": {detail}", cs.name));
            }
            if reason == "CrashLoopBackOff" {
                return PodProgress::Failed(format!("Container \"{}\" crash loop: {detail}", cs.name));
            }
        }
    }
    let unschedulable = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"));
    if let Some(c) = unschedulable {
        return PodProgress::Failed(format!(
            "Pod unschedulable: {}",
            c.message.as_deref().unwrap_or("insufficient resources")
        ));
    }
    match phase(pod) {
        // A pod that already finished still has a log to read and an exit code.
        "Running" | "Succeeded" => PodProgress::Started,
        "Failed" => {
            let claude_ran = mains.iter().any(|cs| {
                cs.name == CLAUDE_CONTAINER && cs.state.as_ref().and_then(|s| s.terminated.as_ref()).is_some()
            });
            if claude_ran { PodProgress::Started } else { PodProgress::Failed(describe_terminated(name, pod)) }
        }
        _ => {
            let inits_done = !inits.is_empty()
                && inits.iter().all(|cs| cs.state.as_ref().and_then(|s| s.terminated.as_ref()).is_some_and(|t| t.exit_code == 0));
            let main_running = mains.iter().any(|cs| cs.state.as_ref().and_then(|s| s.running.as_ref()).is_some());
            if inits_done && main_running { PodProgress::Started } else { PodProgress::Waiting }
        }
    }
}

/// `describePodTerminatedError` of the original.
pub fn describe_terminated(name: &str, pod: &Pod) -> String {
    let phase = phase(pod);
    match claude_terminated(pod) {
        Some(t) => format!(
            "Pod {name} reached phase={phase}: claude exited {} ({})",
            t.exit_code,
            t.reason.as_deref().unwrap_or("unknown")
        ),
        None => format!("Pod {name} reached phase={phase}"),
    }
}

/// The `claude` container's terminated state, if it has one.
pub fn claude_terminated(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStateTerminated> {
    claude_status(pod).and_then(|cs| cs.state.as_ref()).and_then(|s| s.terminated.as_ref())
}

/// The `claude` container's memory limit, as the pod spec gives it (`8Gi`).
pub fn claude_memory_limit(pod: &Pod) -> Option<String> {
    let c = pod.spec.as_ref()?.containers.iter().find(|c| c.name == CLAUDE_CONTAINER)?;
    c.resources.as_ref()?.limits.as_ref()?.get("memory").map(|q| q.0.clone())
}

/// The `claude` container's status.
pub fn claude_status(pod: &Pod) -> Option<&ContainerStatus> {
    pod.status.as_ref()?.container_statuses.as_ref()?.iter().find(|cs| cs.name == CLAUDE_CONTAINER)
}

/// Why Kubernetes disrupted the pod, when it says so: the `DisruptionTarget`
/// condition (`reason: message`; set from 1.26 on by the kubelet's
/// node-pressure eviction, the Eviction API, preemption and the taint
/// manager), or else the status a kubelet leaves on a pod it evicted
/// (`Evicted: message`, every version).
pub fn disruption(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let target = status.conditions.iter().flatten().find(|c| c.type_ == "DisruptionTarget" && c.status == "True");
    let said = |reason: Option<&str>, message: Option<&str>| match (reason, message.filter(|m| !m.is_empty())) {
        (Some(r), Some(m)) => format!("{r}: {m}"),
        (Some(r), None) => r.to_owned(),
        (None, Some(m)) => m.to_owned(),
        (None, None) => "unknown".to_owned(),
    };
    if let Some(c) = target {
        return Some(said(c.reason.as_deref(), c.message.as_deref()));
    }
    (status.reason.as_deref() == Some("Evicted")).then(|| said(Some("Evicted"), status.message.as_deref()))
}

/// A running pod whose node has stopped reporting, as the apiserver shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSilence {
    pub node: String,
    /// When the pod's `Ready` condition turned false (RFC 3339), if stated.
    pub since: Option<String>,
}

/// Whether the pod's node has gone silent.
///
/// The sign is the node lifecycle controller's: once a node misses its
/// heartbeats for the grace period (40 s by default) it sets every pod's
/// `Ready` condition to false — and touches nothing else. A kubelet never
/// reports that combination itself: it derives `Ready` from its containers,
/// so `Ready=False` next to a `claude` container still `running` and `ready`
/// means nobody on the node has spoken since. (Our Job pods have no
/// readiness gates or probes, the other ways to get there.) When the node
/// comes back, its kubelet writes `Ready=True` again and this returns `None`.
pub fn node_silence(pod: &Pod) -> Option<NodeSilence> {
    if phase(pod) != "Running" {
        return None;
    }
    let status = pod.status.as_ref()?;
    let ready = status.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    if ready.status == "True" {
        return None;
    }
    let claude = claude_status(pod)?;
    let running = claude.state.as_ref().is_some_and(|s| s.running.is_some());
    if !(running && claude.ready) {
        return None;
    }
    Some(NodeSilence {
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_else(|| "?".into()),
        since: ready.last_transition_time.as_ref().map(|t| t.0.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p1"}, "status": status})).unwrap()
    }

    #[test]
    fn pending_pod_waits() {
        let p = pod(json!({"phase": "Pending"}));
        assert_eq!(assess(&p), PodProgress::Waiting);
        assert_eq!(describe(&p), "phase=Pending");
    }

    #[test]
    fn running_pod_started_and_described() {
        let p = pod(json!({"phase": "Running",
            "initContainerStatuses": [{"name": "write-prompt", "ready": false, "restartCount": 0, "image": "b", "imageID": "",
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
            "containerStatuses": [{"name": "claude", "ready": true, "restartCount": 0, "image": "c", "imageID": "",
                "state": {"running": {"startedAt": "2026-11-23T10:00:00Z"}}}]}));
        assert_eq!(assess(&p), PodProgress::Started);
        assert_eq!(describe(&p), "phase=Running, init/write-prompt: done (exit 0), claude: running");
    }

    #[test]
    fn inits_done_and_main_running_while_phase_lags() {
        let p = pod(json!({"phase": "Pending",
            "initContainerStatuses": [{"name": "write-prompt", "ready": false, "restartCount": 0, "image": "b", "imageID": "",
                "state": {"terminated": {"exitCode": 0}}}],
            "containerStatuses": [{"name": "claude", "ready": true, "restartCount": 0, "image": "c", "imageID": "",
                "state": {"running": {}}}]}));
        assert_eq!(assess(&p), PodProgress::Started);
    }

    #[test]
    fn failing_init_container() {
        let p = pod(json!({"phase": "Failed",
            "initContainerStatuses": [{"name": "write-prompt", "ready": false, "restartCount": 0, "image": "b", "imageID": "",
                "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}));
        assert_eq!(assess(&p), PodProgress::Failed("Init container \"write-prompt\" failed with exit code 2: Error".into()));
    }

    #[test]
    fn image_pull_and_crash_loop() {
        let p = pod(json!({"phase": "Pending",
            "containerStatuses": [{"name": "claude", "ready": false, "restartCount": 0, "image": "c", "imageID": "",
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\""}}}]}));
        assert_eq!(assess(&p), PodProgress::Failed("Image pull failed for \"claude\": Back-off pulling image \"x\"".into()));
        let p = pod(json!({"phase": "Pending",
            "initContainerStatuses": [{"name": "write-prompt", "ready": false, "restartCount": 3, "image": "b", "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}));
        assert_eq!(assess(&p), PodProgress::Failed("Init container \"write-prompt\" crash loop: CrashLoopBackOff".into()));
    }

    #[test]
    fn unschedulable() {
        let p = pod(json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient cpu."}]}));
        assert_eq!(assess(&p), PodProgress::Failed("Pod unschedulable: 0/1 nodes are available: 1 Insufficient cpu.".into()));
    }

    #[test]
    fn finished_pod_still_counts_as_started() {
        let p = pod(json!({"phase": "Failed",
            "containerStatuses": [{"name": "claude", "ready": false, "restartCount": 0, "image": "c", "imageID": "",
                "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}));
        assert_eq!(assess(&p), PodProgress::Started);
        let p = pod(json!({"phase": "Failed"}));
        assert_eq!(assess(&p), PodProgress::Failed("Pod p1 reached phase=Failed".into()));
        assert_eq!(assess(&pod(json!({"phase": "Succeeded"}))), PodProgress::Started);
    }

    fn on_node(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p1"}, "spec": {"nodeName": "n1", "containers": []}, "status": status})).unwrap()
    }

    fn claude_running(ready: bool) -> serde_json::Value {
        json!([{"name": "claude", "ready": ready, "restartCount": 0, "image": "c", "imageID": "", "state": {"running": {}}}])
    }

    #[test]
    fn disruption_from_the_condition_or_a_kubelet_eviction() {
        let p = pod(json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory.",
            "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet", "message": "The node was low on resource: memory."}]}));
        assert_eq!(disruption(&p).as_deref(), Some("TerminationByKubelet: The node was low on resource: memory."));
        // 1.20: no condition, only the kubelet's status.
        let p = pod(json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}));
        assert_eq!(disruption(&p).as_deref(), Some("Evicted: The node was low on resource: memory."));
        let p = pod(json!({"phase": "Running", "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}]}));
        assert_eq!(disruption(&p).as_deref(), Some("EvictionByEvictionAPI: Eviction API: evicting"));
        assert_eq!(disruption(&pod(json!({"phase": "Failed", "reason": "DeadlineExceeded"}))), None);
        assert_eq!(disruption(&pod(json!({"phase": "Running", "conditions": [{"type": "DisruptionTarget", "status": "False"}]}))), None);
    }

    #[test]
    fn node_silence_is_ready_false_next_to_a_ready_running_container() {
        let ready = |s: &str| json!([{"type": "Ready", "status": s, "lastTransitionTime": "2026-12-02T10:00:00Z"}]);
        // What the node lifecycle controller leaves: only the pod condition flipped.
        let silent = on_node(json!({"phase": "Running", "conditions": ready("False"), "containerStatuses": claude_running(true)}));
        assert_eq!(node_silence(&silent), Some(NodeSilence { node: "n1".into(), since: Some("2026-12-02T10:00:00Z".into()) }));
        // A healthy pod, and the kubelet's own not-ready (container not ready yet).
        assert_eq!(node_silence(&on_node(json!({"phase": "Running", "conditions": ready("True"), "containerStatuses": claude_running(true)}))), None);
        assert_eq!(node_silence(&on_node(json!({"phase": "Running", "conditions": ready("False"), "containerStatuses": claude_running(false)}))), None);
        // Finished or not yet running: the kubelet has spoken.
        let done = json!([{"name": "claude", "ready": false, "restartCount": 0, "image": "c", "imageID": "",
            "state": {"terminated": {"exitCode": 0}}}]);
        assert_eq!(node_silence(&on_node(json!({"phase": "Succeeded", "conditions": ready("False"), "containerStatuses": done}))), None);
        assert_eq!(node_silence(&on_node(json!({"phase": "Pending", "conditions": ready("False")}))), None);
        // No Ready condition at all is not a sign of anything.
        assert_eq!(node_silence(&on_node(json!({"phase": "Running", "containerStatuses": claude_running(true)}))), None);
    }
}
