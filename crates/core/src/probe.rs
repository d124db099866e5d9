//! `testEnvironment`'s opt-in probe (`environmentProbe: "version" | "hello"`):
//! a short Job built exactly as a run's (the agent's image, env, inherited
//! Secrets and security context) that runs `claude --version` and, for
//! `"hello"`, one turn of "Respond with hello." — so a check says whether a
//! run *can* work, not only whether the RBAC allows one.
//!
//! Each failure is its own check with a hint: an image the node cannot pull,
//! `claude` missing from the image, an API key the API refuses, an API the
//! pod cannot reach. The probe Job is deleted on every path (a failed delete
//! is a warning; its TTL removes it anyway). The probe's output never goes
//! into a check verbatim: only the CLI version and its one-line API error,
//! with anything shaped like a key masked.

use std::sync::LazyLock;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, LogParams, PostParams, PropagationPolicy};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use regex::Regex;
use serde_json::{Map, Value, json};

use crate::cluster::describe_error;
use crate::config::{AdapterConfig, HostEnv};
use crate::env_test::Check;
use crate::pod::{PodProgress, assess, claude_terminated};
use crate::retry::Classified;
use crate::selfpod::SelfPod;
use crate::transcript::{Transcript, parse_all};

/// What the probe does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `claude --version` in the agent's image.
    Version,
    /// That, then one turn against the API with the agent's credentials.
    Hello,
}

impl Probe {
    /// `config.environmentProbe`: `"version"`, `"hello"` (or `true`); anything else is off.
    pub fn from_config(config: &Map<String, Value>) -> Option<Probe> {
        match config.get("environmentProbe") {
            Some(Value::Bool(true)) => Some(Probe::Hello),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("hello") => Some(Probe::Hello),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("version") => Some(Probe::Version),
            _ => None,
        }
    }
}

const PROMPT: &str = "Respond with hello.";
const MARK: &str = "@@paperclip-probe";
/// The probe Job's whole budget: scheduling, pulling, the CLI's start and one turn.
const DEFAULT_TIMEOUT_SEC: i64 = 90;
const LOG_LIMIT: i64 = 1 << 20;

static KEYLIKE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(sk-[A-Za-z0-9_-]{4})[A-Za-z0-9_-]{4,}").expect("valid"));

fn check(code: &str, level: &'static str, message: impl Into<String>, hint: Option<&str>) -> Check {
    Check { code: code.into(), level, message: message.into(), detail: None, hint: hint.map(str::to_owned) }
}

/// The container's script: a marker line per step, so the log says how far it got.
fn script(probe: Probe, claude_command: &str) -> String {
    let mut s = format!(
        "command -v claude >/dev/null 2>&1 || {{ echo '{MARK} missing'; exit 127; }}; \
         v=$(claude --version 2>&1); rc=$?; echo \"{MARK} version rc=$rc $(printf '%s' \"$v\" | head -n 1)\"; \
         [ $rc -eq 0 ] || exit 126"
    );
    if probe == Probe::Hello {
        s.push_str("; ");
        s.push_str(claude_command);
    }
    s
}

/// Builds the probe Job from the agent's config: a run's Job, with the probe's prompt and script.
fn probe_job(
    probe: Probe,
    company_id: &str,
    config: &Map<String, Value>,
    self_pod: Option<&SelfPod>,
    env: &HostEnv,
    namespace: &str,
    sources: Option<&crate::selfpod::SourceKeys>,
) -> Result<(Job, String, Option<Secret>, Option<NetworkPolicy>), String> {
    let run_id = format!("probe-{}", k8s_openapi::jiff::Timestamp::now().as_millisecond());
    let rc = crate::ctx::RunContext::from_json(&json!({
        "runId": run_id,
        "agent": {"id": "env-probe", "companyId": company_id, "name": "environment probe"},
        "config": Value::Object(config.clone()),
        "context": {},
    }));
    let mut cfg = AdapterConfig::from_map(config).map_err(|e| e.to_string())?;
    let budget = crate::config::as_number(config, "helloProbeTimeoutSec", DEFAULT_TIMEOUT_SEC).clamp(10, 600);
    cfg.prompt_template = PROMPT.into();
    cfg.bootstrap_prompt_template = None;
    cfg.instructions_file_path = None;
    cfg.max_turns_per_run = 1;
    cfg.timeout_sec = budget;
    cfg.ttl_seconds_after_finished = 60;
    cfg.enable_rtk = false;
    cfg.mcp_servers.clear();
    let input = crate::job::JobInput { ctx: &rc, config: &cfg, self_pod, bundle: None, env, namespace, instructions: None, sources };
    let plan = crate::job::build_job(&input).map_err(|e| e.to_string())?;
    let mut job = plan.job;
    let secret = plan.prompt_secret;
    let policy = plan.egress.map(|e| e.policy);
    let name = plan.job_name.clone();
    let labels = job.metadata.labels.get_or_insert_default();
    labels.insert("paperclip.io/probe".into(), "environment".into());
    if let Some(spec) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut())
        && let Some(c) = spec.containers.first_mut()
    {
        let run_command = c.command.as_ref().and_then(|cmd| cmd.get(2)).cloned().unwrap_or_default();
        c.command = Some(vec!["sh".into(), "-c".into(), script(probe, &run_command)]);
    }
    if let Some(meta) = job.spec.as_mut().and_then(|s| s.template.metadata.as_mut()) {
        meta.labels.get_or_insert_default().insert("paperclip.io/probe".into(), "environment".into());
    }
    Ok((job, name, secret, policy))
}

