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
//! This module keeps the pipeline's ends — the lock, starting (create or
//! reattach) and cleanup; following the Job is in its submodules:
//! `follow` (the loop over what happens next, and the outcome),
//! `watches` (the Job's and pods' watches and their health), `book`
//! (the pods as watched), `follower` (the log follower task) and
//! `facts` (what the loop saw, as `RunFacts`).
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

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::{Api, Client};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::cancel::CancelProbe;
use crate::cluster::{self, describe_error, is_not_found};
use crate::config::{AdapterConfig, HostEnv};
use crate::ctx::RunContext;
use crate::guard::{self, ReattachTarget, Verdict};
use crate::host::{Host, HostError};
use crate::job_events::{EventSink, JobEvents, Milestone};
use crate::names::sanitize_label_value;
use crate::outcome::RunResult;
use crate::report::Reporter;

mod book;
mod facts;
mod follow;
mod follower;
mod watches;
use follow::follow;

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

/// Per-agent locks around guard + create (FAR-29): two runs of one agent never
/// both pass the guard; different agents never wait on each other.
static AGENT_LOCKS: LazyLock<StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = LazyLock::new(Default::default);

fn agent_lock(agent: &str) -> Arc<tokio::sync::Mutex<()>> {
    let mut locks = AGENT_LOCKS.lock().unwrap_or_else(|p| p.into_inner());
    // Drop locks nobody holds, so the map stays as small as the set of busy agents.
    locks.retain(|_, l| Arc::strong_count(l) > 1);
    locks.entry(agent.to_owned()).or_default().clone()
}

/// Runs one heartbeat. `Ok` is Paperclip's result (including agent failures
/// and adapter error codes); `Err` is a rejection.
/// The binding runs `execute` on tokio's multi-thread runtime: its future
/// must be `Send` for any host. Checked when the core's tests compile (the
/// core's own tests run it on one thread, where nothing else would notice).
#[cfg(test)]
#[allow(dead_code)]
fn execute_is_send<H: Host + 'static>(
    ctx: &Value,
    host: Arc<H>,
) -> impl std::future::Future<Output = Result<RunResult, RunError>> + Send + '_ {
    execute(ctx, host)
}

pub async fn execute<H: Host + 'static>(ctx: &Value, host: Arc<H>) -> Result<RunResult, RunError> {
    let rc = RunContext::from_json(ctx);
    let env = HostEnv::from_process();
    crate::diagnostics::install_from_env(&env);
    let reporter = Arc::new(Reporter::new(host));
    execute_with(&rc, &env, reporter).await
}

/// [`execute`] with the process environment given (tests inject it), in the
/// run's span: run and agent ids, then the Job and namespace once known; each
/// phase (guard, create or reattach, follow, cleanup) a span inside it, timed
/// by the subscriber when it closes.
pub async fn execute_with<H: Host + 'static>(rc: &RunContext, env: &HostEnv, reporter: Arc<Reporter<H>>) -> Result<RunResult, RunError> {
    let span = tracing::info_span!("run", run_id = %rc.run_id, agent_id = %rc.agent.id, job = tracing::field::Empty, namespace = tracing::field::Empty);
    let result = run_in_span(rc, env, reporter).instrument(span.clone()).await;
    span.in_scope(|| match &result {
        Ok(r) => tracing::info!(exit_code = ?r.exit_code, error_code = ?r.error_code, timed_out = r.timed_out, "run ended"),
        Err(e) => tracing::warn!(error = %e, "run failed in the adapter"),
    });
    result
}

async fn run_in_span<H: Host + 'static>(rc: &RunContext, env: &HostEnv, reporter: Arc<Reporter<H>>) -> Result<RunResult, RunError> {
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
    let mut started = match start(rc, env, &cfg, &agent_label, &reporter).await? {
        Started::Done(result) => return Ok(result),
        Started::Running(run) => run,
    };
    drop(guard_held);
    tracing::Span::current()
        .record("job", tracing::field::display(&started.job_name))
        .record("namespace", tracing::field::display(&started.namespace));

    let probe = match api_url.as_deref() {
        Some(url) => CancelProbe::new(url, &rc.run_id, rc.auth_token.as_deref()),
        None => None,
    };
    let events = JobEvents::start(
        started.client.clone(),
        cfg.kubeconfig.as_deref(),
        &started.namespace,
        &started.job_name,
        started.job_uid.as_deref(),
        started.reporting_instance.take().or_else(|| env.non_blank("HOSTNAME").map(str::to_owned)),
    );
    started.events = events.sink();
    let outcome = follow(rc, &cfg, &started, &reporter, probe).instrument(tracing::info_span!("follow")).await;
    // The outcome is the Job's last Event. It is written while cleanup runs:
    // an Event names the Job by uid and outlives it, and each is a request
    // the host would otherwise wait for in turn (bench: completion).
    // The follower's sinks went with it; this is the last one.
    started.events = EventSink::default();
    let outcome_event = async {
        if let Ok(followed) = &outcome {
            events.finish(Milestone::outcome(&rc.run_id, &followed.result)).await;
        }
    };
    let retain = matches!(&outcome, Ok(f) if f.retain);
    let cleaned = cleanup(&started, &cfg, retain, outcome.as_ref().is_ok_and(|f| f.job_already_deleted), &reporter)
        .instrument(tracing::info_span!("cleanup"));
    tokio::join!(outcome_event, cleaned);
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
    /// The run's egress NetworkPolicy, when this run created one.
    egress_policy: Option<String>,
    /// It belongs to the Job (and, once seen, to its pods): the garbage
    /// collector removes it, never before the last of them is gone.
    egress_owned: bool,
    reattached: bool,
    /// Who writes the Job's Events: the host's pod, when it is one.
    reporting_instance: Option<String>,
    /// Where the run's milestones go as Kubernetes Events (off until following starts).
    events: EventSink,
}

