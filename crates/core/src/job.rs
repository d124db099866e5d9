//! The Job, its pod spec and the run's Secret (contract §1.7), built with
//! k8s-openapi types — never hand-written JSON.
//!
//! Invariants: every label value comes from [`sanitize_label_value`] (or is a
//! constant), the Job name from [`job_name`]; reserved label prefixes cannot be
//! overridden by user labels; every claude argument goes through
//! [`crate::shell::quote`]; a prompt too large for a Secret is refused before
//! anything is created.
//!
//! What the agent must not be handed (issue 21): the Job spec holds no
//! secret value and no prompt text — the prompt, the run's token
//! (`PAPERCLIP_API_KEY`), the wake payload and every env value whose name
//! looks like a secret travel in the run's Secret (`<job>-prompt`, owned by
//! the Job) and reach the container through `secretKeyRef` under the same
//! names; the pod gets no ServiceAccount token unless one is asked for; and
//! the server's own secrets inherited from Paperclip's pod are held back
//! ([`crate::withhold`]), `envFrom` expanded key by key so that they can be.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapKeySelector, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile, Secret,
    SecretKeySelector, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::bundle::PromptBundle;
use crate::config::{AdapterConfig, HostEnv};
use crate::ctx::RunContext;
use crate::names::{job_name, sanitize_label_value};
use crate::prompt::{PromptMetrics, build_prompt};
use crate::selfpod::{SelfPod, SourceKeys};
use crate::withhold::{Withhold, looks_secret, selects_bedrock, valid_env_name};

/// A Secret holds at most 1 MiB; leave room for its metadata.
pub const PROMPT_SECRET_LIMIT: usize = 1024 * 1024 - 16 * 1024;
/// The busybox image of the prompt-writing init container.
pub const INIT_IMAGE: &str = "busybox:1.36";
const RESERVED_PREFIXES: [&str; 2] = ["paperclip.io/", "app.kubernetes.io/"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error(
        "no image to run: set config.image (Paperclip is not running in a pod here, so there is no image to inherit)"
    )]
    NoImage,
    #[error("prompt is {bytes} bytes, more than a Kubernetes Secret can hold ({limit} bytes)")]
    PromptTooLarge { bytes: usize, limit: usize },
    /// The prompt fits, but not with the run's other secret values.
    #[error("the run's Secret would hold {bytes} bytes (prompt, token, MCP config and secret env values), more than a Kubernetes Secret can hold ({limit} bytes)")]
    SecretTooLarge { bytes: usize, limit: usize },
    #[error("{0}")]
    Argument(#[from] crate::shell::NulInArgument),
}

/// What `build_job` needs.
pub struct JobInput<'a> {
    pub ctx: &'a RunContext,
    pub config: &'a AdapterConfig,
    pub self_pod: Option<&'a SelfPod>,
    pub bundle: Option<&'a PromptBundle>,
    pub env: &'a HostEnv,
    /// Where the Job goes (config, self pod, or kubeconfig context: the caller decides).
    pub namespace: &'a str,
    /// The agent instructions text, if read (only its presence matters here).
    pub instructions: Option<&'a str>,
    /// The keys behind the self pod's `envFrom` sources and secret volumes
    /// ([`crate::selfpod::read_source_keys`]); `None` = not read, and then
    /// none of them reaches the Job (unless `inheritServerSecrets`).
    pub sources: Option<&'a SourceKeys>,
}

/// The run's Secret's key for the prompt, and where the init container finds it.
pub const PROMPT_KEY: &str = "prompt.txt";
/// The run's Secret's mount point.
pub const SECRET_MOUNT: &str = crate::mcp::SECRET_MOUNT;
/// Env values that are prompt text, kept out of the spec like secrets.
const PROMPT_TEXT_ENV: &[&str] = &["PAPERCLIP_WAKE_PAYLOAD_JSON"];

/// `JobBuildResult`.
#[derive(Debug, Clone)]
pub struct JobPlan {
    pub job: Job,
    pub job_name: String,
    pub namespace: String,
    pub prompt: String,
    pub claude_args: Vec<String>,
    pub prompt_metrics: PromptMetrics,
    pub prompt_secret: Option<Secret>,
    pub skipped_labels: Vec<String>,
    /// What was inherited from the self pod and what was not, for the log.
    pub notes: Vec<String>,
    /// What was not passed on and why (names only), for warnings.
    pub withheld: Vec<String>,
    /// The inherited names (and secret-volume files) held back as the server's secrets.
    pub held_back: Vec<String>,
    /// The server's state paths masked on the shared volume.
    pub hidden_paths: Vec<String>,
    /// The run's egress NetworkPolicy (`egressPolicy`), created before the Job.
    pub egress: Option<crate::egress::EgressPlan>,
}

