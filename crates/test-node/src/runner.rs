//! Pods → processes. Every pod bound to this node is run by one task:
//! volumes prepared, init containers in order, then the main containers, each
//! a real process in its own session and mount namespace with its volumes
//! bind-mounted, its env, its working directory and its uid/gid. Status goes
//! to the apiserver at every transition, like a kubelet's.
//!
//! Invariant: a failure in one pod (a missing Secret, a bad command) fails
//! that pod's container with a reason — it never stops the node.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::control::Faults;
use crate::logfile::ContainerLog;

/// What a kubelet says of a pod it evicted under memory pressure.
const EVICTION_MESSAGE: &str = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 42Mi. ";

pub struct NodeState {
    pub client: Client,
    pub node_name: String,
    pub run_dir: PathBuf,
    pub path_prefix: String,
    pub kubelet: crate::KubeletVersion,
    pub faults: Faults,
    pods: Mutex<HashMap<String, Arc<PodRun>>>,
    logs: Mutex<HashMap<(String, String, String), Arc<ContainerLog>>>,
}

/// One pod being run.
pub struct PodRun {
    ns: String,
    name: String,
    uid: String,
    /// container name → process group id, while running.
    pgids: Mutex<HashMap<String, i32>>,
    oom: Mutex<HashSet<String>>,
    /// Containers whose exit is reported `OOMKilled` with their own exit code.
    oom_beside: Mutex<HashSet<String>>,
    terminating: AtomicBool,
    /// Set by [`NodeState::evict`]: the eviction's message.
    evicted: Mutex<Option<String>>,
    /// The last status this node posted, to post again when someone else
    /// (the node lifecycle controller) changed it — a kubelet reconciles too.
    posted: Mutex<Option<Value>>,
}

impl PodRun {
    fn signal_all(&self, sig: i32) {
        for pgid in self.pgids.lock().unwrap_or_else(|p| p.into_inner()).values() {
            // SAFETY: kill(2) on a process group we started; no memory is touched.
            unsafe {
                libc::kill(-pgid, sig);
            }
        }
    }
}

impl NodeState {
    pub fn new(client: Client, args: &crate::Args) -> Self {
        NodeState {
            client,
            node_name: args.node_name.clone(),
            run_dir: args.run_dir.clone(),
            path_prefix: args.path_prefix.clone(),
            kubelet: args.kubelet_version.clone(),
            faults: Faults::default(),
            pods: Mutex::new(HashMap::new()),
            logs: Mutex::new(HashMap::new()),
        }
    }

    pub fn container_log(&self, ns: &str, pod: &str, container: &str) -> Option<Arc<ContainerLog>> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).get(&(ns.into(), pod.into(), container.into())).cloned()
    }

    fn find(&self, ns: &str, pod: &str) -> Option<Arc<PodRun>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner()).values().find(|p| p.ns == ns && p.name == pod).cloned()
    }

    pub fn oom_kill(&self, ns: &str, pod: &str, container: &str) -> bool {
        let Some(run) = self.find(ns, pod) else { return false };
        let Some(pgid) = run.pgids.lock().unwrap_or_else(|p| p.into_inner()).get(container).copied() else { return false };
        run.oom.lock().unwrap_or_else(|p| p.into_inner()).insert(container.to_owned());
        // SAFETY: kill(2) on our own process group.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        true
    }

    /// The OOM killer took another process of the container (a child of
    /// its main process) under cgroup v1: the container runs on, and when
    /// it exits the runtime reports `OOMKilled` with the main process's own
    /// exit code (seen on a real node with 0 and 1). Only the status is
    /// played; no process is killed.
    pub fn oom_beside(&self, ns: &str, pod: &str, container: &str) -> bool {
        let Some(run) = self.find(ns, pod) else { return false };
        if !run.pgids.lock().unwrap_or_else(|p| p.into_inner()).contains_key(container) {
            return false;
        }
        run.oom_beside.lock().unwrap_or_else(|p| p.into_inner()).insert(container.to_owned());
        true
    }

    /// Node-pressure eviction, as a kubelet does it: the pod's containers are
    /// killed and its status says `Failed`/`Evicted` (with the
    /// `DisruptionTarget` condition from 1.26) — posted by [`run_pod`] once
    /// the containers have stopped. The pod object is not deleted: a kubelet
    /// never deletes what it evicts (an eviction through the API does; the
    /// tests use the real Eviction API for that).
    pub fn evict(&self, ns: &str, pod: &str) -> Result<(), String> {
        let run = self.find(ns, pod).ok_or_else(|| format!("pod {ns}/{pod} does not run here"))?;
        *run.evicted.lock().unwrap_or_else(|p| p.into_inner()) = Some(EVICTION_MESSAGE.to_owned());
        run.signal_all(libc::SIGKILL);
        Ok(())
    }

    pub fn kill_all(&self) {
        for run in self.pods.lock().unwrap_or_else(|p| p.into_inner()).values() {
            run.signal_all(libc::SIGKILL);
        }
    }

    /// Appends one line to `<run-dir>/records.jsonl`: what happened to a
    /// container and when, to the microsecond. The apiserver keeps status
    /// times to the second only; the benchmarks measure against these.
    fn record(&self, run: &PodRun, container: &str, event: &str) {
        use std::io::Write;
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let mut line = json!({"t": t, "namespace": run.ns, "pod": run.name, "container": container, "event": event}).to_string();
        line.push('\n');
        let file = std::fs::OpenOptions::new().create(true).append(true).open(self.run_dir.join("records.jsonl"));
        // One write(2) per line with O_APPEND: concurrent pods never interleave.
        if let Err(e) = file.and_then(|mut f| f.write_all(line.as_bytes())) {
            tracing::debug!(error = %e, "record not written");
        }
    }

    pub fn describe(&self) -> Value {
        let pods = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        Value::Array(
            pods.values()
                .map(|p| json!({"namespace": p.ns, "name": p.name, "uid": p.uid,
                    "running": p.pgids.lock().unwrap_or_else(|x| x.into_inner()).keys().cloned().collect::<Vec<_>>()}))
                .collect(),
        )
    }
}

