//! The adapter's configuration (`ctx.config`, contract §1.13) and the host
//! process's environment, read once into typed values.
//!
//! Every read follows the original's `asString`/`asNumber`/`asBoolean`: a
//! value of the wrong type falls back to the default (`timeoutSec: "600"` is
//! ignored, `""` counts as missing). Only values that cannot mean anything
//! useful — tolerations that do not parse — are a [`ConfigError`], reported
//! before anything is created.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;
use serde_json::{Map, Value};

use crate::ctx::RunContext;

/// The original's default heartbeat prompt.
pub const DEFAULT_PROMPT_TEMPLATE: &str = "You are agent {{agent.id}} ({{agent.name}}). Continue your Paperclip work.";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid tolerations: {0}")]
    Tolerations(String),
    /// `podSecurityContext` / `securityContext` that is not an object of
    /// that Kubernetes type.
    #[error("invalid {key}: {detail}")]
    SecurityContext { key: &'static str, detail: String },
    /// `mcpServers` that is not an object of server objects. The message
    /// names the server, never its content (it may hold a token).
    #[error("invalid mcpServers: {0}")]
    McpServers(String),
    /// `egressAllowCidrs` / `egressAllowPorts` that are not CIDRs / ports.
    #[error("invalid egress config: {0}")]
    Egress(String),
}

/// Container resources after defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub requests_cpu: String,
    pub requests_memory: String,
    pub limits_cpu: String,
    pub limits_memory: String,
}

/// `ctx.config`, typed and defaulted.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterConfig {
    pub timeout_sec: i64,
    pub grace_sec: i64,
    /// How long a pod whose node went silent is waited for before the run is
    /// given up (`k8s_node_lost`); 0 waits for the Job's own end.
    pub node_lost_timeout_sec: i64,
    pub retain_jobs: bool,
    pub kubeconfig: Option<String>,
    pub namespace: Option<String>,
    pub reattach_orphaned_jobs: bool,
    pub instructions_file_path: Option<String>,
    pub model: Option<String>,
    pub effort: Option<String>,
    pub max_turns_per_run: i64,
    pub dangerously_skip_permissions: bool,
    pub extra_args: Vec<String>,
    pub ttl_seconds_after_finished: i64,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    /// Fields laid over the Job pod's own `securityContext` (the pod's, and
    /// each container's), as JSON objects already checked to be of the
    /// Kubernetes type. Empty when not set.
    pub pod_security_context: Map<String, Value>,
    pub container_security_context: Map<String, Value>,
    pub labels: BTreeMap<String, String>,
    /// The agent's own MCP servers (`mcpServers`), merged with the host's runtime ones.
    pub mcp_servers: Map<String, Value>,
    /// `strictMcpConfig`: `--strict-mcp-config`, so the CLI uses only those
    /// (not the user's or the project's). Off by default, as 0.1.54 had no MCP flags.
    pub strict_mcp_config: bool,
    pub enable_rtk: bool,
    pub rtk_max_output_bytes: i64,
    pub cwd: Option<String>,
    pub prompt_template: String,
    pub bootstrap_prompt_template: Option<String>,
    pub env: BTreeMap<String, String>,
    pub resources: Resources,
    pub image_pull_policy: String,
    pub service_account_name: Option<String>,
    pub image: Option<String>,
    pub secret_ref: String,
    /// `automountServiceAccountToken`: `None` = ours to decide (no token
    /// unless `serviceAccountName` is set, see `job`).
    pub automount_service_account_token: Option<bool>,
    /// `inheritServerSecrets`: 0.1.54's inherit-everything from Paperclip's
    /// pod, server secrets included (the documented opt-out; off).
    pub inherit_server_secrets: bool,
    /// `withholdEnv`: more inherited names to hold back (a trailing `*` is a
    /// prefix), besides the server's own (`withhold::SERVER_SECRETS`).
    pub withhold_env: Vec<String>,
    /// `runtimeClassName` (gVisor, Kata…): the Job pod's RuntimeClass; none by default.
    pub runtime_class_name: Option<String>,
    /// `readOnlyRootFilesystem`: both containers' root filesystem read-only,
    /// with a writable emptyDir at `/tmp` for the CLI (off by default).
    pub read_only_root_filesystem: bool,
    /// `egressPolicy` and its allow lists: a NetworkPolicy per run (off).
    pub egress: crate::egress::EgressConfig,
}