impl JobPlan {
    pub fn image(&self) -> Option<String> {
        self.job.spec.as_ref()?.template.spec.as_ref()?.containers.first()?.image.clone()
    }
}

/// The claude CLI arguments, in the original's order.
pub fn claude_args(input: &JobInput) -> Vec<String> {
    let cfg = input.config;
    let session = input.ctx.session_id();
    let mut a: Vec<String> = ["--print", "-", "--output-format", "stream-json", "--verbose"].map(String::from).to_vec();
    if let Some(s) = session {
        a.extend(["--resume".into(), s.to_owned()]);
    }
    if cfg.dangerously_skip_permissions {
        a.push("--dangerously-skip-permissions".into());
    }
    if let Some(m) = &cfg.model {
        a.extend(["--model".into(), m.clone()]);
    }
    if let Some(e) = &cfg.effort {
        a.extend(["--effort".into(), e.clone()]);
    }
    if cfg.max_turns_per_run > 0 {
        a.extend(["--max-turns".into(), cfg.max_turns_per_run.to_string()]);
    }
    if session.is_none() {
        let from_bundle = input.bundle.and_then(|b| b.instructions_file_path.as_ref()).map(|p| p.display().to_string());
        let file = from_bundle.or_else(|| {
            // Without a bundle the pod can only read the configured path itself.
            input.config.instructions_file_path.clone().filter(|_| input.instructions.is_some() || input.bundle.is_none())
        });
        if let Some(f) = file.filter(|f| !f.trim().is_empty()) {
            a.extend(["--append-system-prompt-file".into(), f]);
        }
    }
    // claude_local's place for them: after the system prompt, before --add-dir.
    if !cfg.mcp_servers.is_empty() || !input.ctx.runtime_mcp.is_empty() {
        a.extend(crate::mcp::claude_flags(cfg.strict_mcp_config));
    }
    if let Some(b) = input.bundle {
        a.extend(["--add-dir".into(), b.add_dir.display().to_string()]);
    }
    a.extend(cfg.extra_args.iter().cloned());
    a
}

fn labels_for(input: &JobInput, skipped: &mut Vec<String>) -> BTreeMap<String, String> {
    let rc = input.ctx;
    let mut l = BTreeMap::new();
    l.insert("app.kubernetes.io/managed-by".into(), "paperclip".into());
    l.insert("app.kubernetes.io/component".into(), "agent-job".into());
    l.insert(crate::guard::LABEL_AGENT_ID.into(), sanitize_label_value(&rc.agent.id).unwrap_or_default());
    l.insert(crate::guard::LABEL_ADAPTER_TYPE.into(), crate::guard::ADAPTER_TYPE.into());
    match sanitize_label_value(&rc.run_id) {
        Some(v) => {
            l.insert(crate::guard::LABEL_RUN_ID.into(), v);
        }
        None => skipped.push(crate::guard::LABEL_RUN_ID.into()),
    }
    match sanitize_label_value(&rc.agent.company_id) {
        Some(v) => {
            l.insert("paperclip.io/company-id".into(), v);
        }
        None => skipped.push("paperclip.io/company-id".into()),
    }
    if let Some(t) = rc.task_id().and_then(sanitize_label_value) {
        l.insert(crate::guard::LABEL_TASK_ID.into(), t);
    }
    if let Some(s) = rc.session_id().and_then(sanitize_label_value) {
        l.insert(crate::guard::LABEL_SESSION_ID.into(), s);
    }
    for (k, v) in &input.config.labels {
        if RESERVED_PREFIXES.iter().any(|p| k.starts_with(p)) {
            skipped.push(k.clone());
            continue;
        }
        // A user label that is not a valid key/value would make the create fail: skip it, say so.
        let value_ok = v.is_empty() || sanitize_label_value(v).as_deref() == Some(v.as_str());
        if !valid_label_key(k) || !value_ok {
            skipped.push(k.clone());
            continue;
        }
        l.insert(k.clone(), v.clone());
    }
    l
}

