//! What a Job pod must not get from Paperclip's own pod: the server's
//! secrets. The agent is untrusted (it runs with
//! `--dangerously-skip-permissions` on prompts anyone can write), so
//! whatever reaches its env can be sent anywhere; with the host's JWT secret
//! (or `BETTER_AUTH_SECRET`, its fallback) it could mint a token for any
//! agent of any company.
//!
//! The names come from what the server itself reads for its secrets
//! (`@paperclipai/server` 2026.916.1's `dist/`: `process.env` reads of the
//! auth, database, secrets-provider, signing, connector and broker keys),
//! from the host's Helm chart (`PAPERCLIP_AGENT_JWT_SECRET`,
//! `PAPERCLIP_MASTER_KEY_SEED`, the chart Secret's keys `agentJwtSecret` /
//! `masterKey`) and from the operator (`DATABASE_URL`, `DB_PASSWORD`,
//! `BETTER_AUTH_SECRET`, `PAPERCLIP_SECRETS_MASTER_KEY`, `RESEND_API_KEY`,
//! OAuth client secrets, `PAPERCLIP_OAUTH_CREDENTIALS`,
//! `PAPERCLIP_MANAGED_*_API_KEY`, `PAPERCLIP_RATE_LIMIT_REDIS_URL`, AWS keys
//! for its object storage), plus `GITHUB_APP_PRIVATE_KEY`.
//!
//! Invariants: a name is compared in its normalized form (upper snake case,
//! so the chart Secret's `agentJwtSecret` is `AGENT_JWT_SECRET`); the rules
//! apply to what is *inherited* only — `config.env` is the user's own choice
//! and always arrives; provider keys (`ANTHROPIC_API_KEY`,
//! `CLAUDE_CODE_OAUTH_TOKEN`, …) and `PAPERCLIP_API_URL` are never server
//! secrets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::HostEnv;

/// The server's own secrets, by exact (normalized) name.
pub const SERVER_SECRETS: &[&str] = &[
    // Agent tokens are signed with these (server/src/agent-auth-jwt.ts).
    "PAPERCLIP_AGENT_JWT_SECRET",
    "BETTER_AUTH_SECRET",
    // The chart's Secret keys, as an envFrom or a volume would name them.
    "AGENT_JWT_SECRET",
    "MASTER_KEY",
    // The secrets provider's master key (and where it lives).
    "PAPERCLIP_SECRETS_MASTER_KEY",
    "PAPERCLIP_SECRETS_MASTER_KEY_FILE",
    "PAPERCLIP_MASTER_KEY_SEED",
    // The database.
    "DATABASE_URL",
    "DATABASE_MIGRATION_URL",
    "PAPERCLIP_TEST_DATABASE_URL",
    "DB_PASSWORD",
    "PAPERCLIP_RATE_LIMIT_REDIS_URL",
    // Mail, sign-in and connections.
    "RESEND_API_KEY",
    "GOOGLE_CLIENT_ID",
    "GOOGLE_CLIENT_SECRET",
    "APPLE_CLIENT_ID",
    "APPLE_CLIENT_SECRET",
    "PAPERCLIP_OAUTH_CREDENTIALS",
    "PAPERCLIP_TOOL_OAUTH_CLIENT_ID",
    "PAPERCLIP_TOOL_OAUTH_CLIENT_SECRET",
    // Signing and service-to-service tokens.
    "PAPERCLIP_TOOL_ACTION_SIGNING_SECRET",
    "PAPERCLIP_DECISION_SIGNING_SECRET",
    "PAPERCLIP_WORKSPACE_HANDOFF_SECRET",
    "PAPERCLIP_INTERNAL_SECRET",
    "PAPERCLIP_CLOUD_TENANT_SERVER_TOKEN",
    "PAPERCLIP_TELEMETRY_BACKEND_TOKEN",
    "PAPERCLIP_FEEDBACK_EXPORT_BACKEND_TOKEN",
    "PAPERCLIP_DEV_SERVER_STATUS_TOKEN",
    "PAPERCLIP_CLOUD_CONNECTOR_SEAL_PRIVATE_KEY",
    "PAPERCLIP_CLOUD_CONNECTOR_SIGN_PRIVATE_KEY",
    "PAPERCLIP_ID_CONNECTOR_SEAL_PRIVATE_KEY",
    "PAPERCLIP_ID_CONNECTOR_SIGN_PRIVATE_KEY",
    "PAPERCLIP_GITHUB_BROKER_TOKEN",
    "PAPERCLIP_GITHUB_BRIDGE_TOKEN",
    "PAPERCLIP_VERCEL_CONNECT_ACCESS_TOKEN",
    "GITHUB_APP_PRIVATE_KEY",
];

