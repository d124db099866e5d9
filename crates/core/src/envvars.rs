//! The `claude` container's env (`buildEnvVars`, contract §1.7), in the
//! original's precedence and order:
//!
//! 1. the Deployment container's literal env,
//! 2. the `PAPERCLIP_*` variables of the run (`PAPERCLIP_API_URL` taken from
//!    the Deployment when it sets one: buildPaperclipEnv's localhost default
//!    is wrong inside a Job pod),
//! 3. `config.env` (wins over everything),
//! 4. `HOME=/paperclip`, forced last (sessions live on the PVC),
//!
//! then the Deployment's `valueFrom` entries unless a literal has the same name.
//!
//! What is inherited from the Deployment (its literals and `valueFrom`
//! entries) first goes through [`Withhold`]: the server's own secrets stay
//! with the server. `config.env` is never filtered.
//! Order follows JS object semantics: a key keeps the position where it first
//! appeared, later layers only replace its value.

use k8s_openapi::api::core::v1::EnvVar;
use serde_json::Value;

use crate::config::{AdapterConfig, HostEnv};
use crate::ctx::RunContext;
use crate::selfpod::SelfPod;
use crate::withhold::Withhold;

/// An insertion-ordered string map with JS-object assignment semantics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OrderedEnv(Vec<(String, String)>);

impl OrderedEnv {
    pub fn set(&mut self, k: &str, v: impl Into<String>) {
        let v = v.into();
        match self.0.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v,
            None => self.0.push((k.to_owned(), v)),
        }
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn ctx_str<'a>(m: &'a serde_json::Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

/// Layer 2: the run's `PAPERCLIP_*` variables.
pub fn paperclip_env(rc: &RunContext, env: &HostEnv, self_pod: Option<&SelfPod>) -> OrderedEnv {
    let mut e = OrderedEnv::default();
    e.set("PAPERCLIP_AGENT_ID", rc.agent.id.clone());
    e.set("PAPERCLIP_COMPANY_ID", rc.agent.company_id.clone());
    e.set("PAPERCLIP_API_URL", env.paperclip_api_url_or_default());
    e.set("PAPERCLIP_RUN_ID", rc.run_id.clone());
    let c = &rc.context;
    let mut set_if = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            e.set(k, v);
        }
    };
    // `??` picks the first non-null value, even if it turns out blank.
    let first = |a: &str, b: &str| match c.get(a) {
        Some(Value::Null) | None => c.get(b),
        v => v,
    };
    let as_trimmed = |v: Option<&Value>| v.and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let task = as_trimmed(first("taskId", "issueId"));
    let comment = as_trimmed(first("wakeCommentId", "commentId"));
    set_if("PAPERCLIP_TASK_ID", task.as_deref());
    set_if("PAPERCLIP_WAKE_REASON", ctx_str(c, "wakeReason"));
    set_if("PAPERCLIP_WAKE_COMMENT_ID", comment.as_deref());
    set_if("PAPERCLIP_APPROVAL_ID", ctx_str(c, "approvalId"));
    set_if("PAPERCLIP_APPROVAL_STATUS", ctx_str(c, "approvalStatus"));
    if let Some(w @ Value::Object(m)) = c.get("paperclipWake") && !m.is_empty() {
        e.set("PAPERCLIP_WAKE_PAYLOAD_JSON", w.to_string());
    }
    let ws = crate::ctx::as_object(c.get("paperclipWorkspace").unwrap_or(&Value::Null));
    for (k, field) in [
        ("PAPERCLIP_WORKSPACE_CWD", "cwd"),
        ("PAPERCLIP_WORKSPACE_SOURCE", "source"),
        ("PAPERCLIP_WORKSPACE_STRATEGY", "strategy"),
        ("PAPERCLIP_WORKSPACE_ID", "workspaceId"),
        ("PAPERCLIP_WORKSPACE_REPO_URL", "repoUrl"),
        ("PAPERCLIP_WORKSPACE_REPO_REF", "repoRef"),
        ("PAPERCLIP_WORKSPACE_BRANCH", "branchName"),
        ("PAPERCLIP_WORKSPACE_WORKTREE_PATH", "worktreePath"),
        ("AGENT_HOME", "agentHome"),
    ] {
        if let Some(v) = ctx_str(&ws, field) {
            e.set(k, v);
        }
    }
    if let Some(Value::Array(ids)) = c.get("issueIds") {
        let ids: Vec<&str> = ids.iter().filter_map(Value::as_str).filter(|s| !s.trim().is_empty()).collect();
        if !ids.is_empty() {
            e.set("PAPERCLIP_LINKED_ISSUE_IDS", ids.join(","));
        }
    }
    for (k, field) in [
        ("PAPERCLIP_WORKSPACES_JSON", "paperclipWorkspaces"),
        ("PAPERCLIP_RUNTIME_SERVICE_INTENTS_JSON", "paperclipRuntimeServiceIntents"),
        ("PAPERCLIP_RUNTIME_SERVICES_JSON", "paperclipRuntimeServices"),
    ] {
        if let Some(v @ Value::Array(a)) = c.get(field) && !a.is_empty() {
            e.set(k, v.to_string());
        }
    }
    if let Some(v) = ctx_str(c, "paperclipRuntimePrimaryUrl") {
        e.set("PAPERCLIP_RUNTIME_PRIMARY_URL", v);
    }
    if let Some(token) = rc.auth_token.as_deref().filter(|t| !t.is_empty()) {
        e.set("PAPERCLIP_API_KEY", token);
    }
    if let Some(url) = self_pod.and_then(|p| p.inherited_env.iter().find(|(k, _)| k == "PAPERCLIP_API_URL")) {
        e.set("PAPERCLIP_API_URL", url.1.clone());
    }
    e
}

