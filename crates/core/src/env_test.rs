//! `testEnvironment(ctx)` (contract §1.14): can this adapter run here?
//!
//! The original checked ten RBAC verbs; `execute` uses more (jobs watch and
//! patch, pods get and watch, secrets patch). Each verb `execute` uses is
//! checked here with a SelfSubjectAccessReview, so a Role that lacks one is
//! reported before a run fails on it. [`EXECUTE_VERBS`] is the single list;
//! the README's Role is tested against it.

use futures::future::join_all;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Secret};
use kube::Api;
use kube::api::PostParams;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::cluster::{self, describe_error};

/// One check's result, in the host's `AdapterEnvironmentCheck` shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub code: String,
    pub level: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    fn new(code: &str, level: &'static str, message: String) -> Self {
        Check { code: code.into(), level, message, detail: None, hint: None }
    }
}

/// `AdapterEnvironmentTestResult`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentReport {
    pub adapter_type: String,
    pub status: &'static str,
    pub checks: Vec<Check>,
    pub tested_at: String,
}

/// A verb `execute` needs: (check code, API group, resource, subresource, verb, label).
pub struct Permission {
    pub code: &'static str,
    pub group: &'static str,
    pub resource: &'static str,
    pub subresource: Option<&'static str>,
    pub verb: &'static str,
    pub label: &'static str,
}

const fn perm(
    code: &'static str,
    group: &'static str,
    resource: &'static str,
    subresource: Option<&'static str>,
    verb: &'static str,
    label: &'static str,
) -> Permission {
    Permission { code, group, resource, subresource, verb, label }
}

/// Every verb `execute` and `testEnvironment` use, in the namespace of the Jobs.
pub const EXECUTE_VERBS: &[Permission] = &[
    perm("k8s_rbac_job_create", "batch", "jobs", None, "create", "create jobs"),
    perm("k8s_rbac_job_delete", "batch", "jobs", None, "delete", "delete jobs"),
    perm("k8s_rbac_job_get", "batch", "jobs", None, "get", "get jobs"),
    perm("k8s_rbac_job_list", "batch", "jobs", None, "list", "list jobs"),
    perm("k8s_rbac_job_watch", "batch", "jobs", None, "watch", "watch jobs"),
    perm("k8s_rbac_job_patch", "batch", "jobs", None, "patch", "patch jobs"),
    perm("k8s_rbac_pod_get", "", "pods", None, "get", "get pods"),
    perm("k8s_rbac_pod_list", "", "pods", None, "list", "list pods"),
    perm("k8s_rbac_pod_watch", "", "pods", None, "watch", "watch pods"),
    perm("k8s_rbac_pod_log", "", "pods", Some("log"), "get", "read pod logs"),
    perm("k8s_rbac_secret_create", "", "secrets", None, "create", "create secrets"),
    perm("k8s_rbac_secret_delete", "", "secrets", None, "delete", "delete secrets"),
    perm("k8s_rbac_secret_get", "", "secrets", None, "get", "get secrets"),
    perm("k8s_rbac_secret_patch", "", "secrets", None, "patch", "patch secrets"),
    perm("k8s_rbac_configmap_get", "", "configmaps", None, "get", "get configmaps"),
    perm("k8s_rbac_pvc_get", "", "persistentvolumeclaims", None, "get", "get persistentvolumeclaims"),
    perm("k8s_rbac_event_list", "", "events", None, "list", "list events"),
    perm("k8s_rbac_event_watch", "", "events", None, "watch", "watch events"),
];

/// The verbs `egressPolicy` adds (deploy/rbac-egress.yaml): each run's
/// NetworkPolicy is created before its Job, owned by it (patch), deleted after.
pub const EGRESS_VERBS: &[Permission] = &[
    perm("k8s_rbac_networkpolicy_create", "networking.k8s.io", "networkpolicies", None, "create", "create networkpolicies"),
    perm("k8s_rbac_networkpolicy_patch", "networking.k8s.io", "networkpolicies", None, "patch", "patch networkpolicies"),
    perm("k8s_rbac_networkpolicy_delete", "networking.k8s.io", "networkpolicies", None, "delete", "delete networkpolicies"),
];

fn status_of(checks: &[Check]) -> &'static str {
    if checks.iter().any(|c| c.level == "error") {
        "fail"
    } else if checks.iter().any(|c| c.level == "warn") {
        "warn"
    } else {
        "pass"
    }
}