/// Name prefixes that are the server's whole families: its secrets provider
/// (`PAPERCLIP_SECRETS_AWS_*` and the rest).
pub const SERVER_SECRET_PREFIXES: &[&str] = &["PAPERCLIP_SECRETS_"];

/// The names an agent on Bedrock needs and the server's object storage also
/// uses: held back unless the agent's config or env selects Bedrock.
pub const AWS_PREFIX: &str = "AWS_";

/// `agentJwtSecret` → `AGENT_JWT_SECRET`, `db-password` → `DB_PASSWORD`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        });
    }
    out
}

/// Whether a value is truthy the way the CLI reads `CLAUDE_CODE_USE_BEDROCK`.
fn truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

/// The rule, with what the config adds to it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Withhold {
    /// `inheritServerSecrets: true`: 0.1.54's inherit-everything (the opt-out).
    pub inherit_everything: bool,
    /// `withholdEnv`: more names (normalized), a trailing `*` for a prefix.
    pub extra: Vec<String>,
    /// The agent runs Claude on Bedrock: `AWS_*` are its credentials and arrive.
    pub bedrock: bool,
}

impl Withhold {
    /// Builds the rule. `bedrock` comes from [`selects_bedrock`].
    pub fn new(inherit_everything: bool, extra: &[String], bedrock: bool) -> Self {
        Withhold { inherit_everything, extra: extra.iter().map(|n| normalize(n.trim())).filter(|n| !n.is_empty()).collect(), bedrock }
    }

    /// Whether an inherited env name (or an envFrom key, or a secret volume's
    /// file) is one of the server's secrets, and so stays with the server.
    pub fn holds_back(&self, name: &str) -> bool {
        if self.inherit_everything {
            return false;
        }
        let n = normalize(name);
        if SERVER_SECRETS.contains(&n.as_str()) || SERVER_SECRET_PREFIXES.iter().any(|p| n.starts_with(p)) {
            return true;
        }
        // The operator's managed-inference keys: PAPERCLIP_MANAGED_<PROVIDER>_API_KEY.
        if n.starts_with("PAPERCLIP_MANAGED_") && n.ends_with("_API_KEY") {
            return true;
        }
        if n.starts_with(AWS_PREFIX) && !self.bedrock {
            return true;
        }
        self.extra.iter().any(|e| match e.strip_suffix('*') {
            Some(prefix) => n.starts_with(prefix),
            None => n == *e,
        })
    }
}

/// Bedrock is selected when `CLAUDE_CODE_USE_BEDROCK` is truthy or
/// `ANTHROPIC_BEDROCK_BASE_URL` is set, in `config.env` first, then in what
/// the pod would inherit, then in the host's own environment.
pub fn selects_bedrock<'a>(layers: impl IntoIterator<Item = &'a BTreeMap<String, String>>) -> bool {
    for layer in layers {
        if let Some(v) = layer.get("CLAUDE_CODE_USE_BEDROCK") {
            return truthy(v);
        }
        if layer.get("ANTHROPIC_BEDROCK_BASE_URL").is_some_and(|v| !v.trim().is_empty()) {
            return true;
        }
    }
    false
}

