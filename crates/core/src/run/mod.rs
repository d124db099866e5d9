//! `execute(ctx)`: the whole pipeline, in the order of contract §1.5.
//!
//! read config → per-agent lock { self pod → guard → bundle → create or
//! reattach } → watch pod and Job, follow the log, poll for cancellation →
//! clean up → map the outcome.
//!
//! Nothing here polls the apiserver on a timer: the pod and the Job are
//! watched (kube-runtime's watcher re-lists on 410 and backs off on errors);
//! the only timers are the host-side cancel poll, the keepalive line, and the
//! deadlines.
//!
//! Invariants:
//! - From the moment a Job exists, every path out of [`execute`] — success,
//!   agent failure, adapter error, callback error, cancellation — goes through
//!   [`cleanup`], which deletes the Job (unless `retainJobs` or a state
//!   mismatch asks to keep it) and the prompt Secret.
//! - No secret (API keys, the agent token) is put in `onMeta`, a log line or
//!   an error message.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex as StdMutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::cancel::{self, CancelProbe, Poll};
use crate::cluster::{self, describe_error, is_not_found};
use crate::config::{AdapterConfig, HostEnv};
use crate::ctx::RunContext;
use crate::guard::{self, ReattachTarget, Verdict};
use crate::host::{Host, HostError};
use crate::logs::FollowEnd;
use crate::names::sanitize_label_value;
use crate::outcome::{RunResult, map_outcome};
use crate::pod::{self, PodProgress};
use crate::report::Reporter;

mod book;
mod facts;
mod follower;
mod watches;
use book::PodBook;
use follower::Follower;
use watches::{JobNews, JobView, Unwatchable, WatchHealth};

/// Why `execute` rejects instead of returning a result.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A host callback threw or rejected; the Job was cleaned up first.
    #[error("[CALLBACK_FAILED] {0}")]
    Callback(#[from] HostError),
    /// The adapter could not prepare the run (self-pod introspection, bundle…),
    /// as the original threw in those places.
    #[error("[SETUP_FAILED] {0}")]
    Setup(String),
}

/// How often the keepalive line is considered.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// After the Job vanished, how long the log may still drain.
const JOB_GONE_DRAIN: Duration = Duration::from_secs(10);
/// How long a new Job may be without a pod before its events are read for
/// a refused pod (Pod Security, a quota, a LimitRange). The Job controller
/// creates the pod within milliseconds; admission refuses it as fast, and
/// only says so in a `FailedCreate` event: the Job itself shows nothing.
const NO_POD_YET: Duration = Duration::from_secs(3);

/// Per-agent locks around guard + create (FAR-29): two runs of one agent never
/// both pass the guard; different agents never wait on each other.
static AGENT_LOCKS: LazyLock<StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

fn agent_lock(agent: &str) -> Arc<tokio::sync::Mutex<()>> {
    let mut locks = AGENT_LOCKS.lock().unwrap_or_else(|p| p.into_inner());
    // Drop locks nobody holds, so the map stays as small as the set of busy agents.
    locks.retain(|_, l| Arc::strong_count(l) > 1);
    locks.entry(agent.to_owned()).or_default().clone()
}

/// Runs one heartbeat. `Ok` is Paperclip's result (including agent failures
/// and adapter error codes); `Err` is a rejection.
pub async fn execute<H: Host + 'static>(ctx: &Value, host: Arc<H>) -> Result<RunResult, RunError> {
    let rc = RunContext::from_json(ctx);
    let env = HostEnv::from_process();
    let reporter = Arc::new(Reporter::new(host));
    execute_with(&rc, &env, reporter).await
}

