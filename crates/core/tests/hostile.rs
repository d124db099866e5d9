//! Hostile input for every stage that reads what a user or a pod sends:
//! config parsing, template rendering, Job building, stream-json parsing, the
//! dedup filter and log-line reassembly. Property tests (proptest: no nightly
//! toolchain here for cargo-fuzz) with a fixed case budget, so CI runs them on
//! every push. Beyond "never panics", each states what must hold.
//!
//! The budget is `PROPTEST_CASES` (default 256 per property).

use claude_k8s_core::config::{AdapterConfig, HostEnv};
use claude_k8s_core::ctx::RunContext;
use claude_k8s_core::dedup::LineDedup;
use claude_k8s_core::job::{JobInput, build_job};
use claude_k8s_core::lines::LineAssembler;
use claude_k8s_core::prompt::render_template;
use claude_k8s_core::transcript::TranscriptParser;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Any JSON value, nested a few levels, with the strings users really send:
/// empty, unicode, quotes, `{{`, shell metacharacters, NULs.
fn any_json() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        any::<String>(),
        Just(String::new()),
        Just("{{ agent.name }}".to_owned()),
        Just("'; rm -rf / #\"$(x)`y`\\".to_owned()),
        Just("a\u{0}b".to_owned()),
        "[a-z]{1,8}".prop_map(|s| s),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        text.prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A config map whose keys are the adapter's real ones, with any values.