/// `asString`: a non-empty string.
pub fn as_string(m: &Map<String, Value>, k: &str) -> Option<String> {
    match m.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// `asNumber`: a finite number (JSON cannot hold another kind), truncated.
pub fn as_number(m: &Map<String, Value>, k: &str, fallback: i64) -> i64 {
    match m.get(k).and_then(Value::as_f64) {
        Some(n) if n.is_finite() => n.clamp(i64::MIN as f64, i64::MAX as f64) as i64,
        _ => fallback,
    }
}

/// `asBoolean`.
pub fn as_bool(m: &Map<String, Value>, k: &str, fallback: bool) -> bool {
    m.get(k).and_then(Value::as_bool).unwrap_or(fallback)
}

/// A scalar as text (numbers and booleans written as JSON writes them).
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `nodeSelector` / `labels`: an object, a JSON object string, or
/// `key=value` lines (`#` comments and blank lines ignored).
pub fn parse_key_values(v: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match v {
        Some(Value::Object(m)) => {
            for (k, v) in m {
                if let Some(s) = scalar_text(v) {
                    out.insert(k.trim().to_owned(), s.trim().to_owned());
                }
            }
        }
        Some(Value::String(s)) => {
            if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(s) {
                return parse_key_values(Some(&Value::Object(m)));
            }
            for line in s.lines() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                if let Some((k, v)) = line.split_once('=') {
                    let k = k.trim();
                    if !k.is_empty() {
                        out.insert(k.to_owned(), v.trim().to_owned());
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// A list of names: an array of strings, or text with one or more per line
/// (commas and whitespace separate them too; `#` starts a comment line).
pub fn parse_name_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        Some(Value::String(s)) => s
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| l.split(|c: char| c == ',' || c.is_whitespace()))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// A value given as JSON, or as its JSON text (what the form's textarea
/// sends); `None` when unset, null or blank.
fn json_or_text(v: Option<&Value>) -> Result<Option<std::borrow::Cow<'_, Value>>, serde_json::Error> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s).map(|v| Some(std::borrow::Cow::Owned(v))),
        Some(other) => Ok(Some(std::borrow::Cow::Borrowed(other))),
    }
}

/// `mcpServers`: the agent's own MCP servers, in the CLI's `--mcp-config`
/// shape (`{"name": {"type": "http", "url": …}}` or `{"name": {"command": …}}`),
/// as an object or its JSON text; a `{"mcpServers": {…}}` document is accepted too.
pub fn parse_mcp_servers(v: Option<&Value>) -> Result<Map<String, Value>, ConfigError> {
    // The position only: a server's headers may hold a token.
    let value = json_or_text(v)
        .map_err(|e| ConfigError::McpServers(format!("not valid JSON (line {}, column {}); expected an object", e.line(), e.column())))?;
    let Some(value) = value else { return Ok(Map::new()) };
    let Value::Object(map) = value.as_ref() else { return Err(ConfigError::McpServers("expected an object of MCP servers".into())) };
    let map = match map.get("mcpServers") {
        Some(Value::Object(inner)) if map.len() == 1 => inner,
        _ => map,
    };
    for (name, server) in map {
        let Value::Object(o) = server else {
            return Err(ConfigError::McpServers(format!("server {name:?} is not an object")));
        };
        if !o.contains_key("url") && !o.contains_key("command") {
            return Err(ConfigError::McpServers(format!("server {name:?} has neither a url nor a command")));
        }
    }
    Ok(map.clone())
}

/// `tolerations`: an array, or (the fix) the JSON array string the UI's
/// textarea sends. A string that is not a JSON array of tolerations is an error.
pub fn parse_tolerations(v: Option<&Value>) -> Result<Vec<Toleration>, ConfigError> {
    let array = json_or_text(v).map_err(|e| ConfigError::Tolerations(format!("not valid JSON ({e}); expected a JSON array")))?;
    let Some(array) = array else { return Ok(Vec::new()) };
    let Value::Array(items) = array.as_ref() else {
        return Err(ConfigError::Tolerations("expected a JSON array of tolerations".into()));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if !t.is_object() {
                return Err(ConfigError::Tolerations(format!("item {i} is not an object")));
            }
            serde_json::from_value::<Toleration>(t.clone())
                .map_err(|e| ConfigError::Tolerations(format!("item {i}: {e}")))
        })
        .collect()
}

/// `podSecurityContext` / `securityContext`: an object or a JSON object
/// string, of the Kubernetes type `T` (checked here, so that a typo is a
/// config error before anything is created rather than a field the
/// apiserver drops).
pub fn parse_security_context<T: serde::de::DeserializeOwned>(
    key: &'static str,
    v: Option<&Value>,
) -> Result<Map<String, Value>, ConfigError> {
    let err = |detail: String| ConfigError::SecurityContext { key, detail };
    let object = match v {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(Map::new()),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|e| err(format!("not valid JSON ({e})")))?,
        Some(other) => other.clone(),
    };
    let Value::Object(map) = object else { return Err(err("expected an object".into())) };
    serde_json::from_value::<T>(Value::Object(map.clone())).map_err(|e| err(e.to_string()))?;
    Ok(map)
}

fn resources(m: &Map<String, Value>) -> Resources {
    // The nested form the original's own doc describes…
    let nested = |section: &str, key: &str| {
        m.get("resources")
            .and_then(|r| r.get(section))
            .and_then(|s| s.get(key))
            .and_then(scalar_text)
            .filter(|s| !s.is_empty())
    };
    // …and the flat dotted keys its schema (and UI) writes, which win.
    let pick = |section: &str, key: &str, default: &str| {
        m.get(&format!("resources.{section}.{key}"))
            .and_then(scalar_text)
            .filter(|s| !s.is_empty())
            .or_else(|| nested(section, key))
            .unwrap_or_else(|| default.to_owned())
    };
    Resources {
        requests_cpu: pick("requests", "cpu", "1000m"),
        requests_memory: pick("requests", "memory", "2Gi"),
        limits_cpu: pick("limits", "cpu", "4000m"),
        limits_memory: pick("limits", "memory", "8Gi"),
    }
}

impl AdapterConfig {
    pub fn from_map(m: &Map<String, Value>) -> Result<Self, ConfigError> {
        let extra_args = match m.get("extraArgs") {
            Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        };
        let env = match m.get("env") {
            Some(Value::Object(e)) => {
                e.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned()))).collect()
            }
            _ => BTreeMap::new(),
        };
        Ok(AdapterConfig {
            timeout_sec: as_number(m, "timeoutSec", 0),
            grace_sec: as_number(m, "graceSec", 60),
            node_lost_timeout_sec: as_number(m, "nodeLostTimeoutSec", 60),
            retain_jobs: as_bool(m, "retainJobs", false),
            kubeconfig: as_string(m, "kubeconfig"),
            namespace: as_string(m, "namespace"),
            reattach_orphaned_jobs: as_bool(m, "reattachOrphanedJobs", true),
            instructions_file_path: as_string(m, "instructionsFilePath"),
            model: as_string(m, "model"),
            effort: as_string(m, "effort"),
            max_turns_per_run: as_number(m, "maxTurnsPerRun", 0),
            dangerously_skip_permissions: as_bool(m, "dangerouslySkipPermissions", true),
            extra_args,
            ttl_seconds_after_finished: as_number(m, "ttlSecondsAfterFinished", 300),
            node_selector: parse_key_values(m.get("nodeSelector")),
            tolerations: parse_tolerations(m.get("tolerations"))?,
            pod_security_context: parse_security_context::<k8s_openapi::api::core::v1::PodSecurityContext>(
                "podSecurityContext",
                m.get("podSecurityContext"),
            )?,
            container_security_context: parse_security_context::<k8s_openapi::api::core::v1::SecurityContext>(
                "securityContext",
                m.get("securityContext"),
            )?,
            labels: parse_key_values(m.get("labels")),
            mcp_servers: parse_mcp_servers(m.get("mcpServers"))?,
            strict_mcp_config: as_bool(m, "strictMcpConfig", false),
            enable_rtk: as_bool(m, "enableRtk", false),
            rtk_max_output_bytes: as_number(m, "rtkMaxOutputBytes", 50_000),
            cwd: as_string(m, "cwd"),
            prompt_template: as_string(m, "promptTemplate").unwrap_or_else(|| DEFAULT_PROMPT_TEMPLATE.to_owned()),
            bootstrap_prompt_template: as_string(m, "bootstrapPromptTemplate"),
            env,
            resources: resources(m),
            image_pull_policy: as_string(m, "imagePullPolicy").unwrap_or_else(|| "IfNotPresent".into()),
            service_account_name: as_string(m, "serviceAccountName"),
            image: as_string(m, "image"),
            secret_ref: as_string(m, "secretRef").unwrap_or_else(|| "paperclip-secrets".into()),
            automount_service_account_token: m.get("automountServiceAccountToken").and_then(Value::as_bool),
            inherit_server_secrets: as_bool(m, "inheritServerSecrets", false),
            withhold_env: parse_name_list(m.get("withholdEnv")),
            runtime_class_name: as_string(m, "runtimeClassName").map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
            read_only_root_filesystem: as_bool(m, "readOnlyRootFilesystem", false),
            egress: crate::egress::EgressConfig::from_map(m)?,
        })
    }

    pub fn from_ctx(rc: &RunContext) -> Result<Self, ConfigError> {
        Self::from_map(&rc.config)
    }
}