/// How the probe pod ended.
enum Ended {
    Terminated(Box<Pod>),
    Failed(String),
    TimedOut,
    WatchFailed(String),
}

async fn wait_for_pod(pods: &Api<Pod>, job: &str, budget: Duration) -> Ended {
    let config = watcher::Config::default().labels(&format!("job-name={job}"));
    let mut events = watcher(pods.clone(), config).default_backoff().applied_objects().boxed();
    let outcome = tokio::time::timeout(budget, async {
        while let Some(next) = events.next().await {
            let pod = match next {
                Ok(p) => p,
                Err(e) => return Ended::WatchFailed(e.to_string()),
            };
            if claude_terminated(&pod).is_some() {
                return Ended::Terminated(Box::new(pod));
            }
            if let PodProgress::Failed(why) = assess(&pod) {
                return Ended::Failed(why);
            }
        }
        Ended::WatchFailed("the pod watch ended".into())
    })
    .await;
    outcome.unwrap_or(Ended::TimedOut)
}

/// The API error as the CLI put it, one line, keys masked.
fn api_error_line(t: &Transcript) -> Option<String> {
    let r = t.result_json.as_ref()?;
    let text = r.get("result").and_then(Value::as_str)?.lines().next()?.trim();
    let text: String = text.chars().take(300).collect();
    Some(KEYLIKE.replace_all(&text, "$1…").into_owned())
}

static UNREACHABLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)econnrefused|enotfound|eai_again|etimedout|ehostunreach|enetunreach|can't reach the api|connection refused|unable to connect|connection error|getaddrinfo").expect("valid")
});

