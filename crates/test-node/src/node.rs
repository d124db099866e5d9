//! The Node object: registered Ready, its not-ready taint removed, its Ready
//! condition's heartbeat kept fresh — unless the `stop-heartbeat` fault says
//! the node has gone silent.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::runner::NodeState;

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

fn status(port: u16) -> serde_json::Value {
    let t = now();
    json!({
        "capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"},
        "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"},
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "localhost"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "", "osImage": "claude-k8s test node",
            "containerRuntimeVersion": "process://1", "kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2",
            "operatingSystem": "linux", "architecture": "amd64"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test node is ready",
            "lastHeartbeatTime": t, "lastTransitionTime": t}]
    })
}

async fn register(api: &Api<Node>, name: &str, port: u16) -> Result<(), kube::Error> {
    if api.get_opt(name).await?.is_none() {
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
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": status(port)}))).await?;
    // Admission adds node.kubernetes.io/not-ready; with node-lifecycle off nobody lifts it.
    api.patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"taints": null}}))).await?;
    Ok(())
}

/// Registers the node and keeps it fresh; retries through apiserver outages.
pub async fn keep_registered(state: Arc<NodeState>, port: u16) {
    let api: Api<Node> = Api::all(state.client.clone());
    let mut registered = false;
    loop {
        if state.faults.heartbeat_stopped() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let r = if registered {
            api.patch_status(&state.node_name, &PatchParams::default(), &Patch::Merge(json!({"status": status(port)}))).await.map(|_| ())
        } else {
            register(&api, &state.node_name, port).await
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