fn any_config() -> impl Strategy<Value = Map<String, Value>> {
    const KEYS: &[&str] = &[
        "image", "namespace", "model", "effort", "maxTurnsPerRun", "timeoutSec", "graceSec", "env", "labels",
        "annotations", "nodeSelector", "tolerations", "resources", "extraArgs", "promptTemplate",
        "bootstrapPromptTemplate", "serviceAccountName", "imagePullPolicy", "imagePullSecrets", "retainJobs",
        "ttlSecondsAfterFinished", "dangerouslySkipPermissions", "kubeconfig", "reattachOrphanedJobs", "cwd",
    ];
    prop::collection::vec((prop::sample::select(KEYS), any_json()), 0..12)
        .prop_map(|kv| kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn ctx_with(config: Map<String, Value>, agent_id: String, context: Value) -> RunContext {
    RunContext::from_json(&json!({
        "runId": "run-1",
        "agent": {"id": agent_id, "companyId": "co", "name": "Agent"},
        "runtime": {},
        "config": Value::Object(config),
        "context": context,
    }))
}

proptest! {
    /// Config: any values under the real keys give a config or a clear error.
    #[test]
    fn config_parsing_never_panics(config in any_config()) {
        if let Err(e) = AdapterConfig::from_map(&config) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// Templates: any template over any data renders; text without `{{` is kept as is.
    #[test]
    fn template_rendering_is_total(template in any::<String>(), data in any_json()) {
        let out = render_template(&template, &data);
        if !template.contains("{{") {
            prop_assert_eq!(out, template);
        }
    }

    /// Job building: any config, agent id and context give a Job whose name
    /// and labels are valid for Kubernetes — or a clear error, never a panic.
    #[test]
    fn job_building_gives_valid_names_or_an_error(config in any_config(), agent_id in any::<String>(), context in any_json()) {
        let rc = ctx_with(config, agent_id, context);
        let Ok(cfg) = AdapterConfig::from_ctx(&rc) else { return Ok(()) };
        let env = HostEnv::from_pairs([]);
        let input = JobInput { ctx: &rc, config: &cfg, self_pod: None, bundle: None, env: &env, namespace: "ns", instructions: None, sources: None };
        match build_job(&input) {
            Ok(plan) => {
                let name = plan.job.metadata.name.clone().unwrap_or_default();
                prop_assert!(!name.is_empty() && name.len() <= 63, "job name {name:?}");
                prop_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "job name {name:?}");
                for (k, v) in plan.job.metadata.labels.iter().flatten() {
                    prop_assert!(v.len() <= 63, "label {k}={v:?}");
                    prop_assert!(v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "label {k}={v:?}");
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// Reassembly: however the bytes are cut into chunks, the lines are the
    /// input's lines, byte for byte, in order (a clean end flushes the last).
    #[test]
    fn reassembly_is_independent_of_chunking(lines in prop::collection::vec(prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40), 0..30), cuts in prop::collection::vec(1usize..17, 1..40), trailing_newline in any::<bool>()) {
        let mut stream = lines.join(&b'\n');
        if trailing_newline && !lines.is_empty() {
            stream.push(b'\n');
        }
        let mut asm = LineAssembler::new();
        let mut got = Vec::new();
        let mut rest = &stream[..];
        let mut i = 0;
        while !rest.is_empty() {
            let n = cuts[i % cuts.len()].min(rest.len());
            got.extend(asm.push(&rest[..n]).into_iter().map(|l| l.bytes));
            rest = &rest[n..];
            i += 1;
        }
        got.extend(asm.finish().map(|l| l.bytes));
        // What a reader of the whole stream sees: split on '\n', no empty
        // tail; "\r\n" is a line end too, so a line's trailing CR goes.
        let mut want: Vec<Vec<u8>> = stream.split(|b| *b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec()).collect();
        if stream.ends_with(b"\n") || stream.is_empty() {
            want.pop();
        }
        // Lines without a timestamp keep all their bytes; with one, the
        // timestamp is split off — generated lines here rarely parse as one.
        prop_assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            prop_assert!(w.ends_with(g), "{g:?} is not the tail of {w:?}");
        }
    }

    /// stream-json: any bytes, any line shapes, never a panic; the result
    /// line that follows garbage is still found.
    #[test]
    fn transcript_parsing_survives_garbage(garbage in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..20), json_lines in prop::collection::vec(any_json(), 0..10)) {
        let mut p = TranscriptParser::new("claude-sonnet-4-6");
        for g in &garbage {
            p.feed(g);
        }
        for v in &json_lines {
            p.feed(v.to_string().as_bytes());
        }
        p.feed(br#"{"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"s-1","total_cost_usd":0.25,"usage":{"input_tokens":1,"output_tokens":2}}"#);
        let t = p.finish();
        let result = t.result_json.expect("the result line is found after garbage");
        prop_assert_eq!(result.get("result"), Some(&json!("ok")));
    }

    /// Dedup: a line is dropped only if the same bytes were admitted just before
    /// (within the window); distinct lines always pass.
    #[test]
    fn dedup_drops_only_repeats(lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..30), 0..60)) {
        let mut d = LineDedup::new();
        let mut seen = std::collections::HashSet::new();
        for l in &lines {
            let admitted = d.admit(l);
            if !admitted {
                prop_assert!(seen.contains(l), "dropped a line never seen: {l:?}");
            }
            seen.insert(l.clone());
        }
    }

    /// The fast path (typed, borrowed reads of assistant and ignored lines)
    /// gives exactly the general path's transcript, whatever the line shapes:
    /// real-looking assistant lines with any values in every field.
    #[test]
    fn fast_path_agrees_with_the_general_path(lines in prop::collection::vec(assistant_like(), 0..12)) {
        let mut fast = TranscriptParser::new("claude-sonnet-4-6");
        let mut slow = TranscriptParser::reference("claude-sonnet-4-6");
        for l in &lines {
            fast.feed(l.as_bytes());
            slow.feed(l.as_bytes());
        }
        prop_assert_eq!(fast.finish(), slow.finish());
    }
}

/// Lines shaped like stream-json (assistant, user, system, result, other),
/// with any value where a field is expected.
fn assistant_like() -> impl Strategy<Value = String> {
    let field = prop_oneof![any_json(), Just(Value::Null), Just(json!("text")), Just(json!("  hello  ")), Just(json!(0)), Just(json!(12))];
    let typ = prop_oneof![Just(json!("assistant")), Just(json!("user")), Just(json!("system")), Just(json!("result")), Just(json!("")), Just(json!(7)), any_json()];
    let block = (prop_oneof![Just(json!("text")), Just(json!("tool_use")), field.clone()], field.clone()).prop_map(|(t, x)| json!({"type": t, "text": x}));
    let blocks = prop_oneof![prop::collection::vec(block, 0..4).prop_map(Value::Array), field.clone()];
    (typ, field.clone(), field.clone(), blocks, field.clone(), field.clone(), field, any::<bool>()).prop_map(|(typ, sid, id, content, out, stop, usage, dup)| {
        let mut line = json!({"type": typ, "session_id": sid, "message": {"id": id, "content": content, "usage": {"output_tokens": out}, "stop_reason": stop}, "output_tokens": usage}).to_string();
        if dup {
            // A duplicate key: the typed read refuses it, the general path keeps the last.
            line = line.replacen('{', "{\"type\":\"assistant\",", 1);
        }
        line
    })
}