fn str_field<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The verbs that turn on Kubernetes Events on the run's Jobs
/// (deploy/rbac-events.yaml; crate::job_events): optional — without them
/// runs write no Events and nothing else changes.
pub const EVENT_VERBS: &[Permission] = &[
    perm("k8s_rbac_job_event_create", "events.k8s.io", "events", None, "create", "create events (events.k8s.io)"),
    perm("k8s_rbac_job_event_patch", "events.k8s.io", "events", None, "patch", "patch events (events.k8s.io)"),
];

/// Whether runs will write Kubernetes Events on their Jobs, as one check.
async fn events_check(client: &kube::Client, ns: &str) -> Check {
    let [create, patch] = EVENT_VERBS else { unreachable!("two verbs") };
    let (create, patch) = futures::join!(allowed(client, ns, create), allowed(client, ns, patch));
    let mut c = match (create, patch) {
        (Ok(true), Ok(true)) => Check::new(
            "k8s_job_events",
            "info",
            format!("Runs write Kubernetes Events on their Jobs in {ns} (log stream resumed, lines lost, pod refused, outcome): kubectl describe job shows them"),
        ),
        (Ok(true), Ok(false)) => Check::new(
            "k8s_job_events",
            "info",
            format!("Runs write Kubernetes Events on their Jobs in {ns}; a milestone that repeats (a log stream resumed again) is shown once, not counted (the Role does not allow patch on events.k8s.io events)"),
        ),
        (Ok(false), _) => Check::new(
            "k8s_job_events_off",
            "info",
            format!("Kubernetes Events on the Jobs are off: the Role does not allow create on events.k8s.io events in {ns}"),
        ),
        (Err(e), _) | (_, Err(e)) => Check::new("k8s_job_events_off", "info", format!("Could not tell whether runs may write Kubernetes Events: {e}")),
    };
    if c.code == "k8s_job_events_off" {
        c.hint = Some("Optional: apply deploy/rbac-events.yaml (create and patch on events.k8s.io events) to see each run's milestones with kubectl describe job.".into());
    }
    c
}

/// A SelfSubjectAccessReview of `p` in `ns`.
async fn allowed(client: &kube::Client, ns: &str, p: &Permission) -> Result<bool, String> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(ns.to_owned()),
                group: Some(p.group.to_owned()),
                resource: Some(p.resource.to_owned()),
                subresource: p.subresource.map(str::to_owned),
                verb: Some(p.verb.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let r = api.create(&PostParams::default(), &review).await;
    r.map(|r| r.status.is_some_and(|s| s.allowed)).map_err(|e| describe_error(&e))
}

async fn access_check(client: &kube::Client, ns: &str, p: &Permission) -> Check {
    match allowed(client, ns, p).await {
        Ok(true) => Check::new(p.code, "info", format!("RBAC: allowed to {} in {ns}", p.label)),
        Ok(false) => {
            let mut c = Check::new(p.code, "error", format!("RBAC: not allowed to {} in {ns}", p.label));
            let group = if p.group.is_empty() { "\"\"".to_owned() } else { p.group.to_owned() };
            let resource = match p.subresource {
                Some(s) => format!("{}/{s}", p.resource),
                None => p.resource.to_owned(),
            };
            c.hint = Some(format!(
                "Grant verb \"{}\" on {resource} (apiGroup {group}) to the adapter's ServiceAccount in namespace {ns} — see the README's Role.",
                p.verb
            ));
            c
        }
        Err(e) => Check::new(p.code, "warn", format!("RBAC check for {} failed: {e}", p.label)),
    }
}