enum Started {
    Running(Running),
    Done(RunResult),
}

impl Started {
    /// The run's Events name the host's pod as their reporting instance.
    fn reported_by(mut self, self_pod: Option<&crate::selfpod::SelfPod>) -> Self {
        if let Started::Running(r) = &mut self {
            r.reporting_instance = self_pod.map(|p| p.name.clone());
        }
        self
    }
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
    let listed = match jobs
        .list(&ListParams::default().labels(&guard::agent_selector(agent_label)))
        .instrument(tracing::info_span!("guard", %namespace))
        .await
    {
        Ok(l) => l.items,
        Err(e) => {
            return Ok(Started::Done(RunResult::error(
                "k8s_concurrency_guard_unreachable",
                &format!("Concurrency guard unreachable: {}", describe_error(&e)),
            )));
        }
    };
    let verdict =
        guard::decide(&listed, &rc.run_id, &namespace, cfg.reattach_orphaned_jobs, task_label.as_deref(), session_label.as_deref());
    tracing::info!(
        verdict = match &verdict {
            Verdict::Block { .. } => "block",
            Verdict::Reattach(_) => "reattach",
            _ => "create",
        },
        jobs_of_agent = listed.len(),
        "concurrency guard"
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
        let started = reattach(rc, cfg, &cluster, target, session_label.as_deref(), reporter).instrument(tracing::info_span!("reattach")).await;
        return started.map(|s| s.reported_by(self_pod.as_ref()));
    }
    let started = create(rc, env, cfg, &cluster, &namespace, self_pod.as_ref(), &prepared, reporter).instrument(tracing::info_span!("create")).await;
    started.map(|s| s.reported_by(self_pod.as_ref()))
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
        // A reattached run's policy (and Secret) belong to the Job: they go with it.
        egress_policy: None,
        egress_owned: false,
        reattached: true,
        reporting_instance: None,
        events: EventSink::default(),
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
    // The keys behind what the pod would inherit whole (envFrom, secret
    // volumes), so that the server's secrets among them stay behind.
    let sources = match self_pod {
        Some(p) if !cfg.inherit_server_secrets => {
            let mut keys = crate::selfpod::read_source_keys(&client, namespace, p).await;
            if p.pvc_claim_name.is_some() {
                keys.server_state = crate::withhold::server_state(env);
            }
            Some(keys)
        }
        _ => None,
    };
    let input = crate::job::JobInput {
        ctx: rc,
        config: cfg,
        self_pod,
        bundle: prepared.bundle.as_ref(),
        env,
        namespace,
        instructions: prepared.instructions.as_deref(),
        sources: sources.as_ref(),
    };
    let plan = match crate::job::build_job(&input) {
        Ok(p) => p,
        Err(e) => {
            return Ok(Started::Done(RunResult::error("k8s_job_create_failed", &format!("Failed to build Kubernetes Job: {e}"))));
        }
    };
    if !plan.skipped_labels.is_empty() {
        reporter.warn(format!("Warning: skipped labels: {}", plan.skipped_labels.join(", "))).await?;
    }
    for note in &plan.notes {
        reporter.info(note).await?;
    }
    for line in &plan.withheld {
        reporter.warn(format!("Warning: {line}")).await?;
    }
    if let Some(e) = &plan.egress {
        reporter.info(format!("Egress policy: only {}", e.allows.join("; "))).await?;
        for w in &e.warnings {
            reporter.warn(format!("Warning: {w}")).await?;
        }
    }
    let image = plan.image().unwrap_or_default();
    let mut notes = vec![format!("Image: {image}"), format!("Namespace: {}", plan.namespace), format!("Timeout: {}s", cfg.timeout_sec)];
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
    // Before the Job: its pod must never run without the policy it asked for.
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), &plan.namespace);
    let mut policy_name = None;
    if let Some(egress) = &plan.egress {
        if let Err(e) = policies.create(&PostParams::default(), &egress.policy).await {
            if let Some(name) = &secret_name {
                let _ = secrets.delete(name, &DeleteParams::default()).await;
            }
            return Ok(Started::Done(RunResult::error(
                "k8s_egress_policy_create_failed",
                &format!("Failed to create the run's egress NetworkPolicy (egressPolicy): {}", describe_error(&e)),
            )));
        }
        policy_name = egress.policy.metadata.name.clone();
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), &plan.namespace);
    let created = match jobs.create(&PostParams::default(), &plan.job).await {
        Ok(j) => j,
        Err(e) => {
            if let Some(name) = &secret_name {
                let _ = secrets.delete(name, &DeleteParams::default()).await;
            }
            if let Some(name) = &policy_name {
                let _ = policies.delete(name, &DeleteParams::default()).await;
            }
            return Ok(Started::Done(RunResult::error(
                "k8s_job_create_failed",
                &format!("Failed to create Kubernetes Job: {}", describe_error(&e)),
            )));
        }
    };
    let job_uid = created.metadata.uid.clone();
    // The Secret belongs to the Job: if we die, the garbage collector removes it with the Job.
    if let Some(uid) = &job_uid {
        let patch = json!({"metadata": {"ownerReferences": [{
            "apiVersion": "batch/v1", "kind": "Job", "name": plan.job_name, "uid": uid, "blockOwnerDeletion": false
        }]}});
        if let Some(name) = &secret_name
            && let Err(e) = secrets.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await
        {
            reporter.warn(format!("Warning: could not set the prompt Secret's owner: {}", describe_error(&e))).await?;
        }
    }
    let mut egress_owned = false;
    if let Some(name) = &policy_name {
        match set_policy_owners(&policies, name, &plan.job_name, job_uid.as_deref(), &[]).await {
            Ok(()) => egress_owned = true,
            Err(e) => reporter.warn(format!("Warning: could not set the egress NetworkPolicy's owner: {e}")).await?,
        }
    }
    let deadline = if cfg.timeout_sec > 0 { format!("{}s", cfg.timeout_sec) } else { "none".into() };
    reporter.info(format!("Created K8s Job: {} in namespace {} (deadline: {deadline})", plan.job_name, plan.namespace)).await?;
    Ok(Started::Running(Running {
        client,
        lists: cluster.lists.clone(),
        namespace: plan.namespace.clone(),
        job_name: plan.job_name.clone(),
        job_uid,
        prompt_secret: secret_name,
        egress_policy: policy_name,
        egress_owned,
        reattached: false,
        reporting_instance: None,
        events: EventSink::default(),
    }))
}