/// A qualified label key: optional DNS-subdomain prefix `/` name (≤ 63, alnum ends, `-_.` inside).
fn valid_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let name_ok = !name.is_empty() && sanitize_label_value(name).as_deref() == Some(name);
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|s| {
                !s.is_empty()
                    && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !s.starts_with('-')
                    && !s.ends_with('-')
            })
    });
    name_ok && prefix_ok
}

fn quantity_map(cpu: &str, memory: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([("cpu".to_owned(), Quantity(cpu.to_owned())), ("memory".to_owned(), Quantity(memory.to_owned()))])
}

/// The defaults with the user's fields laid over them: a top-level key of
/// `over` replaces the default's (`capabilities` as a whole, say). Both
/// halves are of the type already (config checked `over`), so the result is.
fn overlay<T: serde::Serialize + serde::de::DeserializeOwned>(base: T, over: &serde_json::Map<String, serde_json::Value>) -> T {
    if over.is_empty() {
        return base;
    }
    let mut merged = match serde_json::to_value(&base) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return base,
    };
    for (k, v) in over {
        merged.insert(k.clone(), v.clone());
    }
    serde_json::from_value(serde_json::Value::Object(merged)).unwrap_or(base)
}

/// Each container's securityContext: what Pod Security `restricted` asks of
/// a container (no privilege escalation, every capability dropped, non-root),
/// with `securityContext` from config laid over it.
fn container_security(cfg: &AdapterConfig) -> SecurityContext {
    let base = SecurityContext {
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
        read_only_root_filesystem: Some(cfg.read_only_root_filesystem),
        run_as_non_root: Some(true),
        run_as_user: Some(1000),
        allow_privilege_escalation: Some(false),
        ..Default::default()
    };
    overlay(base, &cfg.container_security_context)
}

/// The pod's securityContext: uid/gid 1000 (Claude refuses
/// `--dangerously-skip-permissions` as root) and the `RuntimeDefault`
/// seccomp profile that `restricted` requires, with `podSecurityContext`
/// from config laid over it.
fn pod_security(cfg: &AdapterConfig) -> PodSecurityContext {
    let base = PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(1000),
        run_as_group: Some(1000),
        fs_group: Some(1000),
        fs_group_change_policy: Some("OnRootMismatch".into()),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
        ..Default::default()
    };
    overlay(base, &cfg.pod_security_context)
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