/// [`execute`] with the process environment given (tests inject it).
pub async fn execute_with<H: Host + 'static>(
    rc: &RunContext,
    env: &HostEnv,
    reporter: Arc<Reporter<H>>,
) -> Result<RunResult, RunError> {
    let cfg = match AdapterConfig::from_ctx(rc) {
        Ok(c) => c,
        Err(e) => return Ok(RunResult::error("k8s_config_invalid", &e.to_string())),
    };
    let api_url = env.paperclip_api_url();
    if api_url.is_none() {
        reporter.warn("Warning: PAPERCLIP_API_URL not set — cancel polling disabled").await?;
    }
    let Some(agent_label) = sanitize_label_value(&rc.agent.id) else {
        return Ok(RunResult::error(
            "k8s_agent_id_invalid",
            &format!("Agent ID \"{}\" cannot be sanitized to a valid Kubernetes label", rc.agent.id),
        ));
    };

    // Cancelled before anything was created: nothing to clean up.
    let cancel = reporter.cancellation();
    if cancel.is_cancelled() {
        return Ok(RunResult::cancelled_acknowledged("nothing_started"));
    }
    let lock = agent_lock(&rc.agent.id);
    let guard_held = tokio::select! {
        held = lock.lock() => held,
        _ = cancel.cancelled() => return Ok(RunResult::cancelled_acknowledged("nothing_started")),
    };
    let started = match start(rc, env, &cfg, &agent_label, &reporter).await? {
        Started::Done(result) => return Ok(result),
        Started::Running(run) => run,
    };
    drop(guard_held);

    let probe = match api_url.as_deref() {
        Some(url) => CancelProbe::new(url, &rc.run_id, rc.auth_token.as_deref()),
        None => None,
    };
    let outcome = follow(rc, &cfg, &started, &reporter, probe).await;
    let retain = matches!(&outcome, Ok(f) if f.retain);
    cleanup(&started, &cfg, retain, outcome.as_ref().is_ok_and(|f| f.job_already_deleted), &reporter).await;
    let followed = outcome?;
    Ok(followed.result)
}

/// A Job we created or reattached to, and what cleanup must know of it.
struct Running {
    client: Client,
    lists: Arc<crate::watch::ListSupport>,
    namespace: String,
    job_name: String,
    job_uid: Option<String>,
    prompt_secret: Option<String>,
    reattached: bool,
}

enum Started {
    Running(Running),
    Done(RunResult),
}

/// Everything under the per-agent lock: connect, guard, then create or reattach.
async fn start<H: Host>(
    rc: &RunContext,
    env: &HostEnv,
    cfg: &AdapterConfig,
    agent_label: &str,
    reporter: &Reporter<H>,
) -> Result<Started, RunError> {
    let cluster = cluster::connect(cfg.kubeconfig.as_deref()).await.map_err(|e| RunError::Setup(e.to_string()))?;
    let self_pod = crate::selfpod::cached_discover(&cluster.client, env, cfg.kubeconfig.as_deref())
        .await
        .map_err(|e| RunError::Setup(e.to_string()))?;
    let namespace = cfg
        .namespace
        .clone()
        .or_else(|| self_pod.as_ref().map(|p| p.namespace.clone()))
        .unwrap_or_else(|| cluster.default_namespace.clone());

    let session_label = rc.session_id().and_then(sanitize_label_value);
    let task_label = rc.task_id().and_then(sanitize_label_value);

    // The guard fails closed: no list, no run.
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), &namespace);
    let listed = match jobs.list(&ListParams::default().labels(&guard::agent_selector(agent_label))).await {
        Ok(l) => l.items,
        Err(e) => {
            return Ok(Started::Done(RunResult::error(
                "k8s_concurrency_guard_unreachable",
                &format!("Concurrency guard unreachable: {}", describe_error(&e)),
            )));
        }
    };
    let verdict = guard::decide(
        &listed,
        &rc.run_id,
        &namespace,
        cfg.reattach_orphaned_jobs,
        task_label.as_deref(),
        session_label.as_deref(),
    );
    if let Verdict::Block { code, message } = &verdict {
        return Ok(Started::Done(RunResult::error(code, message)));
    }

    let has_volume = self_pod.as_ref().is_some_and(|p| p.pvc_claim_name.is_some());
    let prepared = crate::bundle::prepare_for_run(rc, cfg, env, has_volume).map_err(|e| RunError::Setup(e.to_string()))?;
    for line in &prepared.log_lines {
        reporter.info(line).await?;
    }
    for line in &prepared.warnings {
        reporter.warn(line).await?;
    }

    if let Verdict::Reattach(target) = verdict {
        return reattach(rc, cfg, &cluster, target, session_label.as_deref(), reporter).await;
    }
    create(rc, env, cfg, &cluster, &namespace, self_pod.as_ref(), &prepared, reporter).await
}