/// The checks of a probe whose pod ran to the end.
pub fn interpret(probe: Probe, log: &str, exit: Option<i32>, image: &str, now: jiff::Timestamp) -> Vec<Check> {
    let mut out = Vec::new();
    let mark =
        |what: &str| log.lines().find_map(|l| l.strip_prefix(MARK).map(str::trim).filter(|r| r.starts_with(what)).map(str::to_owned));
    if mark("missing").is_some() || exit == Some(127) && mark("version").is_none() {
        out.push(check(
            "claude_probe_cli_missing",
            "error",
            format!("The image {image} has no `claude` on its PATH."),
            Some(
                "Use an image with Claude Code installed (npm install -g @anthropic-ai/claude-code), or set `image` in the agent's config.",
            ),
        ));
        return out;
    }
    let Some(version) = mark("version") else {
        out.push(check(
            "claude_probe_failed",
            "error",
            format!("The probe pod exited with code {} before `claude --version` ran.", exit.map_or("?".into(), |c| c.to_string())),
            None,
        ));
        return out;
    };
    // "version rc=0 2.1.328 (Claude Code)"
    let rest = version.trim_start_matches("version").trim();
    let (rc, v) = rest.split_once(' ').unwrap_or((rest, ""));
    if rc != "rc=0" {
        let mut c = check(
            "claude_probe_version_failed",
            "error",
            format!("`claude --version` failed in {image} ({rc})."),
            Some("Run `claude --version` in the image to see why; the CLI needs Node.js 18+."),
        );
        c.detail = Some(v.chars().take(300).collect());
        out.push(c);
        return out;
    }
    let mut c = check(
        "claude_probe_cli_version",
        "info",
        format!("Claude Code {} in {image}", v.trim().trim_end_matches("(Claude Code)").trim()),
        None,
    );
    c.detail = Some(v.trim().to_owned());
    out.push(c);
    if probe == Probe::Version {
        return out;
    }
    let stream: String = log.lines().filter(|l| l.starts_with('{')).collect::<Vec<_>>().join("\n");
    let t = parse_all(stream.as_bytes(), "");
    let failed = exit != Some(0) || t.result_json.as_ref().and_then(|r| r.get("is_error")).and_then(Value::as_bool) == Some(true);
    let line = api_error_line(&t);
    let with_detail = |mut c: Check| {
        c.detail = line.clone();
        c
    };
    if !failed {
        if t.summary.to_lowercase().contains("hello") {
            out.push(check("claude_hello_probe_passed", "info", "Claude hello probe succeeded.", None));
        } else {
            out.push(check(
                "claude_hello_probe_unexpected_output",
                "warn",
                "Claude probe ran but did not return `hello` as expected.",
                Some("Try the prompt `Respond with hello.` by hand with the agent's model; a custom ANTHROPIC_BASE_URL may answer differently."),
            ));
        }
        return out;
    }
    let classified = t.result_json.as_ref().and_then(|r| crate::retry::classify(r, true, &t, now));
    let words = line.clone().unwrap_or_default();
    let c = match classified {
        Some(Classified { error_code: "claude_auth_required", .. }) => check(
            "claude_hello_probe_auth_required",
            "error",
            "The Anthropic API refused the pod's credentials.",
            Some(
                "Check ANTHROPIC_API_KEY (or CLAUDE_CODE_OAUTH_TOKEN) in the Secret the Job inherits (the Deployment's envFrom / secretRef) or in the agent's env.",
            ),
        ),
        _ if UNREACHABLE.is_match(&words) => check(
            "claude_hello_probe_api_unreachable",
            "error",
            "The pod cannot reach the Anthropic API.",
            Some(
                "Check DNS, the namespace's egress NetworkPolicy and any proxy (HTTPS_PROXY) for the Job's pods, and ANTHROPIC_BASE_URL if set.",
            ),
        ),
        Some(Classified { error_code: "provider_quota", .. }) => check(
            "claude_hello_probe_usage_limited",
            "warn",
            "Claude hello probe hit a rate or usage limit.",
            Some("Authentication works; the account's limit is exhausted for now. Retry after it resets."),
        ),
        Some(Classified { error_code: "claude_transient_upstream", .. }) => check(
            "claude_hello_probe_transient_upstream",
            "warn",
            "Claude hello probe hit a transient upstream error (overload or a 5xx).",
            Some("This is usually temporary. Wait a moment and re-run the test."),
        ),
        _ => check(
            "claude_hello_probe_failed",
            "error",
            "Claude hello probe failed.",
            Some(&format!(
                "Exit code {}. Run `claude --print - --output-format stream-json --verbose` in the image with the agent's env and the prompt `Respond with hello.` to debug.",
                exit.map_or("unknown".into(), |c| c.to_string())
            )),
        ),
    };
    out.push(with_detail(c));
    out
}