/// Whether an env name looks like it carries a secret: the host's own rule
/// (`SENSITIVE_ENV_KEY_RE` in 2026.916.1's `services/secrets.js`) widened to
/// any token, access key, `*_KEY`, database URL or DSN (a false positive
/// only moves a value into the run's Secret). Used to keep values out of the
/// Job spec and to name what `testEnvironment` sees.
pub fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "apikey", "api_key", "api-key", "accesstoken", "access_token", "access-token", "auth", "bearer", "secret", "passwd",
        "password", "credential", "jwt", "privatekey", "private_key", "private-key", "cookie", "connectionstring",
        // Widened: GITHUB_TOKEN, AWS_ACCESS_KEY_ID, DATABASE_URL, SENTRY_DSN.
        "token", "access_key", "accesskey", "database_url", "dsn",
    ];
    WORDS.iter().any(|w| n.contains(w)) || n.ends_with("_key") || n.ends_with("-key") || n == "key"
}

/// A name Kubernetes takes for an env var on every version we support (a C
/// identifier with `-` and `.`): keys of an expanded `envFrom` that are not
/// were skipped by the kubelet too.
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == '-' || c == '.')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// Where the server keeps its state on the volume it shares with the Job
/// pods (`/paperclip`): the embedded PostgreSQL data, the secrets master key,
/// the instance's `config.json` and `.env` (onboarding writes
/// `PAPERCLIP_AGENT_JWT_SECRET` there), backups, logs and uploaded files.
/// The Job mounts an empty read-only volume over each directory and an empty
/// read-only file over each file; a pod without `CAP_SYS_ADMIN` cannot undo
/// a mount, and a directory holding a mount point cannot be renamed away.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerState {
    pub dirs: Vec<String>,
    pub files: Vec<String>,
}

/// The volume the Job pods share with the server.
pub const SHARED_VOLUME: &str = "/paperclip";

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// Reads the server's own layout as the host resolves it (its
/// `config.js` and `home-paths.js`, 2026.916.1): the env override, else the
/// instance `config.json`'s key, else the instance default. Only paths
/// strictly under [`SHARED_VOLUME`] that exist (a directory for a directory,
/// a file for a file) are kept — a mount over a missing path would create it
/// on the server's volume — and none inside another kept directory.
pub fn server_state(env: &HostEnv) -> ServerState {
    server_state_in(env, Path::new(SHARED_VOLUME))
}