fn phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

/// Watches this node's pods forever (the watcher re-lists after outages).
pub async fn run_pods(state: Arc<NodeState>) {
    let api: Api<Pod> = Api::all(state.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", state.node_name));
    let mut events = watcher(api, cfg).default_backoff().boxed();
    while let Some(ev) = events.next().await {
        let pod = match ev {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
            Ok(watcher::Event::Delete(p)) => {
                let uid = p.metadata.uid.clone().unwrap_or_default();
                if let Some(run) = state.pods.lock().unwrap_or_else(|x| x.into_inner()).get(&uid) {
                    run.signal_all(libc::SIGKILL);
                }
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "pod watch error");
                continue;
            }
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let known = state.pods.lock().unwrap_or_else(|x| x.into_inner()).get(&uid).cloned();
        match known {
            Some(run) => {
                if !state.faults.heartbeat_stopped() && ready_of(&pod) != run.posted_ready() {
                    let (state, run) = (state.clone(), run.clone());
                    tokio::spawn(async move { repost(&state, &run).await });
                }
                if pod.metadata.deletion_timestamp.is_some() && !run.terminating.swap(true, Ordering::SeqCst) {
                    let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(30).max(0) as u64;
                    tracing::info!(pod = %run.name, grace, "pod deleted: SIGTERM");
                    run.signal_all(libc::SIGTERM);
                    let run = run.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(grace)).await;
                        run.signal_all(libc::SIGKILL);
                    });
                }
            }
            None => {
                let done = matches!(phase(&pod), "Succeeded" | "Failed");
                if done || pod.metadata.deletion_timestamp.is_some() {
                    if pod.metadata.deletion_timestamp.is_some() {
                        finalize_delete(&state, &pod).await;
                    }
                    continue;
                }
                let run = Arc::new(PodRun {
                    ns: pod.metadata.namespace.clone().unwrap_or_default(),
                    name: pod.metadata.name.clone().unwrap_or_default(),
                    uid: uid.clone(),
                    pgids: Mutex::default(),
                    oom: Mutex::default(),
                    oom_beside: Mutex::default(),
                    terminating: AtomicBool::new(false),
                    evicted: Mutex::default(),
                    posted: Mutex::default(),
                });
                state.pods.lock().unwrap_or_else(|x| x.into_inner()).insert(uid.clone(), run.clone());
                let state = state.clone();
                tokio::spawn(async move {
                    let name = run.name.clone();
                    if let Err(e) = run_pod(&state, &run, pod).await {
                        tracing::warn!(pod = %name, error = %e, "pod failed");
                    }
                });
            }
        }
    }
}

async fn finalize_delete(state: &NodeState, pod: &Pod) {
    let api: Api<Pod> = Api::namespaced(state.client.clone(), pod.metadata.namespace.as_deref().unwrap_or_default());
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions { uid: pod.metadata.uid.clone(), resource_version: None }),
        ..Default::default()
    };
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    match api.delete(name, &dp).await {
        Ok(_) => tracing::info!(pod = name, "pod finalised"),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => tracing::warn!(pod = name, error = %e, "final delete failed"),
    }
}