/// Runs the probe; every outcome is a check.
pub async fn run(
    probe: Probe,
    client: &Client,
    company_id: &str,
    config: &Map<String, Value>,
    self_pod: Option<&SelfPod>,
    env: &HostEnv,
    namespace: &str,
) -> Vec<Check> {
    let inherit_everything = config.get("inheritServerSecrets").and_then(Value::as_bool).unwrap_or(false);
    let sources = match self_pod {
        Some(p) if !inherit_everything => {
            let mut keys = crate::selfpod::read_source_keys(client, namespace, p).await;
            if p.pvc_claim_name.is_some() {
                keys.server_state = crate::withhold::server_state(env);
            }
            Some(keys)
        }
        _ => None,
    };
    let (job, name, secret, policy) = match probe_job(probe, company_id, config, self_pod, env, namespace, sources.as_ref()) {
        Ok(j) => j,
        Err(e) => {
            return vec![check("claude_probe_not_built", "error", format!("The probe Job could not be built: {e}"), None)];
        }
    };
    let image = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let budget = job.spec.as_ref().and_then(|s| s.active_deadline_seconds).unwrap_or(DEFAULT_TIMEOUT_SEC) as u64;
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    // The probe's prompt and the token-shaped values travel as a run's do: in its Secret.
    let secret_name = secret.as_ref().and_then(|s| s.metadata.name.clone());
    if let Some(s) = &secret
        && let Err(e) = secrets.create(&PostParams::default(), s).await
    {
        return vec![check(
            "claude_probe_job_create_failed",
            "error",
            format!("The probe's Secret could not be created in {namespace}: {}", describe_error(&e)),
            Some("Runs create the same Secret: fix this first (RBAC: create secrets)."),
        )];
    }
    let delete_secret = || async {
        if let Some(n) = &secret_name {
            let _ = secrets.delete(n, &DeleteParams::default()).await;
        }
    };
    // The probe pod runs the agent's image with its credentials: under the
    // run's egress policy, created first, as for a run.
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), namespace);
    let policy_name = policy.as_ref().and_then(|p| p.metadata.name.clone());
    if let Some(p) = &policy
        && let Err(e) = policies.create(&PostParams::default(), p).await
    {
        delete_secret().await;
        return vec![check(
            "claude_probe_job_create_failed",
            "error",
            format!("The probe's egress NetworkPolicy could not be created in {namespace}: {}", describe_error(&e)),
            Some("Runs create the same policy (egressPolicy): fix this first (RBAC: deploy/rbac-egress.yaml)."),
        )];
    }
    let delete_policy = || async {
        if let Some(n) = &policy_name {
            let _ = policies.delete(n, &DeleteParams::default()).await;
        }
    };
    let created = jobs.create(&PostParams::default(), &job).await;
    if let Err(e) = created {
        delete_secret().await;
        delete_policy().await;
        return vec![check(
            "claude_probe_job_create_failed",
            "error",
            format!("The probe Job could not be created in {namespace}: {}", describe_error(&e)),
            Some("Runs create the same Job: fix this first (RBAC, admission, quota)."),
        )];
    }
    // Owned by the Job, the policy goes with it (the garbage collector); one
    // left without an owner is deleted at the end.
    let mut policy_owned = false;
    if let (Some(n), Ok(created)) = (&policy_name, &created) {
        policy_owned = crate::run::set_policy_owners(&policies, n, &name, created.metadata.uid.as_deref(), &[]).await.is_ok();
    }
    let ended = wait_for_pod(&pods, &name, Duration::from_secs(budget + 15)).await;
    let mut checks = match ended {
        Ended::Terminated(pod) => {
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            let exit = claude_terminated(&pod).map(|t| t.exit_code);
            let params =
                LogParams { container: Some(crate::pod::CLAUDE_CONTAINER.into()), limit_bytes: Some(LOG_LIMIT), ..Default::default() };
            match pods.logs(&pod_name, &params).await {
                Ok(log) => interpret(probe, &log, exit, &image, jiff::Timestamp::now()),
                Err(e) => vec![check(
                    "claude_probe_log_unreadable",
                    "warn",
                    format!("The probe ran but its log could not be read: {}", describe_error(&e)),
                    None,
                )],
            }
        }
        Ended::Failed(why) if why.contains("image pull") || why.contains("Image pull") => {
            vec![check(
                "k8s_probe_image_pull_failed",
                "error",
                format!("The node could not pull the agent's image {image}: {why}"),
                Some("Check the image name and tag, and the imagePullSecrets the Job inherits (or set `image` in the agent's config)."),
            )]
        }
        Ended::Failed(why) => vec![check("k8s_probe_pod_failed", "error", format!("The probe pod could not run: {why}"), None)],
        Ended::TimedOut => vec![check(
            "claude_probe_timed_out",
            "warn",
            format!("The probe did not finish within {}s.", budget + 15),
            Some("Scheduling or pulling the image may be slow; raise helloProbeTimeoutSec, or look at the pod's events."),
        )],
        Ended::WatchFailed(e) => vec![check("claude_probe_watch_failed", "warn", format!("The probe pod could not be watched: {e}"), None)],
    };
    let dp = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
    if let Err(e) = jobs.delete(&name, &dp).await
        && !crate::cluster::is_not_found(&e)
    {
        checks.push(check(
            "claude_probe_cleanup_failed",
            "warn",
            format!("The probe Job {name} could not be deleted: {}", describe_error(&e)),
            None,
        ));
    }
    delete_secret().await;
    if !policy_owned {
        delete_policy().await;
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2026-04-22T15:15:00Z".parse().unwrap()
    }

    const VERSION: &str = "@@paperclip-probe version rc=0 2.1.328 (Claude Code)";

    fn codes(c: &[Check]) -> Vec<&str> {
        c.iter().map(|c| c.code.as_str()).collect()
    }

    fn result(text: &str, status: Option<u16>) -> String {
        json!({"type": "result", "subtype": "success", "is_error": true, "result": text, "api_error_status": status, "terminal_reason": "api_error"}).to_string()
    }

    #[test]
    fn opt_in_only() {
        let m = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(Probe::from_config(&m(json!({}))), None);
        assert_eq!(Probe::from_config(&m(json!({"environmentProbe": "off"}))), None);
        assert_eq!(Probe::from_config(&m(json!({"environmentProbe": "version"}))), Some(Probe::Version));
        assert_eq!(Probe::from_config(&m(json!({"environmentProbe": true}))), Some(Probe::Hello));
    }

    #[test]
    fn missing_cli_and_version() {
        assert_eq!(codes(&interpret(Probe::Hello, "@@paperclip-probe missing\n", Some(127), "img", now())), ["claude_probe_cli_missing"]);
        let c = interpret(Probe::Version, &format!("{VERSION}\n"), Some(0), "img:1", now());
        assert_eq!(codes(&c), ["claude_probe_cli_version"]);
        assert_eq!(c[0].message, "Claude Code 2.1.328 in img:1");
        let c = interpret(Probe::Version, "@@paperclip-probe version rc=1 Error: Cannot find module\n", Some(126), "img", now());
        assert_eq!(codes(&c), ["claude_probe_version_failed"]);
    }

    #[test]
    fn hello_outcomes() {
        let ok = format!("{VERSION}\n{}\n", json!({"type": "result", "subtype": "success", "is_error": false, "result": "Hello!"}));
        assert_eq!(codes(&interpret(Probe::Hello, &ok, Some(0), "i", now())), ["claude_probe_cli_version", "claude_hello_probe_passed"]);
        let odd = format!("{VERSION}\n{}\n", json!({"type": "result", "subtype": "success", "is_error": false, "result": "Bonjour"}));
        assert_eq!(codes(&interpret(Probe::Hello, &odd, Some(0), "i", now()))[1], "claude_hello_probe_unexpected_output");
        for (text, status, code) in [
            ("Invalid API key · Fix external API key", Some(401), "claude_hello_probe_auth_required"),
            (
                "API Error: Connection refused — a firewall or proxy may be blocking it (ECONNREFUSED)",
                None,
                "claude_hello_probe_api_unreachable",
            ),
            ("API Error: Can't reach the API server — check your internet or DNS (ENOTFOUND)", None, "claude_hello_probe_api_unreachable"),
            ("API Error: Request rejected (429) · rate limit", Some(429), "claude_hello_probe_usage_limited"),
            ("API Error: 529 Overloaded.", Some(529), "claude_hello_probe_transient_upstream"),
            ("something else entirely", None, "claude_hello_probe_failed"),
        ] {
            let log = format!("{VERSION}\n{}\n", result(text, status));
            let c = interpret(Probe::Hello, &log, Some(1), "i", now());
            assert_eq!(c[1].code, code, "{text}");
            assert!(c[1].hint.is_some());
        }
    }

    #[test]
    fn a_key_in_the_error_is_masked() {
        let log = format!("{VERSION}\n{}\n", result("Invalid API key sk-ant-api03-abcdefghijklmnop", Some(401)));
        let c = interpret(Probe::Hello, &log, Some(1), "i", now());
        let detail = c[1].detail.as_deref().unwrap();
        assert!(detail.contains("sk-ant-…") && !detail.contains("abcdefghijklmnop"), "{detail}");
    }

    #[test]
    fn the_script_marks_each_step() {
        let s = script(Probe::Hello, "cat /tmp/prompt/prompt.txt | claude --print -");
        assert!(s.starts_with("command -v claude"));
        assert!(s.ends_with("; cat /tmp/prompt/prompt.txt | claude --print -"));
        assert!(!script(Probe::Version, "x").contains("| claude --print"));
    }
}
