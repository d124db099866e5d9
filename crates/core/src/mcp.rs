//! MCP servers for the Claude CLI in the pod: Paperclip's runtime tools
//! (`ctx.runtimeMcp.getServers()`, host 2026.916.1) and the agent's own
//! (`adapterConfig.mcpServers`), written as one `--mcp-config` file.
//!
//! The file holds bearer tokens, so it only ever travels in the run's Secret
//! (mounted read-only into the pod): never in the Job's env or args, `onMeta`,
//! or a log line. [`RuntimeMcpServer`]'s `Debug` hides the token.
//!
//! The host builds its URLs from its own `PAPERCLIP_API_URL`, which is often
//! `http://localhost:<port>`: meaningless inside a pod. A loopback origin is
//! replaced by the pod's `PAPERCLIP_API_URL` (the Deployment's, or the host's
//! when that is reachable), path kept.

use serde_json::{Map, Value, json};

/// Where the Secret is mounted in the claude container, and the file in it.
pub const SECRET_MOUNT: &str = "/tmp/prompt-secret";
pub const CONFIG_KEY: &str = "mcp-config.json";

/// One of the host's `AdapterRuntimeMcpServer`s (an HTTP MCP endpoint).
#[derive(Clone, PartialEq, Eq)]
pub struct RuntimeMcpServer {
    pub name: String,
    pub url: String,
    pub token: String,
    pub connection_id: String,
}

impl std::fmt::Debug for RuntimeMcpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeMcpServer")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("connection_id", &self.connection_id)
            .finish()
    }
}

