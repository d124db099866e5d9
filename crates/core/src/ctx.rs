//! The host's execution context, as data: everything `execute(ctx)` receives
//! except the callbacks (those are behind [`crate::host::Host`]).
//!
//! Invariant: deserialising never fails on a field of the wrong type or an
//! unknown field — the original read every field through `asString`/`parseObject`
//! style fallbacks, and newer hosts add fields (`executionTarget`, …) that we
//! must ignore. Only the binding decides what is malformed enough to reject.


use serde_json::{Map, Value};

/// `ctx` minus callbacks. Field names are the host's (camelCase).
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    pub run_id: String,
    pub agent: Agent,
    pub runtime: Runtime,
    /// `parseObject(ctx.config)`: a non-object is `{}`.
    pub config: Map<String, Value>,
    /// `parseObject(ctx.context)`.
    pub context: Map<String, Value>,
    /// The agent's Paperclip API token; a secret — never logged.
    pub auth_token: Option<String>,
    /// The host's runtime MCP servers (tokens inside; their `Debug` hides them).
    pub runtime_mcp: Vec<crate::mcp::RuntimeMcpServer>,
}

#[derive(Debug, Clone, Default)]
pub struct Agent {
    pub id: String,
    pub company_id: String,
    pub name: String,
    pub adapter_type: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Runtime {
    pub session_id: Option<String>,
    pub session_params: Map<String, Value>,
    pub session_display_id: Option<String>,
    pub task_key: Option<String>,
}

impl RunContext {
    /// Lenient conversion from the ctx as JSON (callbacks already removed).
    /// Wrong-typed fields become their empty value, never an error.
    pub fn from_json(v: &Value) -> Self {
        let obj = as_object(v);
        let agent = as_object(obj.get("agent").unwrap_or(&Value::Null));
        let runtime = as_object(obj.get("runtime").unwrap_or(&Value::Null));
        RunContext {
            run_id: string_of(obj.get("runId")).unwrap_or_default(),
            agent: Agent {
                id: string_of(agent.get("id")).unwrap_or_default(),
                company_id: string_of(agent.get("companyId")).unwrap_or_default(),
                name: string_of(agent.get("name")).unwrap_or_default(),
                adapter_type: string_of(agent.get("adapterType")),
            },
            runtime: Runtime {
                session_id: string_of(runtime.get("sessionId")),
                session_params: as_object(runtime.get("sessionParams").unwrap_or(&Value::Null)),
                session_display_id: string_of(runtime.get("sessionDisplayId")),
                task_key: string_of(runtime.get("taskKey")),
            },
            config: as_object(obj.get("config").unwrap_or(&Value::Null)),
            context: as_object(obj.get("context").unwrap_or(&Value::Null)),
            auth_token: string_of(obj.get("authToken")),
            runtime_mcp: crate::mcp::runtime_servers(v),
        }
    }

    /// The session to resume: `runtime.sessionParams.sessionId`, else
    /// `runtime.sessionId` (contract §1.5 step 4). Empty strings count as none.
    pub fn session_id(&self) -> Option<&str> {
        match self.runtime.session_params.get("sessionId") {
            Some(Value::String(s)) if !s.is_empty() => Some(s),
            _ => self.runtime.session_id.as_deref().filter(|s| !s.is_empty()),
        }
    }

    /// The run's task: `context.taskId || context.issueId` (the original's),
    /// else the host's own `runtime.taskKey`, as a non-empty string.
    ///
    /// Why the fallback: the host gives timer wakes the key `__heartbeat__`
    /// and on-demand wakes the caller's `taskKey`, with no task or issue id.
    /// Without a task on both sides the guard can only block an orphan
    /// (`k8s_orphan_task_unknown`), so after a host restart such heartbeats
    /// could never reattach to the Job their previous run left running.
    pub fn task_id(&self) -> Option<&str> {
        let from_context = ["taskId", "issueId"].iter().find_map(|k| match self.context.get(*k) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        });
        from_context.or_else(|| self.runtime.task_key.as_deref().filter(|k| !k.is_empty()))
    }
}

/// `parseObject`: a plain object, else `{}`.
pub fn as_object(v: &Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    }
}

fn string_of(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}






#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrong_types_become_empty_not_errors() {
        let c = RunContext::from_json(&json!({
            "runId": 7, "agent": "x", "runtime": {"sessionId": ""}, "config": [1], "context": null,
            "executionTarget": {"kind": "local"}
        }));
        assert_eq!(c.run_id, "");
        assert_eq!(c.agent.id, "");
        assert!(c.config.is_empty());
        assert_eq!(c.session_id(), None);
    }

    #[test]
    fn session_params_win_over_session_id() {
        let c = RunContext::from_json(&json!({
            "runtime": {"sessionId": "old", "sessionParams": {"sessionId": "new"}},
            "context": {"taskId": "", "issueId": "iss-1"}
        }));
        assert_eq!(c.session_id(), Some("new"));
        assert_eq!(c.task_id(), Some("iss-1"));
    }

    #[test]
    fn the_hosts_task_key_is_the_task_when_the_context_has_none() {
        let c = RunContext::from_json(&json!({"runtime": {"taskKey": "__heartbeat__"}, "context": {"taskId": ""}}));
        assert_eq!(c.task_id(), Some("__heartbeat__"));
        let c = RunContext::from_json(&json!({"runtime": {"taskKey": "k"}, "context": {"issueId": "iss-2"}}));
        assert_eq!(c.task_id(), Some("iss-2"));
        let c = RunContext::from_json(&json!({"runtime": {"taskKey": ""}}));
        assert_eq!(c.task_id(), None);
    }
}