/// The host process's environment, as far as the adapter reads it. Injected
/// so tests never depend on the machine's env.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostEnv {
    vars: BTreeMap<String, String>,
}

const READ_VARS: &[&str] = &[
    "HOSTNAME",
    "PAPERCLIP_API_URL",
    "PAPERCLIP_NAMESPACE",
    "POD_NAMESPACE",
    "PAPERCLIP_HOME",
    "PAPERCLIP_INSTANCE_ID",
    "PAPERCLIP_LISTEN_HOST",
    "PAPERCLIP_LISTEN_PORT",
    "HOST",
    "PORT",
    "HOME",
    "CLAUDE_CODE_USE_BEDROCK",
    "ANTHROPIC_BEDROCK_BASE_URL",
    // Where the server keeps its state (withhold::server_state).
    "PAPERCLIP_CONFIG",
    "PAPERCLIP_DB_BACKUP_DIR",
    "PAPERCLIP_STORAGE_LOCAL_DIR",
    "PAPERCLIP_SECRETS_MASTER_KEY_FILE",
    // Diagnostics the operator switches on (crate::diagnostics).
    "CLAUDE_K8S_LOG",
    "CLAUDE_K8S_LOG_FORMAT",
];

impl HostEnv {
    pub fn from_process() -> Self {
        let vars = READ_VARS.iter().filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v))).collect();
        HostEnv { vars }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        HostEnv { vars: pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect() }
    }

    /// A variable, `None` when unset (empty counts as set).
    pub fn get(&self, k: &str) -> Option<&str> {
        self.vars.get(k).map(String::as_str)
    }

    /// Every variable read, by name.
    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// A variable that is set and not blank.
    pub fn non_blank(&self, k: &str) -> Option<&str> {
        self.get(k).filter(|v| !v.trim().is_empty())
    }

    /// `PAPERCLIP_API_URL` if set (cancel polling needs it).
    pub fn paperclip_api_url(&self) -> Option<String> {
        self.non_blank("PAPERCLIP_API_URL").map(str::to_owned)
    }

    /// `buildPaperclipEnv`'s URL: the env value, else
    /// `http://<listen host|HOST|localhost>:<listen port|PORT|3100>`.
    pub fn paperclip_api_url_or_default(&self) -> String {
        if let Some(u) = self.get("PAPERCLIP_API_URL") {
            return u.to_owned();
        }
        let host = self.non_blank("PAPERCLIP_LISTEN_HOST").or_else(|| self.non_blank("HOST")).unwrap_or("localhost");
        let host = match host {
            "0.0.0.0" | "::" => "localhost".to_owned(),
            h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
            h => h.to_owned(),
        };
        let port = self.non_blank("PAPERCLIP_LISTEN_PORT").or_else(|| self.non_blank("PORT")).unwrap_or("3100");
        format!("http://{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> Result<AdapterConfig, ConfigError> {
        AdapterConfig::from_map(v.as_object().unwrap())
    }

    #[test]
    fn defaults_match_the_original() {
        let c = cfg(json!({})).unwrap();
        assert_eq!((c.timeout_sec, c.grace_sec, c.ttl_seconds_after_finished), (0, 60, 300));
        assert!(!c.retain_jobs && c.reattach_orphaned_jobs && c.dangerously_skip_permissions && !c.enable_rtk);
        assert_eq!(c.max_turns_per_run, 0);
        assert_eq!(c.node_lost_timeout_sec, 60);
        assert_eq!(c.rtk_max_output_bytes, 50_000);
        assert_eq!(c.image_pull_policy, "IfNotPresent");
        assert_eq!(c.secret_ref, "paperclip-secrets");
        assert_eq!(c.prompt_template, DEFAULT_PROMPT_TEMPLATE);
        assert_eq!(
            c.resources,
            Resources {
                requests_cpu: "1000m".into(),
                requests_memory: "2Gi".into(),
                limits_cpu: "4000m".into(),
                limits_memory: "8Gi".into()
            }
        );
    }

    #[test]
    fn wrong_types_fall_back() {
        let c = cfg(json!({"timeoutSec": "600", "retainJobs": "yes", "model": "", "extraArgs": "--x",
            "env": {"A": "1", "B": 2}, "namespace": 5})).unwrap();
        assert_eq!(c.timeout_sec, 0);
        assert!(!c.retain_jobs);
        assert_eq!(c.model, None);
        assert!(c.extra_args.is_empty());
        assert_eq!(c.env, BTreeMap::from([("A".to_owned(), "1".to_owned())]));
        assert_eq!(c.namespace, None);
        let c = cfg(json!({"timeoutSec": 12.9, "extraArgs": ["--a", 3, "--b"]})).unwrap();
        assert_eq!(c.timeout_sec, 12);
        assert_eq!(c.extra_args, vec!["--a", "--b"]);
    }

    #[test]
    fn nested_resources_are_honoured_and_flat_keys_win() {
        // The original ignored the nested object its own doc described.
        let c = cfg(json!({"resources": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": 2, "memory": "4Gi"}}})).unwrap();
        assert_eq!(c.resources.requests_cpu, "250m");
        assert_eq!(c.resources.requests_memory, "1Gi");
        assert_eq!(c.resources.limits_cpu, "2");
        assert_eq!(c.resources.limits_memory, "4Gi");
        let c = cfg(json!({"resources": {"requests": {"cpu": "250m"}}, "resources.requests.cpu": "500m"})).unwrap();
        assert_eq!(c.resources.requests_cpu, "500m");
    }

    #[test]
    fn key_value_forms() {
        let want = BTreeMap::from([("a".to_owned(), "1".to_owned()), ("b".to_owned(), "x=y".to_owned())]);
        assert_eq!(parse_key_values(Some(&json!({"a": "1", "b": "x=y"}))), want);
        assert_eq!(parse_key_values(Some(&json!("{\"a\":\"1\",\"b\":\"x=y\"}"))), want);
        assert_eq!(parse_key_values(Some(&json!("# comment\n a = 1 \n\nb=x=y\nnoequals"))), want);
        assert!(parse_key_values(Some(&json!([1]))).is_empty());
    }

    #[test]
    fn tolerations_as_array_or_json_string() {
        let t = json!([{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]);
        let from_array = cfg(json!({"tolerations": t})).unwrap().tolerations;
        // The original silently dropped the string form the UI sends.
        let from_string = cfg(json!({"tolerations": t.to_string()})).unwrap().tolerations;
        assert_eq!(from_array.len(), 1);
        assert_eq!(from_array, from_string);
        assert_eq!(from_array[0].key.as_deref(), Some("gpu"));
        assert!(cfg(json!({"tolerations": ""})).unwrap().tolerations.is_empty());
    }

    #[test]
    fn invalid_tolerations_are_a_clear_error() {
        let e = cfg(json!({"tolerations": "[{oops"})).unwrap_err();
        assert!(e.to_string().starts_with("invalid tolerations: not valid JSON"), "{e}");
        let e = cfg(json!({"tolerations": "{\"key\":\"a\"}"})).unwrap_err();
        assert_eq!(e.to_string(), "invalid tolerations: expected a JSON array of tolerations");
        let e = cfg(json!({"tolerations": [1]})).unwrap_err();
        assert_eq!(e.to_string(), "invalid tolerations: item 0 is not an object");
    }

    #[test]
    fn exposure_keys() {
        let c = cfg(json!({})).unwrap();
        assert_eq!((c.automount_service_account_token, c.inherit_server_secrets), (None, false));
        assert!(c.withhold_env.is_empty());
        let c = cfg(json!({"automountServiceAccountToken": true, "inheritServerSecrets": true, "withholdEnv": ["A", " B ", 3]})).unwrap();
        assert_eq!((c.automount_service_account_token, c.inherit_server_secrets), (Some(true), true));
        assert_eq!(c.withhold_env, ["A", "B"]);
        let c = cfg(json!({"withholdEnv": "# mine\nA, B\n CORP_*  "})).unwrap();
        assert_eq!(c.withhold_env, ["A", "B", "CORP_*"]);
    }

    #[test]
    fn paperclip_url_default() {
        assert_eq!(HostEnv::default().paperclip_api_url_or_default(), "http://localhost:3100");
        let e = HostEnv::from_pairs([("HOST", "0.0.0.0"), ("PORT", "3199")]);
        assert_eq!(e.paperclip_api_url_or_default(), "http://localhost:3199");
        let e = HostEnv::from_pairs([("PAPERCLIP_LISTEN_HOST", "::1")]);
        assert_eq!(e.paperclip_api_url_or_default(), "http://[::1]:3100");
        let e = HostEnv::from_pairs([("PAPERCLIP_API_URL", "http://pc:1")]);
        assert_eq!(e.paperclip_api_url_or_default(), "http://pc:1");
        assert_eq!(e.paperclip_api_url().as_deref(), Some("http://pc:1"));
        assert_eq!(HostEnv::from_pairs([("PAPERCLIP_API_URL", " ")]).paperclip_api_url(), None);
    }
}

#[cfg(test)]
mod mcp_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mcp_servers_object_text_or_document() {
        let want = json!({"docs": {"type": "http", "url": "https://d/mcp"}}).as_object().unwrap().clone();
        assert_eq!(parse_mcp_servers(Some(&json!({"docs": {"type": "http", "url": "https://d/mcp"}}))).unwrap(), want);
        assert_eq!(parse_mcp_servers(Some(&json!(r#"{"mcpServers":{"docs":{"type":"http","url":"https://d/mcp"}}}"#))).unwrap(), want);
        assert!(parse_mcp_servers(None).unwrap().is_empty());
        assert!(parse_mcp_servers(Some(&json!(" "))).unwrap().is_empty());
        let e = parse_mcp_servers(Some(&json!(r#"{"x": {"url": "https://h", "headers": {"Authorization": "Bearer SECRET"}}"#))).unwrap_err().to_string();
        assert!(e.starts_with("invalid mcpServers: not valid JSON") && !e.contains("SECRET"), "{e}");
        let e = parse_mcp_servers(Some(&json!({"x": {"headers": {"Authorization": "Bearer SECRET"}}}))).unwrap_err().to_string();
        assert_eq!(e, "invalid mcpServers: server \"x\" has neither a url nor a command");
        assert_eq!(parse_mcp_servers(Some(&json!([1]))).unwrap_err().to_string(), "invalid mcpServers: expected an object of MCP servers");
        let c = AdapterConfig::from_map(json!({"strictMcpConfig": true}).as_object().unwrap()).unwrap();
        assert!(c.strict_mcp_config && c.mcp_servers.is_empty());
    }
}