/// The container's env list, and the inherited names held back (in order, once each).
pub fn build_env(
    rc: &RunContext,
    cfg: &AdapterConfig,
    env: &HostEnv,
    self_pod: Option<&SelfPod>,
    withhold: &Withhold,
) -> (Vec<EnvVar>, Vec<String>) {
    let mut held_back: Vec<String> = Vec::new();
    let mut hold = |name: &str| {
        let h = withhold.holds_back(name);
        if h && !held_back.iter().any(|n| n == name) {
            held_back.push(name.to_owned());
        }
        h
    };
    let mut merged = OrderedEnv::default();
    for (k, v) in self_pod.map(|p| p.inherited_env.as_slice()).unwrap_or_default() {
        if !hold(k) {
            merged.set(k, v.clone());
        }
    }
    for (k, v) in paperclip_env(rc, env, self_pod).iter() {
        merged.set(k, v);
    }
    for (k, v) in &cfg.env {
        merged.set(k, v.clone());
    }
    merged.set("HOME", "/paperclip");
    let mut out: Vec<EnvVar> =
        merged.iter().map(|(k, v)| EnvVar { name: k.to_owned(), value: Some(v.to_owned()), value_from: None }).collect();
    for vf in self_pod.map(|p| p.inherited_env_value_from.as_slice()).unwrap_or_default() {
        if merged.get(&vf.name).is_none() && !hold(&vf.name) {
            out.push(vf.clone());
        }
    }
    (out, held_back)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(env: &[EnvVar]) -> Vec<&str> {
        env.iter().map(|e| e.name.as_str()).collect()
    }

    fn val<'a>(env: &'a [EnvVar], k: &str) -> Option<&'a str> {
        env.iter().find(|e| e.name == k).and_then(|e| e.value.as_deref())
    }

    #[test]
    fn precedence_and_order() {
        let rc = RunContext::from_json(&json!({
            "runId": "r1", "authToken": "tok",
            "agent": {"id": "a1", "companyId": "c1"},
            "context": {"taskId": " t1 ", "wakeReason": "", "commentId": "cm", "issueIds": ["i1", "", "i2"],
                        "paperclipWake": {"reason": "x"}, "paperclipWorkspace": {"cwd": "/w", "branchName": "b"},
                        "paperclipWorkspaces": [], "paperclipRuntimeServices": [{"id": 1}]}
        }));
        let mut cfg = AdapterConfig::from_map(&serde_json::Map::new()).unwrap();
        cfg.env.insert("A".into(), "from-config".into());
        cfg.env.insert("HOME".into(), "/ignored".into());
        let pod = SelfPod {
            inherited_env: vec![
                ("A".into(), "from-pod".into()),
                ("PAPERCLIP_API_URL".into(), "http://paperclip.svc:3100".into()),
                ("Z".into(), "z".into()),
            ],
            inherited_env_value_from: vec![
                EnvVar { name: "Z".into(), value: None, value_from: Some(Default::default()) },
                EnvVar { name: "KEY".into(), value: None, value_from: Some(Default::default()) },
            ],
            ..Default::default()
        };
        let (env, held) = build_env(&rc, &cfg, &HostEnv::from_pairs([("PORT", "9")]), Some(&pod), &Withhold::default());
        assert!(held.is_empty());
        assert_eq!(
            names(&env),
            [
                "A", "PAPERCLIP_API_URL", "Z", "PAPERCLIP_AGENT_ID", "PAPERCLIP_COMPANY_ID", "PAPERCLIP_RUN_ID",
                "PAPERCLIP_TASK_ID", "PAPERCLIP_WAKE_COMMENT_ID", "PAPERCLIP_WAKE_PAYLOAD_JSON",
                "PAPERCLIP_WORKSPACE_CWD", "PAPERCLIP_WORKSPACE_BRANCH", "PAPERCLIP_LINKED_ISSUE_IDS",
                "PAPERCLIP_RUNTIME_SERVICES_JSON", "PAPERCLIP_API_KEY", "HOME", "KEY"
            ]
        );
        assert_eq!(val(&env, "A"), Some("from-config"));
        assert_eq!(val(&env, "PAPERCLIP_API_URL"), Some("http://paperclip.svc:3100"));
        assert_eq!(val(&env, "PAPERCLIP_TASK_ID"), Some("t1"));
        assert_eq!(val(&env, "PAPERCLIP_LINKED_ISSUE_IDS"), Some("i1,i2"));
        assert_eq!(val(&env, "PAPERCLIP_API_KEY"), Some("tok"));
        assert_eq!(val(&env, "HOME"), Some("/paperclip"));
        assert_eq!(env.last().unwrap().name, "KEY");
        assert!(env.last().unwrap().value_from.is_some());
    }

    /// The host's JSON goes on as the host wrote it: key order kept from the
    /// ctx string (serde_json's `preserve_order`), as 0.1.54's JSON.stringify did.
    #[test]
    fn wake_payload_keeps_the_hosts_key_order() {
        let ctx: Value = serde_json::from_str(
            r#"{"runId":"r","agent":{"id":"a"},"context":{"paperclipWake":{"reason":"comment_added","comments":[{"id":"c1","body":"hi"}],"at":1}}}"#,
        )
        .unwrap();
        let rc = RunContext::from_json(&ctx);
        let cfg = AdapterConfig::from_map(&serde_json::Map::new()).unwrap();
        let (env, _) = build_env(&rc, &cfg, &HostEnv::from_pairs([]), None, &Withhold::default());
        assert_eq!(
            val(&env, "PAPERCLIP_WAKE_PAYLOAD_JSON"),
            Some(r#"{"reason":"comment_added","comments":[{"id":"c1","body":"hi"}],"at":1}"#)
        );
    }

    /// The Deployment's server secrets (literal or `valueFrom`) stay behind;
    /// provider keys, `PAPERCLIP_API_URL` and `config.env` arrive.
    #[test]
    fn server_secrets_are_held_back_and_named() {
        let rc = RunContext::from_json(&json!({"runId": "r", "agent": {"id": "a"}}));
        let mut cfg = AdapterConfig::from_map(&serde_json::Map::new()).unwrap();
        cfg.env.insert("DATABASE_URL".into(), "the user's own choice".into());
        let vf = |n: &str| EnvVar { name: n.into(), value: None, value_from: Some(Default::default()) };
        let pod = SelfPod {
            inherited_env: vec![
                ("ANTHROPIC_API_KEY".into(), "sk-ant".into()),
                ("BETTER_AUTH_SECRET".into(), "bas".into()),
                ("PAPERCLIP_API_URL".into(), "http://pc:3100".into()),
                ("AWS_ACCESS_KEY_ID".into(), "AKIA".into()),
            ],
            inherited_env_value_from: vec![vf("PAPERCLIP_AGENT_JWT_SECRET"), vf("CLAUDE_CODE_OAUTH_TOKEN"), vf("DB_PASSWORD")],
            ..Default::default()
        };
        let (env, held) = build_env(&rc, &cfg, &HostEnv::default(), Some(&pod), &Withhold::new(false, &[], false));
        assert_eq!(held, ["BETTER_AUTH_SECRET", "AWS_ACCESS_KEY_ID", "PAPERCLIP_AGENT_JWT_SECRET", "DB_PASSWORD"]);
        let got = names(&env);
        for n in ["ANTHROPIC_API_KEY", "PAPERCLIP_API_URL", "CLAUDE_CODE_OAUTH_TOKEN", "DATABASE_URL"] {
            assert!(got.contains(&n), "{n} missing: {got:?}");
        }
        for n in &held {
            assert!(!got.contains(&n.as_str()), "{n} arrived");
        }
        assert_eq!(val(&env, "DATABASE_URL"), Some("the user's own choice"));
        // The opt-out: everything, as 0.1.54.
        let (env, held) = build_env(&rc, &cfg, &HostEnv::default(), Some(&pod), &Withhold::new(true, &[], false));
        assert!(held.is_empty());
        assert_eq!(env.len(), got.len() + 4);
    }

    #[test]
    fn off_cluster_uses_the_host_url() {
        let rc = RunContext::from_json(&json!({"runId": "r", "agent": {"id": "a"}}));
        let cfg = AdapterConfig::from_map(&serde_json::Map::new()).unwrap();
        let (env, _) = build_env(&rc, &cfg, &HostEnv::from_pairs([("PAPERCLIP_API_URL", "http://h:1")]), None, &Withhold::default());
        assert_eq!(val(&env, "PAPERCLIP_API_URL"), Some("http://h:1"));
        assert_eq!(val(&env, "PAPERCLIP_API_KEY"), None);
    }
}