/// Runs every check. Never fails: problems are checks.
pub async fn test_environment(ctx: &Value, env: &crate::config::HostEnv) -> EnvironmentReport {
    crate::diagnostics::install_from_env(env);
    let ctx = crate::ctx::as_object(ctx);
    let adapter_type = str_field(&ctx, "adapterType").unwrap_or("claude_k8s").to_owned();
    let config = crate::ctx::as_object(ctx.get("config").unwrap_or(&Value::Null));
    let tested_at = k8s_openapi::jiff::Timestamp::now().to_string();
    let mut checks = Vec::new();
    let done = |checks: Vec<Check>| EnvironmentReport {
        adapter_type: adapter_type.clone(),
        status: status_of(&checks),
        checks,
        tested_at: tested_at.clone(),
    };

    let kubeconfig = str_field(&config, "kubeconfig");
    let cluster = match cluster::connect(kubeconfig).await {
        Ok(c) => c,
        Err(e) => {
            checks.push(Check::new("k8s_api_unreachable", "error", format!("Cannot reach Kubernetes API: {e}")));
            return done(checks);
        }
    };
    let self_pod = match crate::selfpod::cached_discover(&cluster.client, env, kubeconfig).await {
        Ok(p) => p,
        Err(e) => {
            checks.push(Check::new("k8s_api_unreachable", "error", format!("Cannot reach Kubernetes API: {e}")));
            return done(checks);
        }
    };
    // Off-cluster there is no pod read to prove the API answers: ask for its version.
    if self_pod.is_none() && let Err(e) = cluster.client.apiserver_version().await {
        checks.push(Check::new("k8s_api_unreachable", "error", format!("Cannot reach Kubernetes API: {}", describe_error(&e))));
        return done(checks);
    }
    let pod_ns = self_pod.as_ref().map(|p| p.namespace.clone());
    let namespace = str_field(&config, "namespace")
        .map(str::to_owned)
        .or_else(|| pod_ns.clone())
        .unwrap_or_else(|| cluster.default_namespace.clone());
    let mut reachable = Check::new(
        "k8s_api_reachable",
        "info",
        format!("Kubernetes API reachable; running in namespace {}", pod_ns.as_deref().unwrap_or(&namespace)),
    );
    reachable.detail = Some(match &self_pod {
        Some(p) => format!("Image: {}", p.image),
        None => "Not running in a pod: off-cluster mode (config.image is required)".to_owned(),
    });
    checks.push(reachable);

    if pod_ns.as_deref() == Some(namespace.as_str()) {
        checks.push(Check::new("k8s_namespace_exists", "info", format!("Namespace {namespace} exists")));
    } else {
        let api: Api<Namespace> = Api::all(cluster.client.clone());
        match api.get(&namespace).await {
            Ok(_) => checks.push(Check::new("k8s_namespace_exists", "info", format!("Namespace {namespace} exists"))),
            Err(e) => checks.push(Check::new(
                "k8s_namespace_check_failed",
                "warn",
                format!("Could not verify namespace {namespace}: {}", describe_error(&e)),
            )),
        }
    }

    let client = &cluster.client;
    let rbac = join_all(EXECUTE_VERBS.iter().map(|p| access_check(client, &namespace, p)));
    let secret_ref = str_field(&config, "secretRef").unwrap_or("paperclip-secrets").to_owned();
    let secret = async {
        let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        match api.get_metadata_opt(&secret_ref).await {
            Ok(Some(_)) => Check::new("k8s_secret_exists", "info", format!("Secret {secret_ref} exists in {namespace}")),
            Ok(None) => Check::new("k8s_secret_missing", "warn", format!("Secret {secret_ref} not found in {namespace}")),
            Err(e) => Check::new(
                "k8s_secret_missing",
                "warn",
                format!("Could not read Secret {secret_ref} in {namespace}: {}", describe_error(&e)),
            ),
        }
    };
    let pvc = async {
        let claim = self_pod.as_ref().and_then(|p| p.pvc_claim_name.clone());
        let Some(claim) = claim else {
            return Check::new(
                "k8s_pvc_not_detected",
                "warn",
                "No PVC mounted at /paperclip was detected; sessions and the prompt bundle will not persist across runs".into(),
            );
        };
        let pvc_ns = pod_ns.clone().unwrap_or_else(|| namespace.clone());
        let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &pvc_ns);
        match api.get(&claim).await {
            Ok(p) => {
                let modes = p.spec.and_then(|s| s.access_modes).unwrap_or_default();
                if modes.iter().any(|m| m == "ReadWriteMany") {
                    Check::new("k8s_pvc_rwx", "info", format!("PVC {claim} is ReadWriteMany"))
                } else {
                    let mut c = Check::new(
                        "k8s_pvc_not_rwx",
                        "warn",
                        format!("PVC {claim} is not ReadWriteMany ({})", modes.join(", ")),
                    );
                    c.hint = Some("Job pods mount the same claim while Paperclip runs; use a ReadWriteMany volume or pin Jobs to the same node.".into());
                    c
                }
            }
            Err(e) => Check::new("k8s_pvc_check_failed", "warn", format!("Could not read PVC {claim}: {}", describe_error(&e))),
        }
    };
    let exposure = exposure_checks(client, &config, self_pod.as_ref(), env, &namespace);
    let events = events_check(client, &namespace);
    let (rbac, secret, pvc, exposure, events) = futures::join!(rbac, secret, pvc, exposure, events);
    let may_create_jobs = rbac.iter().any(|c| c.code == "k8s_rbac_job_create" && c.level == "info");
    checks.extend(rbac);
    checks.push(secret);
    checks.push(pvc);
    checks.extend(exposure);
    checks.push(events);
    if let Some(probe) = crate::probe::Probe::from_config(&config) {
        if may_create_jobs {
            let company = str_field(&ctx, "companyId").unwrap_or_default();
            checks.extend(crate::probe::run(probe, client, company, &config, self_pod.as_ref(), env, &namespace).await);
        } else {
            checks.push(Check::new(
                "claude_probe_skipped",
                "warn",
                format!("The probe Job was not started: the adapter may not create Jobs in {namespace}"),
            ));
        }
    }
    done(checks)
}