/// A container's state as the status reports it.
#[derive(Clone, Debug)]
enum CState {
    Waiting(&'static str),
    /// Waiting with the kubelet's message (image pull failures).
    WaitingWhy(&'static str, String),
    Running { started: String },
    Terminated { code: i32, reason: String, started: String, finished: String, message: Option<String> },
}

struct Statuses {
    init: Vec<(String, String, CState)>,
    main: Vec<(String, String, CState)>,
    started: String,
    /// The pod's `metadata.generation`, echoed as `observedGeneration` (1.34+).
    generation: Option<i64>,
    /// Each condition's status and since when: a kubelet moves
    /// `lastTransitionTime` only when the status changes.
    transitions: HashMap<&'static str, (bool, String)>,
    /// The pod was evicted by this node, with this message.
    evicted: Option<String>,
}

impl Statuses {
    /// The status as a kubelet of version `kubelet` posts it, as a strategic
    /// merge patch (what a kubelet sends): conditions merge by `type`, so
    /// those the node does not own (`PodScheduled` from the scheduler,
    /// `DisruptionTarget` from an eviction) stay; container states name the
    /// variants they leave (`null`), or the merge would keep both `running`
    /// and `terminated`.
    fn to_json(&mut self, uid: &str, kubelet: &crate::KubeletVersion) -> Value {
        let render = |list: &Vec<(String, String, CState)>, init: bool| -> Vec<Value> {
            list.iter()
                .map(|(name, image, st)| {
                    let (state, ready) = match st {
                        CState::Waiting(r) => (json!({"waiting": {"reason": r}, "running": null, "terminated": null}), false),
                        CState::WaitingWhy(r, m) => {
                            (json!({"waiting": {"reason": r, "message": m}, "running": null, "terminated": null}), false)
                        }
                        CState::Running { started } => {
                            (json!({"running": {"startedAt": started}, "waiting": null, "terminated": null}), !init)
                        }
                        CState::Terminated { code, reason, started, finished, message } => {
                            let mut t = json!({"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": finished,
                                "containerID": format!("process://{uid}/{name}")});
                            if let Some(m) = message {
                                t["message"] = json!(m);
                            }
                            if *code > 128 {
                                t["signal"] = json!(code - 128);
                            }
                            (json!({"terminated": t, "waiting": null, "running": null}), false)
                        }
                    };
                    json!({"name": name, "image": image, "imageID": format!("process://{image}"), "ready": ready,
                        "restartCount": 0, "started": matches!(st, CState::Running { .. }), "state": state})
                })
                .collect()
        };
        let all_init_done = self.init.iter().all(|(_, _, s)| matches!(s, CState::Terminated { code: 0, .. }));
        let any_init_failed = self.init.iter().any(|(_, _, s)| matches!(s, CState::Terminated { code, .. } if *code != 0));
        let running = self.main.iter().any(|(_, _, s)| matches!(s, CState::Running { .. }));
        let all_done = !self.main.is_empty() && self.main.iter().all(|(_, _, s)| matches!(s, CState::Terminated { .. }));
        let all_ok = self.main.iter().all(|(_, _, s)| matches!(s, CState::Terminated { code: 0, .. }));
        let phase = if any_init_failed || self.evicted.is_some() {
            "Failed"
        } else if all_done {
            if all_ok { "Succeeded" } else { "Failed" }
        } else if running {
            "Running"
        } else {
            "Pending"
        };
        let now = Timestamp::now().to_string();
        let generation = kubelet.observed_generation().then_some(self.generation).flatten();
        let mut cond = |t: &'static str, ok: bool| {
            let since = match self.transitions.get(t) {
                Some((was, since)) if *was == ok => since.clone(),
                _ => now.clone(),
            };
            self.transitions.insert(t, (ok, since.clone()));
            let mut c = json!({"type": t, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": since});
            if let Some(g) = generation {
                c["observedGeneration"] = json!(g);
            }
            c
        };
        let mut conditions = Vec::new();
        // The sandbox exists from the first status on, and is gone once the pod is terminal (1.29+).
        if kubelet.ready_to_start_condition() {
            conditions.push(cond("PodReadyToStartContainers", !matches!(phase, "Succeeded" | "Failed")));
        }
        conditions.push(cond("Initialized", all_init_done));
        conditions.push(cond("Ready", running));
        conditions.push(cond("ContainersReady", running));
        let mut status = json!({
            "phase": phase,
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.started,
            "conditions": conditions,
            "initContainerStatuses": render(&self.init, true),
            "containerStatuses": render(&self.main, false),
        });
        if let Some(message) = &self.evicted {
            status["reason"] = json!("Evicted");
            status["message"] = json!(message);
            if kubelet.disruption_condition() {
                let mut c = cond("DisruptionTarget", true);
                c["reason"] = json!("TerminationByKubelet");
                c["message"] = json!(message);
                status["conditions"].as_array_mut().expect("an array").insert(0, c);
            }
        }
        if kubelet.minor >= 28 {
            status["hostIPs"] = json!([{"ip": "127.0.0.1"}]);
        }
        if let Some(g) = generation {
            status["observedGeneration"] = json!(g);
        }
        status
    }
}

/// The pod's `Ready` condition status, if it has one.
fn ready_of(pod: &Pod) -> Option<String> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.status.clone())
}

impl PodRun {
    fn posted_ready(&self) -> Option<String> {
        let posted = self.posted.lock().unwrap_or_else(|p| p.into_inner());
        let conditions = posted.as_ref()?.pointer("/status/conditions")?.as_array()?;
        let ready = conditions.iter().find(|c| c["type"] == "Ready")?;
        ready["status"].as_str().map(str::to_owned)
    }
}

/// Posts the last status again (after a silence, or when another writer
/// changed it).
async fn repost(state: &NodeState, run: &PodRun) {
    let Some(body) = run.posted.lock().unwrap_or_else(|p| p.into_inner()).clone() else { return };
    let api: Api<Pod> = Api::namespaced(state.client.clone(), &run.ns);
    if let Err(e) = api.patch_status(&run.name, &PatchParams::default(), &Patch::Strategic(&body)).await {
        tracing::debug!(pod = %run.name, error = %e, "status repost failed");
    }
}

impl NodeState {
    /// The node speaks again: every pod's status as this node knows it.
    pub async fn resync(&self) {
        let runs: Vec<Arc<PodRun>> = self.pods.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for run in runs {
            repost(self, &run).await;
        }
    }
}

async fn patch_status(state: &NodeState, api: &Api<Pod>, run: &PodRun, st: &mut Statuses) {
    let body = json!({"status": st.to_json(&run.uid, &state.kubelet)});
    *run.posted.lock().unwrap_or_else(|p| p.into_inner()) = Some(body.clone());
    // A silent node posts nothing; what it would have said goes out when it speaks again.
    while state.faults.heartbeat_stopped() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for attempt in 0..30 {
        match api.patch_status(&run.name, &PatchParams::default(), &Patch::Strategic(&body)).await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 404 => return,
            Err(e) => {
                tracing::warn!(pod = %run.name, attempt, error = %e, "status patch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

fn img_of(c: &Container) -> String {
    c.image.clone().unwrap_or_default()
}

/// An image of a registry in the reserved `.invalid` domain (RFC 2606): no node could pull it.
fn unpullable(image: &str) -> bool {
    let first = image.split('/').next().unwrap_or_default();
    image.contains('/') && first.split(':').next().unwrap_or_default().ends_with(".invalid")
}

/// Whether an image has the Claude Code CLI: all do here, except plain OS images.
fn ships_claude(image: &str) -> bool {
    let name = image.rsplit('/').next().unwrap_or(image);
    let name = name.split([':', '@']).next().unwrap_or(name);
    !matches!(name, "busybox" | "alpine" | "debian" | "ubuntu")
}

async fn run_pod(state: &Arc<NodeState>, run: &Arc<PodRun>, pod: Pod) -> Result<(), String> {
    let api: Api<Pod> = Api::namespaced(state.client.clone(), &run.ns);
    let spec = pod.spec.clone().ok_or("pod has no spec")?;
    let pod_dir = state.run_dir.join("pods").join(&run.uid);
    std::fs::create_dir_all(&pod_dir).map_err(|e| e.to_string())?;
    let img = |c: &Container| c.image.clone().unwrap_or_default();
    let mut st = Statuses {
        init: spec.init_containers.iter().flatten().map(|c| (c.name.clone(), img(c), CState::Waiting("PodInitializing"))).collect(),
        main: spec.containers.iter().map(|c| (c.name.clone(), img(c), CState::Waiting("PodInitializing"))).collect(),
        started: Timestamp::now().to_string(),
        generation: pod.metadata.generation,
        transitions: HashMap::new(),
        evicted: None,
    };
    patch_status(state, &api, run, &mut st).await;
    let volumes = match prepare_volumes(state, &pod, &pod_dir).await {
        Ok(v) => v,
        Err(e) => {
            for c in st.init.iter_mut().chain(st.main.iter_mut()) {
                let now = Timestamp::now().to_string();
                c.2 = CState::Terminated { code: 128, reason: "ContainerCannotRun".into(), started: now.clone(), finished: now, message: Some(e.clone()) };
            }
            patch_status(state, &api, run, &mut st).await;
            return Err(e);
        }
    };
    let mut failed = false;
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        if run.terminating.load(Ordering::SeqCst) {
            failed = true;
            break;
        }
        let started = Timestamp::now().to_string();
        st.init[i].2 = CState::Running { started: started.clone() };
        patch_status(state, &api, run, &mut st).await;
        let t = run_container(state, run, &pod, c, &volumes, &pod_dir).await;
        st.init[i].2 = t;
        if !matches!(st.init[i].2, CState::Terminated { code: 0, .. }) {
            failed = true;
        }
        patch_status(state, &api, run, &mut st).await;
        if failed {
            break;
        }
    }
    // A kubelet pulls each container's image before starting it; an image it
    // cannot pull keeps the pod Pending in ErrImagePull / ImagePullBackOff
    // until the pod is deleted. This node "pulls" every image except those of
    // a registry that cannot exist (the reserved `.invalid` domain).
    if !failed && let Some((i, image)) = spec.containers.iter().enumerate().find_map(|(i, c)| unpullable(&img(c)).then(|| (i, img(c)))) {
        let host = image.split('/').next().unwrap_or_default().to_owned();
        let mut attempt = 0u32;
        while !run.terminating.load(Ordering::SeqCst) {
            st.main[i].2 = if attempt == 0 {
                CState::WaitingWhy(
                    "ErrImagePull",
                    format!("failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": dial tcp: lookup {host}: no such host"),
                )
            } else {
                CState::WaitingWhy("ImagePullBackOff", format!("Back-off pulling image \"{image}\""))
            };
            patch_status(state, &api, run, &mut st).await;
            attempt += 1;
            for _ in 0..50 {
                if run.terminating.load(Ordering::SeqCst) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        finalize_delete(state, &pod).await;
        let _ = std::fs::remove_dir_all(pod_dir.join("volumes"));
        state.pods.lock().unwrap_or_else(|x| x.into_inner()).remove(&run.uid);
        return Ok(());
    }
    if !failed {
        let mut tasks = Vec::new();
        for (i, c) in spec.containers.iter().enumerate() {
            st.main[i].2 = CState::Running { started: Timestamp::now().to_string() };
            let (state, run, pod, c, volumes, pod_dir) = (state.clone(), run.clone(), pod.clone(), c.clone(), volumes.clone(), pod_dir.clone());
            tasks.push(tokio::spawn(async move { run_container(&state, &run, &pod, &c, &volumes, &pod_dir).await }));
        }
        // The processes are started before this status lands (startedAt is set just before).
        tokio::time::sleep(Duration::from_millis(20)).await;
        patch_status(state, &api, run, &mut st).await;
        for c in &spec.containers {
            state.record(run, &c.name, "running-posted");
        }
        for (i, t) in tasks.into_iter().enumerate() {
            st.main[i].2 = t.await.unwrap_or(CState::Terminated {
                code: 128,
                reason: "ContainerCannotRun".into(),
                started: String::new(),
                finished: Timestamp::now().to_string(),
                message: Some("runner task failed".into()),
            });
        }
    } else {
        for c in st.main.iter_mut() {
            c.2 = CState::Waiting("PodInitializing");
        }
    }
    st.evicted = run.evicted.lock().unwrap_or_else(|p| p.into_inner()).clone();
    {
        patch_status(state, &api, run, &mut st).await;
        if !failed {
            for c in &spec.containers {
                state.record(run, &c.name, "terminated-posted");
            }
        }
    }
    // Deleted while running: finish the deletion now that the containers have stopped.
    if run.terminating.load(Ordering::SeqCst) {
        finalize_delete(state, &pod).await;
    }
    let _ = std::fs::remove_dir_all(pod_dir.join("volumes"));
    state.pods.lock().unwrap_or_else(|x| x.into_inner()).remove(&run.uid);
    Ok(())
}

/// A volume's host directory (or file tree) and whether it is read-only.
#[derive(Clone, Debug)]
struct HostVolume {
    path: PathBuf,
    read_only: bool,
}

async fn prepare_volumes(state: &NodeState, pod: &Pod, pod_dir: &Path) -> Result<HashMap<String, HostVolume>, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let spec = pod.spec.as_ref().ok_or("no spec")?;
    let fs_group = spec.security_context.as_ref().and_then(|s| s.fs_group);
    let mut out = HashMap::new();
    for v in spec.volumes.iter().flatten() {
        let dir = pod_dir.join("volumes").join(&v.name);
        if v.empty_dir.is_some() {
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            set_mode(&dir, 0o777);
            out.insert(v.name.clone(), HostVolume { path: dir, read_only: false });
        } else if let Some(s) = &v.secret {
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            set_mode(&dir, 0o755);
            let name = s.secret_name.clone().unwrap_or_default();
            let api: Api<Secret> = Api::namespaced(state.client.clone(), &ns);
            match api.get_opt(&name).await.map_err(|e| e.to_string())? {
                Some(secret) => {
                    let mode = s.default_mode.unwrap_or(0o644) as u32;
                    let mut data: BTreeMap<String, Vec<u8>> =
                        secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
                    for (k, v) in secret.string_data.unwrap_or_default() {
                        data.insert(k, v.into_bytes());
                    }
                    let items: Vec<(String, String, Option<i32>)> = match &s.items {
                        Some(items) => items.iter().map(|i| (i.key.clone(), i.path.clone(), i.mode)).collect(),
                        None => data.keys().map(|k| (k.clone(), k.clone(), None)).collect(),
                    };
                    for (key, rel, item_mode) in items {
                        let Some(bytes) = data.get(&key) else { continue };
                        if rel.contains("..") {
                            continue;
                        }
                        let file = dir.join(&rel);
                        if let Some(parent) = file.parent() {
                            let _ = std::fs::create_dir_all(parent);
                        }
                        std::fs::write(&file, bytes).map_err(|e| e.to_string())?;
                        let mut m = item_mode.map(|m| m as u32).unwrap_or(mode);
                        if let Some(g) = fs_group {
                            // Like a kubelet with fsGroup: group-owned and group-readable.
                            chown(&file, 0, g as u32);
                            if m & 0o400 != 0 {
                                m |= 0o040;
                            }
                        }
                        set_mode(&file, m);
                    }
                }
                None if s.optional == Some(true) => {}
                None => return Err(format!("secret \"{name}\" not found")),
            }
            out.insert(v.name.clone(), HostVolume { path: dir, read_only: true });
        } else if let Some(pvc) = &v.persistent_volume_claim {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(state.client.clone(), &ns);
            let claim = claims.get(&pvc.claim_name).await.map_err(|e| format!("pvc {}: {e}", pvc.claim_name))?;
            let pv_name = claim.spec.and_then(|s| s.volume_name).ok_or(format!("pvc {} is not bound", pvc.claim_name))?;
            let pvs: Api<PersistentVolume> = Api::all(state.client.clone());
            let pv = pvs.get(&pv_name).await.map_err(|e| format!("pv {pv_name}: {e}"))?;
            let path = pv.spec.and_then(|s| s.host_path).map(|h| h.path).ok_or(format!("pv {pv_name} has no hostPath"))?;
            std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
            out.insert(v.name.clone(), HostVolume { path: path.into(), read_only: pvc.read_only == Some(true) });
        } else if let Some(h) = &v.host_path {
            out.insert(v.name.clone(), HostVolume { path: h.path.clone().into(), read_only: false });
        } else {
            // Unsupported volume types become empty directories.
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            out.insert(v.name.clone(), HostVolume { path: dir, read_only: false });
        }
    }
    Ok(out)
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
}

fn chown(p: &Path, uid: u32, gid: u32) {
    if let Ok(c) = CString::new(p.as_os_str().as_bytes()) {
        // SAFETY: a valid C string path.
        unsafe {
            libc::chown(c.as_ptr(), uid, gid);
        }
    }
}

/// `$(VAR)` expansion as a kubelet does it (`$$` escapes; unknown names stay literal).
fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(').and_then(|a| a.find(')').map(|j| &a[..j])) {
            match env.iter().rev().find(|(k, _)| k == inner) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&format!("$({inner})")),
            }
            rest = &after[inner.len() + 2..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

async fn container_env(state: &NodeState, pod: &Pod, c: &Container) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(state.client.clone(), &ns);
    let maps: Api<ConfigMap> = Api::namespaced(state.client.clone(), &ns);
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(n, _)| *n != k);
        env.push((k, v));
    };
    for ef in c.env_from.iter().flatten() {
        let prefix = ef.prefix.clone().unwrap_or_default();
        if let Some(r) = &ef.secret_ref {
            match secrets.get_opt(&r.name).await.map_err(|e| e.to_string())? {
                Some(s) => {
                    for (k, v) in s.data.unwrap_or_default() {
                        set(&mut env, format!("{prefix}{k}"), String::from_utf8_lossy(&v.0).into_owned());
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("secret \"{}\" not found", r.name)),
            }
        }
        if let Some(r) = &ef.config_map_ref {
            match maps.get_opt(&r.name).await.map_err(|e| e.to_string())? {
                Some(m) => {
                    for (k, v) in m.data.unwrap_or_default() {
                        set(&mut env, format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("configmap \"{}\" not found", r.name)),
            }
        }
    }
    for e in c.env.iter().flatten() {
        if let Some(v) = &e.value {
            let expanded = expand(v, &env);
            set(&mut env, e.name.clone(), expanded);
        } else if let Some(vf) = &e.value_from {
            if let Some(r) = &vf.secret_key_ref {
                match secrets.get_opt(&r.name).await.map_err(|e| e.to_string())? {
                    Some(s) => match s.data.unwrap_or_default().get(&r.key) {
                        Some(v) => set(&mut env, e.name.clone(), String::from_utf8_lossy(&v.0).into_owned()),
                        None if r.optional == Some(true) => {}
                        None => return Err(format!("key \"{}\" not in secret \"{}\"", r.key, r.name)),
                    },
                    None if r.optional == Some(true) => {}
                    None => return Err(format!("secret \"{}\" not found", r.name)),
                }
            } else if let Some(r) = &vf.config_map_key_ref {
                if let Some(v) = maps.get_opt(&r.name).await.map_err(|e| e.to_string())?.and_then(|m| m.data).and_then(|d| d.get(&r.key).cloned()) {
                    set(&mut env, e.name.clone(), v);
                }
            } else if let Some(f) = &vf.field_ref {
                let v = match f.field_path.as_str() {
                    "metadata.name" => pod.metadata.name.clone(),
                    "metadata.namespace" => pod.metadata.namespace.clone(),
                    "metadata.uid" => pod.metadata.uid.clone(),
                    "spec.nodeName" => Some(state.node_name.clone()),
                    "status.podIP" | "status.hostIP" => Some("127.0.0.1".into()),
                    _ => None,
                };
                if let Some(v) = v {
                    set(&mut env, e.name.clone(), v);
                }
            }
        }
    }
    Ok(env)
}

fn cstr(s: impl AsRef<std::ffi::OsStr>) -> CString {
    CString::new(s.as_ref().as_bytes()).unwrap_or_else(|_| CString::new("/nonexistent").expect("static"))
}

async fn run_container(
    state: &Arc<NodeState>,
    run: &Arc<PodRun>,
    pod: &Pod,
    c: &Container,
    volumes: &HashMap<String, HostVolume>,
    pod_dir: &Path,
) -> CState {
    let started = Timestamp::now().to_string();
    let fail = |reason: &str, msg: String| CState::Terminated {
        code: 128,
        reason: reason.into(),
        started: started.clone(),
        finished: Timestamp::now().to_string(),
        message: Some(msg),
    };
    let env = match container_env(state, pod, c).await {
        Ok(e) => e,
        Err(e) => return fail("CreateContainerConfigError", e),
    };
    let spec = pod.spec.as_ref();
    let psc = spec.and_then(|s| s.security_context.as_ref());
    let csc = c.security_context.as_ref();
    let uid = csc.and_then(|s| s.run_as_user).or(psc.and_then(|s| s.run_as_user)).unwrap_or(0);
    let gid = csc.and_then(|s| s.run_as_group).or(psc.and_then(|s| s.run_as_group)).unwrap_or(uid);
    let fs_group = psc.and_then(|s| s.fs_group);
    let mut argv: Vec<String> = c.command.clone().unwrap_or_default();
    argv.extend(c.args.clone().unwrap_or_default());
    let argv: Vec<String> = argv.iter().map(|a| expand(a, &env)).collect();
    if argv.is_empty() {
        return fail("ContainerCannotRun", "container has no command (images are not pulled by this node)".into());
    }
    // Mounts: (host source, target, read-only). Targets must exist on the host
    // as mount points; they are shadowed only inside the container's namespace.
    let mut mounts: Vec<(CString, CString, bool)> = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let Some(v) = volumes.get(&m.name) else { return fail("CreateContainerConfigError", format!("volume {} not found", m.name)) };
        // subPath, as the kubelet takes it: relative, no `..`; a directory
        // that does not exist in the volume is created; a file is bind-mounted
        // onto a file (the runtime creates an empty one as the mount point).
        let source = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sp) if sp.starts_with('/') || sp.split('/').any(|c| c == "..") => {
                return fail("CreateContainerConfigError", format!("invalid subPath {sp:?}"));
            }
            Some(sp) => {
                let src = v.path.join(sp);
                if !src.exists() && let Err(e) = std::fs::create_dir_all(&src) {
                    return fail("CreateContainerConfigError", format!("subPath {sp}: {e}"));
                }
                src
            }
            None => v.path.clone(),
        };
        let target = std::path::Path::new(&m.mount_path);
        let made = if source.is_file() {
            target.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| {
                if target.exists() { Ok(()) } else { std::fs::write(target, b"") }
            })
        } else {
            std::fs::create_dir_all(target)
        };
        if let Err(e) = made {
            return fail("CreateContainerConfigError", format!("mount point {}: {e}", m.mount_path));
        }
        mounts.push((cstr(&source), cstr(&m.mount_path), v.read_only || m.read_only == Some(true)));
    }
    let workdir = cstr(c.working_dir.clone().unwrap_or_else(|| "/".into()));
    // The Claude Code CLI is on the PATH of every image but the plain OS
    // ones (busybox, alpine, debian, ubuntu): they do not ship it.
    let path = if ships_claude(&img_of(c)) {
        format!("{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", state.path_prefix)
    } else {
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()
    };
    let log = match ContainerLog::create(pod_dir.join(format!("{}.log", c.name))).await {
        Ok(l) => l,
        Err(e) => return fail("ContainerCannotRun", e.to_string()),
    };
    log.rotate_at(state.faults.rotation_for(&run.ns, &run.name, &c.name));
    state
        .logs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert((run.ns.clone(), run.name.clone(), c.name.clone()), log.clone());

    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).env_clear().env("PATH", &path).env("HOSTNAME", &run.name);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(false);
    let groups: Vec<libc::gid_t> = fs_group.map(|g| vec![g as libc::gid_t]).unwrap_or_default();
    let (uid, gid) = (uid as libc::uid_t, gid as libc::gid_t);
    // SAFETY: only async-signal-safe syscalls on data prepared before fork.
    unsafe {
        cmd.pre_exec(move || {
            let check = |r: libc::c_int| if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
            check(if libc::setsid() < 0 { -1 } else { 0 })?;
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(std::ptr::null(), c"/".as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()))?;
            // Open every source first (in the new namespace — a bind from an fd of
            // another namespace is EINVAL), then bind through /proc/self/fd/N: a
            // mount over a parent directory (say /work over the run dir) cannot
            // hide a later source. No allocation here: the path is formatted in
            // a stack buffer.
            let mut fds = [-1i32; 64];
            for (i, (src, _, _)) in mounts.iter().enumerate().take(64) {
                fds[i] = libc::open(src.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
                if fds[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, (_, dst, ro)) in mounts.iter().enumerate().take(64) {
                let mut buf = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0\0";
                let mut digits = [0u8; 10];
                let (mut n, mut len) = (fds[i] as u32, 0);
                loop {
                    digits[len] = b'0' + (n % 10) as u8;
                    len += 1;
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                for k in 0..len {
                    buf[14 + k] = digits[len - 1 - k];
                }
                check(libc::mount(buf.as_ptr().cast(), dst.as_ptr(), std::ptr::null(), libc::MS_BIND | libc::MS_REC, std::ptr::null()))?;
                if *ro {
                    check(libc::mount(std::ptr::null(), dst.as_ptr(), std::ptr::null(), libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY, std::ptr::null()))?;
                }
            }
            libc::mkdir(workdir.as_ptr(), 0o777);
            check(libc::chdir(workdir.as_ptr()))?;
            check(libc::setgroups(groups.len(), groups.as_ptr()))?;
            check(libc::setgid(gid))?;
            check(libc::setuid(uid))?;
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            log.finish();
            return fail("ContainerCannotRun", format!("{}: {e}", argv[0]));
        }
    };
    let pid = child.id().unwrap_or(0) as i32;
    run.pgids.lock().unwrap_or_else(|p| p.into_inner()).insert(c.name.clone(), pid);
    let out = child.stdout.take().map(|o| tokio::spawn(log.clone().pump(o, "stdout")));
    let err = child.stderr.take().map(|e| tokio::spawn(log.clone().pump(e, "stderr")));
    let status = child.wait().await;
    state.record(run, &c.name, "exited");
    run.pgids.lock().unwrap_or_else(|p| p.into_inner()).remove(&c.name);
    // Whatever the process left behind in its group goes too.
    // SAFETY: kill(2) on the group we created.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
    for t in [out, err].into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    log.finish();
    let code = match status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
        }
        Err(_) => 128,
    };
    let oom = run.oom.lock().unwrap_or_else(|p| p.into_inner()).contains(&c.name);
    let oom_beside = run.oom_beside.lock().unwrap_or_else(|p| p.into_inner()).contains(&c.name);
    let reason = if oom || oom_beside {
        "OOMKilled"
    } else if code == 0 {
        "Completed"
    } else {
        "Error"
    };
    CState::Terminated { code: if oom { 137 } else { code }, reason: reason.into(), started, finished: Timestamp::now().to_string(), message: None }
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn env_expansion_like_a_kubelet() {
        let env = vec![("A".to_owned(), "1".to_owned()), ("B".to_owned(), "x".to_owned())];
        assert_eq!(expand("$(A)-$(B)-$(C)-$$(A)-$", &env), "1-x-$(C)-$(A)-$");
    }
}