async fn reattach<H: Host>(
    rc: &RunContext,
    cfg: &AdapterConfig,
    cluster: &crate::cluster::Cluster,
    target: ReattachTarget,
    session_label: Option<&str>,
    reporter: &Reporter<H>,
) -> Result<Started, RunError> {
    let ReattachTarget { job_name, namespace, prior_run_id, image } = target;
    let client = cluster.client.clone();
    reporter
        .meta(json!({
            "adapterType": guard::ADAPTER_TYPE,
            "command": format!("kubectl job/{job_name}"),
            "cwd": namespace,
            "commandArgs": [],
            "commandNotes": [
                format!("Image: {image}"),
                format!("Namespace: {namespace}"),
                format!("Reattached from prior run: {}", prior_run_id.as_deref().unwrap_or("unknown")),
                format!("Timeout: {}s", cfg.timeout_sec),
            ],
            "prompt": "",
            "context": Value::Object(rc.context.clone()),
        }))
        .await?;
    reporter
        .info(format!(
            "Reattaching to in-flight K8s Job {job_name} in namespace {namespace} (prior run: {})",
            prior_run_id.as_deref().unwrap_or("unknown")
        ))
        .await?;
    // Relabel so the next guard sees this run as the Job's owner.
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let mut labels = serde_json::Map::new();
    if let Some(run) = sanitize_label_value(&rc.run_id) {
        labels.insert(guard::LABEL_RUN_ID.into(), json!(run));
    }
    if let Some(s) = session_label {
        labels.insert(guard::LABEL_SESSION_ID.into(), json!(s));
    }
    let patch = json!({"metadata": {"labels": labels}});
    let mut job_uid = None;
    match jobs.patch(&job_name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(j) => job_uid = j.metadata.uid,
        Err(e) => reporter.warn(format!("Warning: could not relabel Job {job_name}: {}", describe_error(&e))).await?,
    }
    Ok(Started::Running(Running {
        client,
        lists: cluster.lists.clone(),
        namespace,
        job_name,
        job_uid,
        prompt_secret: None,
        reattached: true,
    }))
}