/// [`server_state`] with the shared volume's path given (tests).
fn server_state_in(env: &HostEnv, shared: &Path) -> ServerState {
    let home = crate::bundle::paperclip_home(env);
    let instance = env.non_blank("PAPERCLIP_INSTANCE_ID").unwrap_or("default");
    let root = home.join("instances").join(instance);
    let config_path = env.non_blank("PAPERCLIP_CONFIG").map(PathBuf::from).unwrap_or_else(|| root.join("config.json"));
    let config: Value = std::fs::read_to_string(&config_path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null);
    let user_home = env.non_blank("HOME").unwrap_or("/paperclip");
    let resolve = |p: &str| -> PathBuf {
        match p.strip_prefix("~/") {
            Some(rest) => Path::new(user_home).join(rest),
            None if p == "~" => PathBuf::from(user_home),
            None => root.join(p),
        }
    };
    let pick = |env_key: Option<&str>, keys: &[&str], default: PathBuf| -> PathBuf {
        env_key.and_then(|k| env.non_blank(k)).or_else(|| get(&config, keys)).map(resolve).unwrap_or(default)
    };
    let dirs = [
        pick(None, &["database", "embeddedPostgresDataDir"], root.join("db")),
        pick(Some("PAPERCLIP_DB_BACKUP_DIR"), &["database", "backup", "dir"], root.join("data").join("backups")),
        pick(None, &["logging", "logDir"], root.join("logs")),
        pick(Some("PAPERCLIP_STORAGE_LOCAL_DIR"), &["storage", "localDisk", "baseDir"], root.join("data").join("storage")),
        root.join("secrets"),
    ];
    let key_file = pick(Some("PAPERCLIP_SECRETS_MASTER_KEY_FILE"), &["secrets", "localEncrypted", "keyFilePath"], root.join("secrets").join("master.key"));
    let files = [config_path.clone(), config_path.parent().map(|d| d.join(".env")).unwrap_or_default(), root.join(".env"), key_file];
    let under = |p: &Path| p.is_absolute() && p.starts_with(shared) && p != shared;
    let mut out = ServerState::default();
    let mut kept_dirs: Vec<PathBuf> = Vec::new();
    let mut sorted_dirs: Vec<PathBuf> = dirs.into_iter().filter(|d| under(d) && d.is_dir()).collect();
    // Parents first, so a directory inside a kept one is dropped.
    sorted_dirs.sort_by_key(|d| d.components().count());
    for d in sorted_dirs {
        if !kept_dirs.iter().any(|k| d.starts_with(k)) {
            kept_dirs.push(d);
        }
    }
    for f in files {
        if under(&f) && f.is_file() && !kept_dirs.iter().any(|k| f.starts_with(k)) && !out.files.contains(&f.display().to_string()) {
            out.files.push(f.display().to_string());
        }
    }
    out.dirs = kept_dirs.iter().map(|d| d.display().to_string()).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Withhold {
        Withhold::new(false, &[], false)
    }

    #[test]
    fn the_servers_secrets_are_held_back() {
        let r = rule();
        for n in [
            "PAPERCLIP_AGENT_JWT_SECRET", "BETTER_AUTH_SECRET", "DATABASE_URL", "DB_PASSWORD", "PAPERCLIP_SECRETS_MASTER_KEY",
            "PAPERCLIP_SECRETS_AWS_KMS_KEY_ID", "PAPERCLIP_RATE_LIMIT_REDIS_URL", "RESEND_API_KEY", "GOOGLE_CLIENT_SECRET",
            "APPLE_CLIENT_SECRET", "PAPERCLIP_OAUTH_CREDENTIALS", "PAPERCLIP_MANAGED_ANTHROPIC_API_KEY",
            "PAPERCLIP_MANAGED_INFERENCE_API_KEY", "GITHUB_APP_PRIVATE_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            // The chart Secret's own keys, as envFrom would name them.
            "agentJwtSecret", "masterKey",
        ] {
            assert!(r.holds_back(n), "{n}");
        }
    }

    #[test]
    fn what_agents_need_arrives() {
        let r = rule();
        for n in [
            "ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "PAPERCLIP_API_URL",
            "HOME", "DISABLE_TELEMETRY", "PAPERCLIP_MANAGED_INFERENCE_MODEL", "GITHUB_TOKEN", "OPENAI_API_KEY",
        ] {
            assert!(!r.holds_back(n), "{n}");
        }
    }

    #[test]
    fn bedrock_lets_aws_through_and_the_opt_out_lets_everything_through() {
        let r = Withhold::new(false, &[], true);
        assert!(!r.holds_back("AWS_ACCESS_KEY_ID") && !r.holds_back("AWS_REGION"));
        assert!(r.holds_back("DATABASE_URL"));
        let all = Withhold::new(true, &["X".into()], false);
        assert!(!all.holds_back("PAPERCLIP_AGENT_JWT_SECRET") && !all.holds_back("X") && !all.holds_back("AWS_SECRET_ACCESS_KEY"));
    }

    #[test]
    fn config_adds_names_and_prefixes() {
        let r = Withhold::new(false, &["MY_SERVER_TOKEN".into(), " corp-* ".into(), "".into()], false);
        assert!(r.holds_back("MY_SERVER_TOKEN"));
        assert!(r.holds_back("myServerToken"));
        assert!(r.holds_back("CORP_VAULT_ADDR"));
        assert!(!r.holds_back("CORPORATE"));
        assert!(!r.holds_back("ANTHROPIC_API_KEY"));
    }

    #[test]
    fn bedrock_is_read_from_the_first_layer_that_says() {
        let m = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>();
        assert!(selects_bedrock([&m(&[("CLAUDE_CODE_USE_BEDROCK", "1")])]));
        assert!(selects_bedrock([&m(&[]), &m(&[("ANTHROPIC_BEDROCK_BASE_URL", "https://b")])]));
        // config.env turning it off wins over the Deployment turning it on.
        assert!(!selects_bedrock([&m(&[("CLAUDE_CODE_USE_BEDROCK", "0")]), &m(&[("CLAUDE_CODE_USE_BEDROCK", "1")])]));
        assert!(!selects_bedrock([&m(&[("ANTHROPIC_BEDROCK_BASE_URL", " ")])]));
    }

    /// A real instance's layout on the shared volume (a scratch directory
    /// plays `/paperclip`).
    #[test]
    fn server_state_is_read_from_the_instance_layout() {
        let shared = std::env::temp_dir().join(format!("claude-k8s-server-state-{}", std::process::id()));
        let home = shared.join("home");
        let root = home.join("instances/default");
        for d in ["db", "secrets", "data/backups", "logs", "custom-storage"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("db/PG_VERSION"), "17").unwrap();
        std::fs::write(root.join("secrets/master.key"), "k").unwrap();
        std::fs::write(root.join(".env"), "PAPERCLIP_AGENT_JWT_SECRET=x").unwrap();
        let r = root.display().to_string();
        std::fs::write(
            root.join("config.json"),
            format!(r#"{{"storage":{{"localDisk":{{"baseDir":"{r}/custom-storage"}}}},"logging":{{"logDir":"/elsewhere/logs"}}}}"#),
        )
        .unwrap();
        let h = home.display().to_string();
        let s = server_state_in(&HostEnv::from_pairs([("PAPERCLIP_HOME", h.as_str())]), &shared);
        assert_eq!(s.dirs, [format!("{r}/db"), format!("{r}/custom-storage"), format!("{r}/secrets"), format!("{r}/data/backups")]);
        // master.key is inside the masked secrets/ directory; the logs dir named in the config is not on the volume.
        assert_eq!(s.files, [format!("{r}/config.json"), format!("{r}/.env")]);
        // A key file of its own, by env: masked as a file.
        std::fs::write(root.join("mk"), "k").unwrap();
        let k = format!("{r}/mk");
        let s = server_state_in(&HostEnv::from_pairs([("PAPERCLIP_HOME", h.as_str()), ("PAPERCLIP_SECRETS_MASTER_KEY_FILE", k.as_str())]), &shared);
        assert!(s.files.contains(&k), "{s:?}");
        let _ = std::fs::remove_dir_all(&shared);
        // Nothing there: nothing to mask.
        assert_eq!(server_state_in(&HostEnv::from_pairs([("PAPERCLIP_HOME", h.as_str())]), &shared), ServerState::default());
    }

    #[test]
    fn names_and_their_forms() {
        assert_eq!(normalize("agentJwtSecret"), "AGENT_JWT_SECRET");
        assert_eq!(normalize("db-password.v2"), "DB_PASSWORD_V2");
        assert!(looks_secret("PAPERCLIP_API_KEY") && looks_secret("ANTHROPIC_AUTH_TOKEN") && looks_secret("db_password"));
        assert!(looks_secret("GITHUB_TOKEN") && looks_secret("AWS_ACCESS_KEY_ID") && looks_secret("DATABASE_URL") && looks_secret("SSH_KEY"));
        assert!(!looks_secret("PAPERCLIP_API_URL") && !looks_secret("HOME") && !looks_secret("KEYBOARD_LAYOUT"));
        assert!(valid_env_name("A_1") && valid_env_name("my.key-x") && !valid_env_name("1A") && !valid_env_name("a=b") && !valid_env_name(""));
    }
}
