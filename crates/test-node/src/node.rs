//! The Node object: registered Ready, its not-ready taint removed, its Ready
//! condition's heartbeat and its Lease in `kube-node-lease` kept fresh —
//! unless the `stop-heartbeat` fault says the node has gone silent.
//!
//! Two heartbeats, as a kubelet since 1.17 has: the node lifecycle
//! controller takes either a newer `lastHeartbeatTime` on the Ready condition
//! or a newer Lease `renewTime` as a sign of life. A real kubelet renews the
//! Lease every 10 s and writes status only on change (or every 5 min); this
//! node does both every 4 s, well inside the test cluster's 16 s grace.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::runner::NodeState;

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// When the node's Ready condition, as the apiserver holds it, became True;
/// `None` when it is not True (Unknown after the node lifecycle controller
/// found the node silent) or absent. The kubelet's ReadyCondition setter
/// (pkg/kubelet/nodestatus/setters.go) keeps `lastTransitionTime` while the
/// status stays the same and stamps the current time when it changes: a test
/// can tell "Ready again after an outage" by it.
fn ready_since(node: &Node) -> Option<String> {
    let ready = node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    (ready.status == "True").then(|| ready.last_transition_time.as_ref().map(|t| t.0.to_string())).flatten()
}

fn status(port: u16, kubelet_version: &str, ready_since: Option<String>) -> serde_json::Value {
    let t = now();
    let since = ready_since.unwrap_or_else(|| t.clone());
    json!({
        "capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"},
        "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"},
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "localhost"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "claude-k8s test node",
            "containerRuntimeVersion": "process://1", "kubeletVersion": kubelet_version, "kubeProxyVersion": kubelet_version,
            "operatingSystem": "linux", "architecture": "amd64"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test node is ready",
            "lastHeartbeatTime": t, "lastTransitionTime": since}]
    })
}

async fn register(api: &Api<Node>, name: &str, port: u16, kubelet_version: &str) -> Result<(), kube::Error> {
    let existing = api.get_opt(name).await?;
    let since = existing.as_ref().and_then(ready_since);
    if existing.is_none() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
            "spec": {}
        }))
        .expect("static node object");
        match api.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": status(port, kubelet_version, since)}))).await?;
    // Admission adds node.kubernetes.io/not-ready; with node-lifecycle off nobody lifts it.
    api.patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"taints": null}}))).await?;
    Ok(())
}

/// Renews the node's Lease, creating it (owned by the Node, as a kubelet
/// does, so it goes with the Node) when it is missing.
async fn renew_lease(leases: &Api<Lease>, nodes: &Api<Node>, name: &str) -> Result<(), kube::Error> {
    let renewed = json!({"spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": lease_time()}});
    match leases.patch(name, &PatchParams::default(), &Patch::Merge(&renewed)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let node = nodes.get(name).await?;
            let mut lease = renewed;
            lease["metadata"] = json!({"name": name, "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                "name": name, "uid": node.metadata.uid}]});
            let lease: Lease = serde_json::from_value(lease).expect("static lease object");
            match leases.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// A Lease's `renewTime` (a `MicroTime`: RFC 3339 to the microsecond).
fn lease_time() -> serde_json::Value {
    serde_json::to_value(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(k8s_openapi::jiff::Timestamp::now()))
        .expect("a timestamp serialises")
}

/// Registers the node and keeps it fresh; retries through apiserver outages.
pub async fn keep_registered(state: Arc<NodeState>, port: u16) {
    let api: Api<Node> = Api::all(state.client.clone());
    let leases: Api<Lease> = Api::namespaced(state.client.clone(), "kube-node-lease");
    let version = state.kubelet.git.clone();
    let mut registered = false;
    loop {
        if state.faults.heartbeat_stopped() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let r = if registered {
            match api.get(&state.node_name).await {
                Ok(node) => {
                    let status = status(port, &version, ready_since(&node));
                    api.patch_status(&state.node_name, &PatchParams::default(), &Patch::Merge(json!({"status": status})))
                        .await
                        .map(|_| ())
                }
                Err(e) => Err(e),
            }
        } else {
            register(&api, &state.node_name, port, &version).await
        };
        let r = match r {
            Ok(()) => renew_lease(&leases, &api, &state.node_name).await,
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => registered = true,
            Err(e) => {
                tracing::warn!(error = %e, "node status update failed; retrying");
                registered = false;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        // Well inside the node controller's grace period (scripts/test-cluster: 16 s).
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
}