/// `buildJobManifest`.
pub fn build_job(input: &JobInput) -> Result<JobPlan, JobError> {
    let rc = input.ctx;
    let cfg = input.config;
    let pod = input.self_pod;
    let image = cfg.image.clone().or_else(|| pod.map(|p| p.image.clone())).ok_or(JobError::NoImage)?;
    let name = job_name(&rc.agent.id, &rc.run_id);
    let namespace = input.namespace.to_owned();
    let (prompt, prompt_metrics) = build_prompt(rc, cfg);
    let prompt_bytes = prompt.len();
    if prompt_bytes > PROMPT_SECRET_LIMIT {
        return Err(JobError::PromptTooLarge { bytes: prompt_bytes, limit: PROMPT_SECRET_LIMIT });
    }
    let args = claude_args(input);
    let mut command = format!("cat /tmp/prompt/prompt.txt | claude {}", crate::shell::quote_all(&args)?);
    if cfg.enable_rtk {
        let mut setup = crate::rtk::setup_commands(cfg.rtk_max_output_bytes);
        setup.push(command);
        command = setup.join(" && ");
    }

    let mut skipped_labels = Vec::new();
    let labels = labels_for(input, &mut skipped_labels);
    let working_dir = rc
        .context
        .get("paperclipWorkspace")
        .and_then(|w| w.get("cwd"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| cfg.cwd.clone())
        .unwrap_or_else(|| "/paperclip".into());

    let mut volumes = vec![Volume { name: "prompt".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() }];
    let mut mounts = vec![mount("prompt", "/tmp/prompt", false)];
    // A read-only root: the CLI still writes temporary files. /tmp goes
    // first, so the mounts under it land on it.
    if cfg.read_only_root_filesystem {
        volumes.push(Volume { name: "tmp".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() });
        mounts.insert(0, mount("tmp", "/tmp", false));
    }
    let mut notes = Vec::new();
    let mut withheld = Vec::new();
    let mut hidden_paths = Vec::new();
    let secret_name = format!("{name}-prompt");
    let rule = withhold_rule(cfg, pod, input.env);
    // The env the claude container gets; the MCP servers' URLs are made
    // reachable from it (its PAPERCLIP_API_URL).
    let (mut env, mut held_back) = crate::envvars::build_env(rc, cfg, input.env, pod, &rule);
    let env_from = inherit_env_from(pod, input.sources, &rule, &mut env, &mut held_back, &mut withheld);
    let pod_api_url = env.iter().find(|e| e.name == "PAPERCLIP_API_URL").and_then(|e| e.value.clone()).unwrap_or_default();
    // Tokens inside: it goes in the Secret, never in the spec.
    let mcp_config = crate::mcp::config_json(&cfg.mcp_servers, &rc.runtime_mcp, &pod_api_url);
    // The run's Secret: the prompt, the MCP config and every value that must
    // not be readable from the Job spec.
    let mut secret_data: BTreeMap<String, String> = BTreeMap::from([(PROMPT_KEY.to_owned(), prompt.clone())]);
    if let Some(c) = &mcp_config {
        secret_data.insert(crate::mcp::CONFIG_KEY.to_owned(), c.clone());
    }
    for (i, e) in env.iter_mut().enumerate() {
        let Some(value) = e.value.take_if(|_| looks_secret(&e.name) || PROMPT_TEXT_ENV.contains(&e.name.as_str())) else { continue };
        let key = if valid_secret_key(&e.name) && !secret_data.contains_key(&e.name) { e.name.clone() } else { format!("env-{i}") };
        secret_data.insert(key.clone(), value);
        e.value_from = Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret_name.clone(), key, optional: None }),
            ..Default::default()
        });
    }
    volumes.push(Volume {
        name: "prompt-secret".into(),
        secret: Some(SecretVolumeSource { secret_name: Some(secret_name.clone()), optional: Some(false), ..Default::default() }),
        ..Default::default()
    });
    if mcp_config.is_some() {
        mounts.push(mount("prompt-secret", SECRET_MOUNT, true));
    }
    let init_command = format!("cp {SECRET_MOUNT}/{PROMPT_KEY} /tmp/prompt/prompt.txt");
    let init_mounts = vec![mount("prompt", "/tmp/prompt", false), mount("prompt-secret", SECRET_MOUNT, true)];

    match pod.and_then(|p| p.pvc_claim_name.clone()) {
        Some(claim) => {
            volumes.push(Volume {
                name: "data".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource { claim_name: claim.clone(), read_only: None }),
                ..Default::default()
            });
            mounts.push(mount("data", "/paperclip", false));
            notes.push(format!("Inherited PVC {claim} at /paperclip (sessions persist across runs)"));
            if !rule.inherit_everything
                && let Some(state) = input.sources.map(|s| &s.server_state)
            {
                let keep = [Some(working_dir.as_str()), input.bundle.map(|b| b.root_dir.to_str().unwrap_or_default()), Some("/paperclip/.claude")];
                hidden_paths = mask_server_state(state, &keep, &mut volumes, &mut mounts, &mut secret_data, &mut withheld);
                if !hidden_paths.is_empty() {
                    notes.push(format!("Server state hidden from the agent (empty read-only mounts): {}", hidden_paths.join(", ")));
                }
            }
        }
        None => {
            // HOME and the default working directory are /paperclip: without a
            // volume there it is whatever the image has, usually missing or
            // root's, and the CLI (uid 1000) cannot keep its session files.
            volumes.push(Volume { name: "data".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() });
            mounts.push(mount("data", "/paperclip", false));
            notes.push("No PVC inherited: /paperclip is an emptyDir in the Job pod (sessions will not resume)".into());
        }
    }
    // Only the files are projected (the prompt, the MCP config, the empty
    // file masks are made of): the env values stay out of the mounts.
    let secret_bytes: usize = secret_data.iter().map(|(k, v)| k.len() + v.len()).sum();
    if secret_bytes > PROMPT_SECRET_LIMIT {
        return Err(JobError::SecretTooLarge { bytes: secret_bytes, limit: PROMPT_SECRET_LIMIT });
    }
    let files: Vec<KeyToPath> = [PROMPT_KEY, crate::mcp::CONFIG_KEY, EMPTY_KEY]
        .into_iter()
        .filter(|k| secret_data.contains_key(*k))
        .map(|k| KeyToPath { key: k.to_owned(), path: k.to_owned(), mode: None })
        .collect();
    if let Some(v) = volumes.iter_mut().find(|v| v.name == "prompt-secret").and_then(|v| v.secret.as_mut()) {
        v.items = Some(files);
    }
    for sv in pod.map(|p| p.secret_volumes.as_slice()).unwrap_or_default() {
        let Some(items) = inherit_secret_volume(sv, input.sources, &rule, &mut held_back, &mut withheld) else { continue };
        volumes.push(Volume {
            name: sv.volume_name.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(sv.secret_name.clone()),
                default_mode: sv.default_mode,
                optional: Some(true),
                items,
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(mount(&sv.volume_name, &sv.mount_path, true));
    }
    if !held_back.is_empty() {
        notes.push(format!(
            "Held back from the Job (the Paperclip server's own secrets; names only): {} — inheritServerSecrets restores 0.1.54's inherit-everything",
            held_back.join(", ")
        ));
    }
    match pod {
        Some(p) => notes.push(format!(
            "Inherited from pod {}: image {}, {} env var(s), {} envFrom source(s), {} secret volume(s), {} image pull secret(s)",
            p.name,
            if cfg.image.is_some() { "overridden by config" } else { "yes" },
            p.inherited_env.len() + p.inherited_env_value_from.len(),
            p.inherited_env_from.len(),
            p.secret_volumes.len(),
            p.image_pull_secrets.len()
        )),
        None => notes.push(
            "Off-cluster mode: no self pod to inherit from (image, env, secrets, PVC, DNS and pull secrets come from config only)"
                .into(),
        ),
    }

    let r = &cfg.resources;
    let claude = Container {
        name: crate::pod::CLAUDE_CONTAINER.into(),
        image: Some(image),
        image_pull_policy: Some(cfg.image_pull_policy.clone()),
        working_dir: Some(working_dir),
        command: Some(vec!["sh".into(), "-c".into(), command]),
        env: Some(env),
        env_from,
        volume_mounts: Some(mounts),
        security_context: Some(container_security(cfg)),
        resources: Some(ResourceRequirements {
            requests: Some(quantity_map(&r.requests_cpu, &r.requests_memory)),
            limits: Some(quantity_map(&r.limits_cpu, &r.limits_memory)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let init = Container {
        name: "write-prompt".into(),
        image: Some(INIT_IMAGE.into()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["sh".into(), "-c".into(), init_command]),
        volume_mounts: Some(init_mounts),
        security_context: Some(container_security(cfg)),
        resources: Some(ResourceRequirements {
            requests: Some(quantity_map("10m", "16Mi")),
            limits: Some(quantity_map("100m", "64Mi")),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod_spec = PodSpec {
        restart_policy: Some("Never".into()),
        runtime_class_name: cfg.runtime_class_name.clone(),
        service_account_name: cfg.service_account_name.clone(),
        // No token of the namespace's default account for the agent: only
        // when asked for, or left to a configured account's own setting.
        automount_service_account_token: match (cfg.automount_service_account_token, &cfg.service_account_name) {
            (Some(asked), _) => Some(asked),
            (None, Some(_)) => None,
            (None, None) => Some(false),
        },
        security_context: Some(pod_security(cfg)),
        image_pull_secrets: pod.map(|p| p.image_pull_secrets.clone()).filter(|v| !v.is_empty()),
        dns_config: pod.and_then(|p| p.dns_config.clone()),
        node_selector: (!cfg.node_selector.is_empty()).then(|| cfg.node_selector.clone()),
        tolerations: (!cfg.tolerations.is_empty()).then(|| cfg.tolerations.clone()),
        init_containers: Some(vec![init]),
        containers: vec![claude],
        volumes: Some(volumes),
        ..Default::default()
    };
    let annotations = BTreeMap::from([
        ("paperclip.io/adapter-type".to_owned(), crate::guard::ADAPTER_TYPE.to_owned()),
        ("paperclip.io/agent-name".to_owned(), rc.agent.name.clone()),
    ]);
    let job = Job {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            labels: Some(labels.clone()),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: (cfg.timeout_sec > 0).then_some(cfg.timeout_sec),
            ttl_seconds_after_finished: Some(cfg.ttl_seconds_after_finished.clamp(0, i32::MAX as i64) as i32),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(pod_spec),
            },
            ..Default::default()
        }),
        status: None,
    };
    let mut secret_labels = BTreeMap::from([
        ("app.kubernetes.io/managed-by".to_owned(), "paperclip".to_owned()),
        (crate::guard::LABEL_ADAPTER_TYPE.to_owned(), crate::guard::ADAPTER_TYPE.to_owned()),
    ]);
    if let Some(run) = sanitize_label_value(&rc.run_id) {
        secret_labels.insert(crate::guard::LABEL_RUN_ID.to_owned(), run);
    }
    let prompt_secret = Some(Secret {
        metadata: ObjectMeta {
            name: Some(secret_name),
            namespace: Some(namespace.clone()),
            labels: Some(secret_labels.clone()),
            ..Default::default()
        },
        string_data: Some(secret_data),
        ..Default::default()
    });
    // The pod gets the agent's own PAPERCLIP_API_URL when `env` sets one (env wins).
    let api_url = cfg.env.get("PAPERCLIP_API_URL").cloned().unwrap_or_else(|| input.env.paperclip_api_url_or_default());
    let egress = cfg.egress.enabled.then(|| {
        crate::egress::plan(&crate::egress::EgressInput {
            config: &cfg.egress,
            job_name: &name,
            namespace: &namespace,
            run_labels: secret_labels.clone(),
            self_pod: pod,
            api_url: &api_url,
        })
    });
    Ok(JobPlan {
        job,
        job_name: name,
        namespace,
        prompt,
        claude_args: args,
        prompt_metrics,
        prompt_secret,
        skipped_labels,
        notes,
        withheld,
        held_back,
        hidden_paths,
        egress,
    })
}

/// The run's Secret's empty value, the file mounted over each of the server's files.
const EMPTY_KEY: &str = "empty";
/// The empty volume mounted over each of the server's directories.
const MASK_VOLUME: &str = "server-state-mask";

/// Mounts an empty read-only directory over each directory of the server's
/// state and an empty read-only file (the run's Secret's `empty`, by
/// `subPath`) over each file, except where the agent works (`keep`: its
/// working directory, the prompt bundle, `~/.claude` — a mask over one of
/// those, or over a parent, would break the run; it is skipped and said).
/// Returns the paths hidden.
fn mask_server_state(
    state: &crate::withhold::ServerState,
    keep: &[Option<&str>],
    volumes: &mut Vec<Volume>,
    mounts: &mut Vec<VolumeMount>,
    secret_data: &mut BTreeMap<String, String>,
    withheld: &mut Vec<String>,
) -> Vec<String> {
    let inside = |path: &str, dir: &str| path == dir || path.starts_with(&format!("{}/", dir.trim_end_matches('/')));
    let mut hidden = Vec::new();
    for (path, is_dir) in state.dirs.iter().map(|d| (d, true)).chain(state.files.iter().map(|f| (f, false))) {
        if let Some(k) = keep.iter().flatten().find(|k| inside(k, path)) {
            withheld.push(format!("{path} is not hidden from the agent: the run works in {k}"));
            continue;
        }
        if is_dir {
            if !volumes.iter().any(|v| v.name == MASK_VOLUME) {
                volumes.push(Volume { name: MASK_VOLUME.into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() });
            }
            mounts.push(mount(MASK_VOLUME, path, true));
        } else {
            secret_data.insert(EMPTY_KEY.into(), String::new());
            mounts.push(VolumeMount { sub_path: Some(EMPTY_KEY.into()), ..mount("prompt-secret", path, true) });
        }
        hidden.push(path.clone());
    }
    hidden
}

/// A Secret's key: `[-._a-zA-Z0-9]+`.
fn valid_secret_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 253 && k.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// The rule for this run: the config's names and opt-out, and whether the
/// agent is on Bedrock (`config.env`, then the Deployment's literals, then
/// the host's env).
fn withhold_rule(cfg: &AdapterConfig, pod: Option<&SelfPod>, env: &HostEnv) -> Withhold {
    let inherited: BTreeMap<String, String> = pod.map(|p| p.inherited_env.iter().cloned().collect()).unwrap_or_default();
    let bedrock = selects_bedrock([&cfg.env, &inherited, env.vars()]);
    Withhold::new(cfg.inherit_server_secrets, &cfg.withhold_env, bedrock)
}

/// The self pod's `envFrom`, as the Job gets it. With `inheritServerSecrets`
/// it is copied whole (0.1.54). Otherwise each source is expanded into one
/// `secretKeyRef` / `configMapKeyRef` entry per key — the values stay in the
/// Secret or ConfigMap, never in the spec — minus the held-back names,
/// appended after `env` for names it does not set (Kubernetes' precedence:
/// `env` over `envFrom`, a later source over an earlier one).
fn inherit_env_from(
    pod: Option<&SelfPod>,
    sources: Option<&SourceKeys>,
    rule: &Withhold,
    env: &mut Vec<EnvVar>,
    held_back: &mut Vec<String>,
    withheld: &mut Vec<String>,
) -> Option<Vec<k8s_openapi::api::core::v1::EnvFromSource>> {
    let from = pod.map(|p| p.inherited_env_from.as_slice()).unwrap_or_default();
    if from.is_empty() {
        return None;
    }
    if rule.inherit_everything {
        return Some(from.to_vec());
    }
    let mut expanded: Vec<EnvVar> = Vec::new();
    for (i, ef) in from.iter().enumerate() {
        let source = match (&ef.secret_ref, &ef.config_map_ref) {
            (Some(r), _) => format!("Secret {}", r.name),
            (None, Some(r)) => format!("ConfigMap {}", r.name),
            (None, None) => continue,
        };
        let keys = match sources.and_then(|s| s.env_from.get(i)) {
            Some(Ok(keys)) => keys,
            Some(Err(why)) => {
                withheld.push(format!("envFrom {source} not passed to the Job: its keys could not be read ({why})"));
                continue;
            }
            None => {
                withheld.push(format!("envFrom {source} not passed to the Job: its keys were not read"));
                continue;
            }
        };
        let prefix = ef.prefix.as_deref().unwrap_or_default();
        for key in keys {
            let name = format!("{prefix}{key}");
            if !valid_env_name(&name) {
                continue;
            }
            if rule.holds_back(&name) || rule.holds_back(key) {
                if !held_back.contains(&name) {
                    held_back.push(name);
                }
                continue;
            }
            let value_from = match (&ef.secret_ref, &ef.config_map_ref) {
                (Some(r), _) => EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector { name: r.name.clone(), key: key.clone(), optional: r.optional }),
                    ..Default::default()
                },
                (None, Some(r)) => EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector { name: r.name.clone(), key: key.clone(), optional: r.optional }),
                    ..Default::default()
                },
                (None, None) => continue,
            };
            expanded.retain(|e| e.name != name);
            expanded.push(EnvVar { name, value: None, value_from: Some(value_from) });
        }
    }
    for e in expanded {
        if !env.iter().any(|have| have.name == e.name) {
            env.push(e);
        }
    }
    None
}

/// Whether (and which files of) a secret volume of the self pod the Job
/// mounts: `Some(None)` = all of it, `Some(Some(items))` = those keys only
/// (a server secret among them stays behind), `None` = not at all.
fn inherit_secret_volume(
    sv: &crate::selfpod::SecretVolume,
    sources: Option<&SourceKeys>,
    rule: &Withhold,
    held_back: &mut Vec<String>,
    withheld: &mut Vec<String>,
) -> Option<Option<Vec<KeyToPath>>> {
    if rule.inherit_everything {
        return Some(None);
    }
    let keys = match sources.and_then(|s| s.volumes.get(&sv.volume_name)) {
        Some(Ok(keys)) => keys,
        Some(Err(why)) => {
            withheld.push(format!("secret volume {} not mounted in the Job: its keys could not be read ({why})", sv.volume_name));
            return None;
        }
        None => {
            withheld.push(format!("secret volume {} not mounted in the Job: its keys were not read", sv.volume_name));
            return None;
        }
    };
    let (held, kept): (Vec<&String>, Vec<&String>) = keys.iter().partition(|k| rule.holds_back(k));
    if held.is_empty() {
        return Some(None);
    }
    for k in held {
        let n = format!("{}/{k}", sv.mount_path.trim_end_matches('/'));
        if !held_back.contains(&n) {
            held_back.push(n);
        }
    }
    if kept.is_empty() {
        return None;
    }
    Some(Some(kept.into_iter().map(|k| KeyToPath { key: k.clone(), path: k.clone(), mode: None }).collect()))
}

#[cfg(test)]
mod tests;