#[allow(clippy::too_many_arguments)]
async fn create<H: Host>(
    rc: &RunContext,
    env: &HostEnv,
    cfg: &AdapterConfig,
    cluster: &crate::cluster::Cluster,
    namespace: &str,
    self_pod: Option<&crate::selfpod::SelfPod>,
    prepared: &crate::bundle::PreparedRun,
    reporter: &Reporter<H>,
) -> Result<Started, RunError> {
    let client = cluster.client.clone();
    let input = crate::job::JobInput {
        ctx: rc,
        config: cfg,
        self_pod,
        bundle: prepared.bundle.as_ref(),
        env,
        namespace,
        instructions: prepared.instructions.as_deref(),
    };
    let plan = match crate::job::build_job(&input) {
        Ok(p) => p,
        Err(e) => return Ok(Started::Done(RunResult::error("k8s_job_create_failed", &format!("Failed to build Kubernetes Job: {e}")))),
    };
    if !plan.skipped_labels.is_empty() {
        reporter.warn(format!("Warning: skipped labels: {}", plan.skipped_labels.join(", "))).await?;
    }
    for note in &plan.notes {
        reporter.info(note).await?;
    }
    let image = plan.image().unwrap_or_default();
    let mut notes = vec![
        format!("Image: {image}"),
        format!("Namespace: {}", plan.namespace),
        format!("Timeout: {}s", cfg.timeout_sec),
    ];
    notes.push(prepared.skills_note.clone());
    reporter
        .meta(json!({
            "adapterType": guard::ADAPTER_TYPE,
            "command": format!("kubectl job/{}", plan.job_name),
            "cwd": plan.namespace,
            "commandArgs": plan.claude_args,
            "commandNotes": notes,
            "prompt": plan.prompt,
            "promptMetrics": plan.prompt_metrics,
            "context": Value::Object(rc.context.clone()),
        }))
        .await?;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &plan.namespace);
    let mut secret_name = None;
    if let Some(secret) = &plan.prompt_secret {
        if let Err(e) = secrets.create(&PostParams::default(), secret).await {
            return Ok(Started::Done(RunResult::error(
                "k8s_prompt_secret_create_failed",
                &format!("Failed to create prompt Secret: {}", describe_error(&e)),
            )));
        }
        secret_name = secret.metadata.name.clone();
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), &plan.namespace);
    let created = match jobs.create(&PostParams::default(), &plan.job).await {
        Ok(j) => j,
        Err(e) => {
            if let Some(name) = &secret_name {
                let _ = secrets.delete(name, &DeleteParams::default()).await;
            }
            return Ok(Started::Done(RunResult::error(
                "k8s_job_create_failed",
                &format!("Failed to create Kubernetes Job: {}", describe_error(&e)),
            )));
        }
    };
    let job_uid = created.metadata.uid.clone();
    // The Secret belongs to the Job: if we die, the garbage collector removes it with the Job.
    if let (Some(name), Some(uid)) = (&secret_name, &job_uid) {
        let patch = json!({"metadata": {"ownerReferences": [{
            "apiVersion": "batch/v1", "kind": "Job", "name": plan.job_name, "uid": uid, "blockOwnerDeletion": false
        }]}});
        if let Err(e) = secrets.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            reporter.warn(format!("Warning: could not set the prompt Secret's owner: {}", describe_error(&e))).await?;
        }
    }
    let deadline = if cfg.timeout_sec > 0 { format!("{}s", cfg.timeout_sec) } else { "none".into() };
    reporter
        .info(format!("Created K8s Job: {} in namespace {} (deadline: {deadline})", plan.job_name, plan.namespace))
        .await?;
    Ok(Started::Running(Running {
        client,
        lists: cluster.lists.clone(),
        namespace: plan.namespace.clone(),
        job_name: plan.job_name.clone(),
        job_uid,
        prompt_secret: secret_name,
        reattached: false,
    }))
}

/// What following the run produced.
struct Followed {
    result: RunResult,
    /// Keep the Job (state mismatch: the UI is waiting on it).
    retain: bool,
    /// The Job is already gone (cancelled and deleted, or deleted externally).
    job_already_deleted: bool,
}