/// Provider credentials an agent is meant to get from Paperclip's pod.
const PROVIDER_KEYS: &[&str] = &["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"];

/// What the Job pod would be handed (issue 21), as checks — names and paths
/// only, never a value: the server's secrets held back (or not), other
/// inherited names that look like secrets, the server's state on the volume,
/// the ServiceAccount token, egress. Built from the same Job a run would
/// create (nothing is created).
async fn exposure_checks(
    client: &kube::Client,
    config: &Map<String, Value>,
    self_pod: Option<&crate::selfpod::SelfPod>,
    env: &crate::config::HostEnv,
    namespace: &str,
) -> Vec<Check> {
    let mut out = Vec::new();
    let Ok(cfg) = crate::config::AdapterConfig::from_map(config) else { return out };
    let rc = crate::ctx::RunContext::from_json(&serde_json::json!({
        "runId": "environment-test", "agent": {"id": "environment-test", "companyId": "environment-test"},
        "config": Value::Object(config.clone()), "context": {},
    }));
    let sources = match self_pod {
        Some(p) if !cfg.inherit_server_secrets => {
            let mut keys = crate::selfpod::read_source_keys(client, namespace, p).await;
            if p.pvc_claim_name.is_some() {
                keys.server_state = crate::withhold::server_state(env);
            }
            Some(keys)
        }
        _ => None,
    };
    let input = crate::job::JobInput { ctx: &rc, config: &cfg, self_pod, bundle: None, env, namespace, instructions: None, sources: sources.as_ref() };
    let Ok(plan) = crate::job::build_job(&input) else { return out };
    let spec = plan.job.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    let container = spec.and_then(|s| s.containers.first());
    // Names the pod gets from Paperclip's pod (not the run's own, not config.env).
    let run_env = crate::envvars::paperclip_env(&rc, env, self_pod);
    let own: std::collections::BTreeSet<&str> = run_env.iter().map(|(k, _)| k).chain(cfg.env.keys().map(String::as_str)).collect();
    let mut inherited: Vec<String> = container
        .and_then(|c| c.env.as_ref())
        .map(|e| e.iter().map(|v| v.name.clone()).filter(|n| !own.contains(n.as_str()) && n != "HOME").collect())
        .unwrap_or_default();
    for ef in container.and_then(|c| c.env_from.as_ref()).into_iter().flatten() {
        let name = ef.secret_ref.as_ref().map(|r| format!("Secret {}", r.name)).or_else(|| ef.config_map_ref.as_ref().map(|r| format!("ConfigMap {}", r.name)));
        inherited.extend(name.map(|n| format!("(all of envFrom {n})")));
    }
    if self_pod.is_some() {
        if cfg.inherit_server_secrets {
            let mut c = Check::new(
                "k8s_pod_server_secrets_inherited",
                "warn",
                "inheritServerSecrets is on: the Job pod gets everything Paperclip's pod has, the server's own secrets and state included".into(),
            );
            c.hint = Some("Turn inheritServerSecrets off unless every prompt is trusted: with the server's JWT secret an agent can act as any agent of any company.".into());
            out.push(c);
        } else if plan.held_back.is_empty() {
            out.push(Check::new("k8s_pod_server_secrets_held_back", "info", "No server secret found among what Paperclip's pod would pass on".into()));
        } else {
            out.push(Check::new(
                "k8s_pod_server_secrets_held_back",
                "info",
                format!("Held back from Job pods (the Paperclip server's own secrets): {}", plan.held_back.join(", ")),
            ));
        }
        let bedrock = crate::withhold::selects_bedrock([&cfg.env, env.vars()]);
        let exposed: Vec<&String> = inherited
            .iter()
            .filter(|n| crate::withhold::looks_secret(n) && !PROVIDER_KEYS.contains(&n.as_str()) && !(bedrock && n.starts_with("AWS_")))
            .collect();
        if !exposed.is_empty() {
            let mut c = Check::new(
                "k8s_pod_secret_like_env",
                "warn",
                format!("Job pods get these inherited names that look like secrets: {}", exposed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")),
            );
            c.hint = Some("The agent can read and send anything in its env. If one is the server's, add it to withholdEnv; if the agent needs it, set it in the agent's env instead.".into());
            out.push(c);
        }
        for w in &plan.withheld {
            let mut c = Check::new("k8s_pod_inheritance_incomplete", "warn", w.clone());
            c.hint = Some("The Role's get on secrets and configmaps lets the adapter read their keys (values are never read into a check).".into());
            out.push(c);
        }
        if self_pod.is_some_and(|p| p.pvc_claim_name.is_some()) {
            if cfg.inherit_server_secrets {
                let mut c = Check::new("k8s_pod_server_state_exposed", "warn", "The server's database, keys, backups and logs on the shared volume are readable and writable by the agent (inheritServerSecrets)".into());
                c.hint = Some("Turn inheritServerSecrets off: the adapter then hides them with empty read-only mounts.".into());
                out.push(c);
            } else if plan.hidden_paths.is_empty() {
                out.push(Check::new("k8s_pod_server_state_hidden", "info", "No server state found on the shared volume to hide (PAPERCLIP_HOME's instance has no database, key, backups or logs there)".into()));
            } else {
                out.push(Check::new("k8s_pod_server_state_hidden", "info", format!("Hidden from Job pods (empty read-only mounts): {}", plan.hidden_paths.join(", "))));
            }
        }
    }
    match spec.and_then(|s| s.automount_service_account_token) {
        Some(false) => out.push(Check::new("k8s_pod_service_account_token", "info", "Job pods get no ServiceAccount token".into())),
        _ => {
            let mut c = Check::new(
                "k8s_pod_service_account_token",
                "warn",
                format!(
                    "Job pods get the token of ServiceAccount {} (automountServiceAccountToken)",
                    cfg.service_account_name.as_deref().unwrap_or("default")
                ),
            );
            c.hint = Some("Whatever that account may do, the agent may do: give it no role it does not need, or set automountServiceAccountToken to false.".into());
            out.push(c);
        }
    }
    out.push(Check::new(
        "k8s_pod_runtime_class",
        "info",
        match &cfg.runtime_class_name {
            Some(rc) => format!("Job pods run with RuntimeClass {rc}"),
            None => "Job pods run with the node's default container runtime (runtimeClassName not set)".into(),
        },
    ));
    match &plan.egress {
        Some(e) => {
            let mut c = Check::new("k8s_pod_egress_policy", "info", format!("Each run's pod gets a NetworkPolicy allowing egress only to: {}", e.allows.join("; ")));
            c.hint = Some("Enforced only by a network plugin that implements NetworkPolicy (Calico, Cilium, Antrea…); with one that does not (flannel, kindnet's older releases, a bare bridge) the policy is inert.".into());
            out.push(c);
            for w in &e.warnings {
                out.push(Check::new("k8s_pod_egress_policy_incomplete", "warn", w.clone()));
            }
            for p in EGRESS_VERBS {
                out.push(access_check(client, namespace, p).await);
            }
        }
        None => {
            let mut egress = Check::new("k8s_pod_egress_unrestricted", "info", "Job pods' network egress is not limited by the adapter (egressPolicy is off)".into());
            egress.hint = Some("An agent can reach cloud metadata, the apiserver and internal services: set egressPolicy: true (a NetworkPolicy per run: DNS, the Paperclip API, public HTTPS; deploy/rbac-egress.yaml), or apply your own to pods labelled app.kubernetes.io/component=agent-job; either is enforced only by a network plugin that implements NetworkPolicy.".into());
            out.push(egress);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_worst_level() {
        let c = |l| Check::new("x", l, String::new());
        assert_eq!(status_of(&[c("info")]), "pass");
        assert_eq!(status_of(&[c("info"), c("warn")]), "warn");
        assert_eq!(status_of(&[c("warn"), c("error")]), "fail");
    }

    #[test]
    fn every_verb_execute_uses_is_checked() {
        let has = |res: &str, sub: Option<&str>, verb: &str| {
            EXECUTE_VERBS.iter().any(|p| p.resource == res && p.subresource == sub && p.verb == verb)
        };
        for verb in ["create", "delete", "get", "list", "watch", "patch"] {
            assert!(has("jobs", None, verb), "jobs {verb}");
        }
        for verb in ["get", "list", "watch"] {
            assert!(has("pods", None, verb), "pods {verb}");
        }
        assert!(has("pods", Some("log"), "get"));
        for verb in ["create", "delete", "get", "patch"] {
            assert!(has("secrets", None, verb), "secrets {verb}");
        }
        assert!(has("persistentvolumeclaims", None, "get"));
        assert!(has("configmaps", None, "get"));
        let mut codes: Vec<_> = EXECUTE_VERBS.iter().map(|p| p.code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), EXECUTE_VERBS.len(), "check codes are unique");
    }
}