/// Makes the run's egress policy belong to its Job and to each of `pods`
/// (name, uid). The garbage collector removes an object only when all of its
/// owners are gone, so the policy outlives every pod of the run, however the
/// run ends and whoever deletes the Job.
async fn own_egress_policy(run: &Running, pods: &[(String, String)]) -> Result<(), String> {
    let Some(name) = &run.egress_policy else {
        return Ok(());
    };
    let policies: Api<NetworkPolicy> = Api::namespaced(run.client.clone(), &run.namespace);
    set_policy_owners(&policies, name, &run.job_name, run.job_uid.as_deref(), pods).await
}

/// Sets the policy's owners: the Job (when its uid is known) and `pods`.
pub(crate) async fn set_policy_owners(
    policies: &Api<NetworkPolicy>,
    name: &str,
    job_name: &str,
    job_uid: Option<&str>,
    pods: &[(String, String)],
) -> Result<(), String> {
    let mut owners: Vec<Value> = job_uid
        .map(|uid| json!({"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": uid, "blockOwnerDeletion": false}))
        .into_iter()
        .collect();
    owners
        .extend(pods.iter().map(|(n, uid)| json!({"apiVersion": "v1", "kind": "Pod", "name": n, "uid": uid, "blockOwnerDeletion": false})));
    if owners.is_empty() {
        return Err("the Job's uid is unknown".into());
    }
    let patch = json!({"metadata": {"ownerReferences": owners}});
    policies.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(drop).map_err(|e| describe_error(&e))
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
    }
    let job = async {
        if !(retain_for_mismatch || cfg.retain_jobs || already_deleted) {
            delete_job(run, reporter).await;
        }
    };
    // The prompt Secret goes at the same time: neither waits for the other.
    let secret = async {
        if let Some(name) = &run.prompt_secret {
            let secrets: Api<Secret> = Api::namespaced(run.client.clone(), &run.namespace);
            if let Err(e) = secrets.delete(name, &DeleteParams::default()).await
                && !is_not_found(&e)
            {
                let _ = reporter.warn(format!("Warning: failed to delete prompt Secret {name}: {}", describe_error(&e))).await;
            }
        }
    };
    tokio::join!(job, secret);
    // An owned policy is the garbage collector's to remove, after the Job and
    // every pod of it are gone: deleting it here would free a pod still in
    // its grace period (the Job's pods are deleted in the background, and
    // `sh -c` as PID 1 takes the whole 30 s). Only an orphan is deleted here.
    if let Some(name) = &run.egress_policy
        && !run.egress_owned
        && !(retain_for_mismatch || cfg.retain_jobs)
    {
        let policies: Api<NetworkPolicy> = Api::namespaced(run.client.clone(), &run.namespace);
        if let Err(e) = policies.delete(name, &DeleteParams::default()).await
            && !is_not_found(&e)
        {
            let _ = reporter.warn(format!("Warning: failed to delete egress NetworkPolicy {name}: {}", describe_error(&e))).await;
        }
    }
}