async fn follow<H: Host + 'static>(
    rc: &RunContext,
    cfg: &AdapterConfig,
    run: &Running,
    reporter: &Arc<Reporter<H>>,
    probe: Option<CancelProbe>,
) -> Result<Followed, RunError> {
    let pods: Api<Pod> = Api::namespaced(run.client.clone(), &run.namespace);
    let mut pod_events = watches::pod_events(run);
    let mut job_events = watches::job_events(run);

    let mut follower = Follower::new(cfg.model.as_deref().unwrap_or_default());
    let mut book = PodBook::default();
    let mut pod_name: Option<String> = None;
    let mut last_description = String::new();
    let mut spawned = false;
    let mut pod_running_at: Option<Instant> = None;
    let mut job = JobView::default();
    let mut health = WatchHealth::default();
    let host_cancel = reporter.cancellation();
    let mut cancelled_by: Option<&str> = None;
    let mut timed_out = false;
    // Since when the pod's node has been silent (see `pod::node_silence`).
    let mut node_silent: Option<pod::NodeSilence> = None;
    let node_lost_limit = (cfg.node_lost_timeout_sec > 0).then(|| Duration::from_secs(cfg.node_lost_timeout_sec as u64));
    let node_lost_deadline = tokio::time::sleep(Duration::from_secs(u64::MAX / 4));
    tokio::pin!(node_lost_deadline);

    let schedule_deadline = tokio::time::sleep(Duration::from_secs(pod::SCHEDULE_TIMEOUT_SECS));
    tokio::pin!(schedule_deadline);
    let completion_limit = if cfg.timeout_sec > 0 {
        Some(Duration::from_secs((cfg.timeout_sec + cfg.grace_sec.max(0)) as u64))
    } else {
        None
    };
    let run_deadline = tokio::time::sleep(completion_limit.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(run_deadline);
    let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE_INTERVAL, KEEPALIVE_INTERVAL);
    let mut cancel_tick = tokio::time::interval_at(tokio::time::Instant::now() + cancel::POLL_INTERVAL, cancel::POLL_INTERVAL);
    let job_gone_drain = tokio::time::sleep(Duration::from_secs(u64::MAX / 4));
    tokio::pin!(job_gone_drain);
    let no_pod_yet = tokio::time::sleep(NO_POD_YET);
    tokio::pin!(no_pod_yet);
    // The Job's `FailedCreate` events, watched only once it has gone NO_POD_YET without a pod.
    let mut refusals: Option<watches::RefusalEvents> = None;
    let mut refusals_opened = false;

    // The loop ends when the follower has finished, or a decision ends the run early.
    let early: Option<RunResult> = loop {
        let started = follower.view().started;
        tokio::select! {
            ev = pod_events.next() => {
                match ev {
                    Some(Ok(ev)) => {
                        health.pod_event(&ev);
                        book.apply(ev);
                    }
                    Some(Err(e)) => {
                        health.pod_failed(&e, Instant::now());
                        tracing::debug!(error = %e, "pod watch error");
                    }
                    None => {}
                }
                let current = book.current().cloned();
                if let Some(p) = &current {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let description = pod::describe(p);
                    if description != last_description {
                        reporter.info(format!("Pod {name}: {description}")).await?;
                        last_description = description;
                    }
                    if pod_name.as_deref() != Some(name.as_str()) {
                        pod_name = Some(name.clone());
                    }
                    match pod::assess(p) {
                        PodProgress::Started if !spawned => {
                            spawned = true;
                            book.followed = Some(name.clone());
                            pod_running_at = Some(Instant::now());
                            follower.start(pods.clone(), name.clone(), reporter.clone());
                        }
                        PodProgress::Failed(msg) if !spawned => {
                            let (code, prefix) = if run.reattached { ("k8s_pod_reattach_failed", "Pod reattach failed") } else { ("k8s_pod_schedule_failed", "Pod scheduling failed") };
                            break Some(RunResult::error(code, &format!("{prefix}: {msg}")));
                        }
                        _ => {}
                    }
                }
                match (current.as_ref().and_then(pod::node_silence), &node_silent) {
                    (Some(silence), None) => {
                        let since = silence.since.as_deref().unwrap_or("now");
                        let wait = match node_lost_limit {
                            Some(l) => format!("the run is given up in {}s unless it comes back", l.as_secs()),
                            None => "waiting for it (nodeLostTimeoutSec is 0)".to_owned(),
                        };
                        reporter.warn(format!("Warning: node {} stopped reporting (pod not ready since {since}); {wait}", silence.node)).await?;
                        if let Some(l) = node_lost_limit {
                            node_lost_deadline.as_mut().reset(tokio::time::Instant::now() + l);
                        }
                        node_silent = Some(silence);
                    }
                    (None, Some(silence)) => {
                        reporter.info(format!("Node {} is reporting again", silence.node)).await?;
                        node_silent = None;
                    }
                    _ => {}
                }
                let terminated = current.as_ref().is_some_and(|p| pod::claude_terminated(p).is_some());
                let gone = book.ever_seen && current.is_none();
                follower.publish(spawned, terminated, gone);
                if follower.unreadable && (terminated || gone) {
                    break None;
                }
                if run.reattached && !spawned && book.listed_once && !book.ever_seen {
                    break Some(RunResult::error("k8s_pod_reattach_failed", &format!("Pod reattach failed: Reattach target Job {} has no pod", run.job_name)));
                }
            }
            ev = job_events.next() => {
                match ev {
                    Some(Ok(state)) => {
                        health.job_event();
                        match job.observe(state, Instant::now()) {
                            JobNews::Seen { deadline_exceeded: true } => timed_out = true,
                            JobNews::Vanished => {
                                job_gone_drain.as_mut().reset(tokio::time::Instant::now() + JOB_GONE_DRAIN);
                                if !spawned {
                                    // Nothing will ever run: stop waiting for a pod.
                                    follower.stop();
                                }
                            }
                            JobNews::Seen { .. } | JobNews::StillGone => {}
                        }
                    }
                    Some(Err(e)) => {
                        health.job_failed(&e, Instant::now());
                        tracing::debug!(error = %e, "job watch error");
                    }
                    None => {}
                }
            }
            joined = follower.ended(), if follower.is_running() => {
                match follower.on_ended(joined)? {
                    // No log to read: still wait for the container's exit code.
                    FollowEnd::Unreadable(msg) => {
                        reporter.warn(format!("Warning: could not read the pod's log: {msg}")).await?;
                        follower.unreadable = true;
                        // The container may have ended already: no pod event will come.
                        let v = follower.view();
                        if v.terminated || v.pod_gone {
                            break None;
                        }
                    }
                    _ => break None,
                }
            }
            _ = &mut no_pod_yet, if !refusals_opened && !book.ever_seen && !run.reattached && run.job_uid.is_some() => {
                refusals_opened = true;
                refusals = Some(watches::refusal_events(run));
            }
            ev = async { refusals.as_mut().expect("guarded").next().await }, if refusals.is_some() && !book.ever_seen => {
                match ev {
                    Some(Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e))) => {
                        if let Some(msg) = watches::refused_pod(e) {
                            break Some(RunResult::error(
                                "k8s_job_create_failed",
                                &format!("Failed to create Kubernetes Job: Job {} was created but its pod was refused — {msg}", run.job_name),
                            ));
                        }
                    }
                    Some(Err(e)) => {
                        // No right to read events (or they fail): the schedule timeout still ends the wait.
                        tracing::debug!(error = %e, "events watch failed; not watching for refused pods");
                        refusals = None;
                    }
                    None => refusals = None,
                    Some(Ok(_)) => {}
                }
            }
            _ = &mut schedule_deadline, if !started && !spawned && job.gone_at.is_none() => {
                let code = if run.reattached { "k8s_pod_reattach_failed" } else { "k8s_pod_schedule_failed" };
                let prefix = if run.reattached { "Pod reattach failed" } else { "Pod scheduling failed" };
                break Some(RunResult::error(code, &format!("{prefix}: Timed out waiting for pod to be scheduled ({}s)", pod::SCHEDULE_TIMEOUT_SECS)));
            }
            _ = &mut run_deadline, if completion_limit.is_some() => {
                timed_out = true;
                follower.stop();
                if !follower.is_running() { break None; }
            }
            _ = &mut node_lost_deadline, if node_silent.is_some() && node_lost_limit.is_some() => {
                let silence = node_silent.as_ref().expect("guarded");
                let pod = pod_name.as_deref().unwrap_or("?");
                break Some(RunResult::error(
                    "k8s_node_lost",
                    &format!(
                        "Node {} stopped reporting: pod {pod} has been marked not ready by the node controller since {} while claude was still running, and the node did not come back within {}s (nodeLostTimeoutSec); the run is abandoned and Job {} {}",
                        silence.node,
                        silence.since.as_deref().unwrap_or("an unknown time"),
                        cfg.node_lost_timeout_sec,
                        run.job_name,
                        if cfg.retain_jobs { "kept (retainJobs)" } else { "deleted" },
                    ),
                ));
            }
            _ = &mut job_gone_drain, if job.gone_at.is_some() => {
                follower.stop();
                if !follower.is_running() { break None; }
            }
            _ = cancel_tick.tick(), if probe.is_some() => {
                match probe.as_ref().expect("guarded").poll().await {
                    Poll::Cancelled => cancelled_by = Some("externally"),
                    Poll::Transient(msg) => reporter.warn(msg).await?,
                    Poll::KeepGoing => {}
                }
            }
            _ = host_cancel.cancelled(), if cancelled_by.is_none() => cancelled_by = Some("by the host"),
            _ = keepalive.tick() => {
                if spawned {
                    let silent = reporter.since_last_log().as_secs();
                    if silent >= KEEPALIVE_INTERVAL.as_secs() {
                        reporter.info(format!("keepalive — job {} running ({silent}s since last output)", run.job_name)).await?;
                    }
                }
            }
        }
        if let Some(by) = cancelled_by {
            reporter.info(format!("Run cancelled {by} — deleting Job {}", run.job_name)).await?;
            follower.abandon().await;
            // Acknowledge only what is true: the Job (and so its pod) is gone.
            let result = if delete_job(run, reporter).await { RunResult::cancelled_acknowledged("k8s_job_deleted") } else { RunResult::cancelled() };
            return Ok(Followed { result, retain: false, job_already_deleted: true });
        }
        // A watch the Role forbids will not start working by waiting: say so
        // now, in the words of the step that needed it, and clean up.
        match health.verdict(Instant::now(), spawned) {
            None => {}
            Some(Unwatchable::Pods(msg)) => {
                let (code, prefix) = if run.reattached { ("k8s_pod_reattach_failed", "Pod reattach failed") } else { ("k8s_pod_schedule_failed", "Pod scheduling failed") };
                break Some(RunResult::error(code, &format!("{prefix}: cannot watch the Job's pods (the Role must allow list and watch on pods): {msg}")));
            }
            Some(Unwatchable::Job(msg)) => {
                break Some(RunResult::error(
                    "k8s_job_state_mismatch",
                    &format!("Job {} cannot be followed (the Role must allow list and watch on jobs): {msg}", run.job_name),
                ));
            }
            Some(Unwatchable::StateUnknown) => {
                follower.abandon().await;
                return Ok(Followed {
                    result: RunResult::error_with_exit(
                        "k8s_job_state_mismatch",
                        &format!("Job {} did not complete cleanly (log stream ended before job reached terminal state)", run.job_name),
                        None,
                    ),
                    retain: true,
                    job_already_deleted: false,
                });
            }
        }
    };
    let parser = follower.finish().await?;
    if let Some(result) = early {
        return Ok(Followed { result, retain: false, job_already_deleted: job.gone_at.is_some() });
    }

    let termination = facts::termination(&book);
    let transcript = parser.finish();
    let seen = facts::Observed { book: &book, job: &job, timed_out, pod_running_at };
    let facts = facts::run_facts(rc, cfg, &run.job_name, &run.namespace, &seen, Instant::now());
    if facts::transcript_is_unknown_session(&facts, &transcript, termination.as_ref()) {
        reporter.info("Claude session is unavailable; clearing for next run.").await?;
    }
    let result = map_outcome(&facts, &transcript, termination.as_ref());
    Ok(Followed { result, retain: false, job_already_deleted: job.gone_at.is_some() })
}