/// `ctx.runtimeMcpServers` (what the JS shim read from `ctx.runtimeMcp.getServers()`):
/// entries without a name or URL are dropped.
pub fn runtime_servers(ctx: &Value) -> Vec<RuntimeMcpServer> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::trim).unwrap_or_default().to_owned();
    ctx.get("runtimeMcpServers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| RuntimeMcpServer { name: s(v, "name"), url: s(v, "url"), token: s(v, "token"), connection_id: s(v, "connectionId") })
        .filter(|m| !m.name.is_empty() && !m.url.is_empty())
        .collect()
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.ends_with(".localhost")
        || h == "0.0.0.0"
        || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

/// `url` with a loopback origin moved to `pod_api_url`'s origin; any other URL as is.
pub fn reachable_url(url: &str, pod_api_url: &str) -> String {
    let (Ok(mut u), Ok(base)) = (url::Url::parse(url), url::Url::parse(pod_api_url)) else { return url.to_owned() };
    let (Some(host), Some(base_host)) = (u.host_str().map(str::to_owned), base.host_str()) else { return url.to_owned() };
    if !is_loopback(&host) || is_loopback(base_host) {
        return url.to_owned();
    }
    if u.set_scheme(base.scheme()).is_err() || u.set_host(Some(base_host)).is_err() || u.set_port(base.port()).is_err() {
        return url.to_owned();
    }
    u.to_string()
}

/// The `--mcp-config` document: the agent's servers, then the host's runtime
/// servers (a clashing name gets `-<connectionId[..8]>`, then `-2`, `-3`…, as
/// claude_local does), or `None` when there are none.
pub fn config_json(agent: &Map<String, Value>, runtime: &[RuntimeMcpServer], pod_api_url: &str) -> Option<String> {
    let mut servers = agent.clone();
    for s in runtime {
        let mut key = s.name.clone();
        if servers.contains_key(&key) {
            let suffix: String = s.connection_id.chars().take(8).collect();
            key = if suffix.is_empty() { key } else { format!("{}-{suffix}", s.name) };
            let base = key.clone();
            let mut n = 2;
            while servers.contains_key(&key) {
                key = format!("{base}-{n}");
                n += 1;
            }
        }
        let mut entry = json!({"type": "http", "url": reachable_url(&s.url, pod_api_url)});
        if !s.token.is_empty() {
            entry["headers"] = json!({"Authorization": format!("Bearer {}", s.token)});
        }
        servers.insert(key, entry);
    }
    (!servers.is_empty()).then(|| json!({"mcpServers": Value::Object(servers)}).to_string())
}

/// The CLI flags for a config written at [`SECRET_MOUNT`].
pub fn claude_flags(strict: bool) -> Vec<String> {
    let mut a = vec!["--mcp-config".to_owned(), format!("{SECRET_MOUNT}/{CONFIG_KEY}")];
    if strict {
        a.push("--strict-mcp-config".to_owned());
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, url: &str, conn: &str) -> RuntimeMcpServer {
        RuntimeMcpServer { name: name.into(), url: url.into(), token: format!("tok-{conn}"), connection_id: conn.into() }
    }

    #[test]
    fn reads_the_hosts_servers() {
        let ctx = json!({"runtimeMcpServers": [
            {"name": "Paperclip projects", "url": "http://localhost:3100/api/mcp/project-tools", "token": "jwt", "connectionId": "paperclip-project-tools"},
            {"name": "", "url": "http://x"}, {"name": "no url"}, 7
        ]});
        let got = runtime_servers(&ctx);
        assert_eq!(got, vec![server("Paperclip projects", "http://localhost:3100/api/mcp/project-tools", "paperclip-project-tools")].into_iter().map(|mut s| { s.token = "jwt".into(); s }).collect::<Vec<_>>());
        assert!(!format!("{got:?}").contains("jwt"), "Debug hides the token");
        assert!(runtime_servers(&json!({})).is_empty());
    }

    #[test]
    fn loopback_origins_move_to_the_pods_api_url() {
        let pod = "http://paperclip.paperclip.svc:3100";
        assert_eq!(reachable_url("http://localhost:3100/api/mcp/project-tools", pod), "http://paperclip.paperclip.svc:3100/api/mcp/project-tools");
        assert_eq!(reachable_url("http://127.0.0.1:9/mcp/runtime-tools?x=1", "https://pc.example.com"), "https://pc.example.com/mcp/runtime-tools?x=1");
        assert_eq!(reachable_url("http://[::1]:3100/mcp", pod), "http://paperclip.paperclip.svc:3100/mcp");
        // Reachable already, or nothing better to offer: unchanged.
        assert_eq!(reachable_url("https://pc.example.com/mcp", pod), "https://pc.example.com/mcp");
        assert_eq!(reachable_url("http://localhost:3100/mcp", "http://127.0.0.1:3100"), "http://localhost:3100/mcp");
        assert_eq!(reachable_url("not a url", pod), "not a url");
    }

    #[test]
    fn one_config_agent_servers_first_clashes_renamed() {
        let agent: Map<String, Value> = serde_json::from_str(r#"{"docs": {"type": "http", "url": "https://docs.example/mcp"}, "Paperclip projects": {"command": "x"}}"#).unwrap();
        let runtime = [
            server("Paperclip projects", "http://localhost:3100/api/mcp/project-tools", "paperclip-project-tools"),
            server("Paperclip projects", "http://localhost:3100/api/mcp/other", "paperclip-project-tools"),
            server("Paperclip connections", "http://localhost:3100/mcp/runtime-tools", "paperclip-runtime-tools"),
        ];
        let doc: Value = serde_json::from_str(&config_json(&agent, &runtime, "http://pc:3100").unwrap()).unwrap();
        let servers = doc["mcpServers"].as_object().unwrap();
        let keys: Vec<_> = servers.keys().map(String::as_str).collect();
        assert_eq!(keys, ["docs", "Paperclip projects", "Paperclip projects-papercli", "Paperclip projects-papercli-2", "Paperclip connections"]);
        assert_eq!(
            servers["Paperclip projects-papercli"],
            json!({"type": "http", "url": "http://pc:3100/api/mcp/project-tools", "headers": {"Authorization": "Bearer tok-paperclip-project-tools"}})
        );
        assert_eq!(config_json(&Map::new(), &[], "http://pc"), None);
        assert_eq!(claude_flags(true), ["--mcp-config", "/tmp/prompt-secret/mcp-config.json", "--strict-mcp-config"]);
    }
}