/// Deletes the Job (its pods follow). True when it is gone, whoever removed it.
async fn delete_job<H: Host>(run: &Running, reporter: &Reporter<H>) -> bool {
    let jobs: Api<Job> = Api::namespaced(run.client.clone(), &run.namespace);
    let dp = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..DeleteParams::default() };
    match jobs.delete(&run.job_name, &dp).await {
        Ok(_) => true,
        Err(e) if is_not_found(&e) => true,
        Err(e) => {
            let _ = reporter.warn(format!("Warning: failed to delete Job {}: {}", run.job_name, describe_error(&e))).await;
            false
        }
    }
}

/// Deletes what the run created, on every path. Failures are warnings only.
async fn cleanup<H: Host>(run: &Running, cfg: &AdapterConfig, retain_for_mismatch: bool, already_deleted: bool, reporter: &Reporter<H>) {
    if retain_for_mismatch {
        let _ = reporter.info(format!("Retaining job {} (state mismatch — UI is waiting on it)", run.job_name)).await;
    } else if cfg.retain_jobs {
        let _ = reporter.info(format!("Retaining job {} for debugging (retainJobs=true)", run.job_name)).await;
    } else if !already_deleted {
        delete_job(run, reporter).await;
    }
    if let Some(name) = &run.prompt_secret {
        let secrets: Api<Secret> = Api::namespaced(run.client.clone(), &run.namespace);
        if let Err(e) = secrets.delete(name, &DeleteParams::default()).await && !is_not_found(&e) {
            let _ = reporter.warn(format!("Warning: failed to delete prompt Secret {name}: {}", describe_error(&e))).await;
        }
    }
}
