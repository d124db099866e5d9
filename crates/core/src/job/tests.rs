//! Field-by-field tests of the Job (contract §1.7) and the fixes over 0.1.54.

use super::*;
use serde_json::{Map, json};

fn ctx(extra: Value) -> RunContext {
    let mut base = json!({
        "runId": "run-test-001",
        "agent": {"id": "agent-abc", "companyId": "co1", "name": "Test Agent", "adapterType": "claude_k8s"},
        "runtime": {"sessionId": null, "sessionParams": null},
        "config": {}, "context": {}
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
    RunContext::from_json(&base)
}

fn self_pod() -> SelfPod {
    SelfPod {
        name: "paperclip-0".into(),
        namespace: "pc".into(),
        image: "paperclip:1".into(),
        pvc_claim_name: Some("paperclip-data".into()),
        inherited_env: vec![("ANTHROPIC_API_KEY".into(), "sk-secret".into())],
        ..Default::default()
    }
}

fn build(rc: &RunContext, pod: Option<&SelfPod>, bundle: Option<&PromptBundle>) -> Result<JobPlan, JobError> {
    let cfg = AdapterConfig::from_ctx(rc).unwrap();
    let env = HostEnv::default();
    let ns = cfg.namespace.clone().or_else(|| pod.map(|p| p.namespace.clone())).unwrap_or_else(|| "default".into());
    build_job(&JobInput { ctx: rc, config: &cfg, self_pod: pod, bundle, env: &env, namespace: &ns, instructions: None, sources: None })
}

fn json_of(plan: &JobPlan) -> Value {
    serde_json::to_value(&plan.job).unwrap()
}

#[test]
fn metadata_spec_and_labels() {
    let rc = ctx(json!({"context": {"taskId": "task/1", "issueId": "x"}, "runtime": {"sessionId": "sess_1"},
        "config": {"timeoutSec": 600, "labels": "team=ai\npaperclip.io/agent-id=evil\napp.kubernetes.io/name=x\nbad key=v"}}));
    let plan = build(&rc, Some(&self_pod()), None).unwrap();
    let j = json_of(&plan);
    assert!(plan.job_name.starts_with("ac-agent-abc-run-test-001-"));
    let labels = json!({
        "app.kubernetes.io/managed-by": "paperclip", "app.kubernetes.io/component": "agent-job",
        "paperclip.io/agent-id": "agent-abc", "paperclip.io/adapter-type": "claude_k8s",
        "paperclip.io/run-id": "run-test-001", "paperclip.io/company-id": "co1",
        "paperclip.io/task-id": "task1", "paperclip.io/session-id": "sess_1", "team": "ai"
    });
    assert_eq!(j["metadata"]["labels"], labels);
    assert_eq!(j["spec"]["template"]["metadata"]["labels"], labels);
    assert_eq!(j["metadata"]["namespace"], "pc");
    assert_eq!(j["metadata"]["annotations"], json!({"paperclip.io/adapter-type": "claude_k8s", "paperclip.io/agent-name": "Test Agent"}));
    assert_eq!(j["spec"]["backoffLimit"], 0);
    assert_eq!(j["spec"]["activeDeadlineSeconds"], 600);
    assert_eq!(j["spec"]["ttlSecondsAfterFinished"], 300);
    let mut skipped = plan.skipped_labels.clone();
    skipped.sort();
    assert_eq!(skipped, vec!["app.kubernetes.io/name", "bad key", "paperclip.io/agent-id"]);
}

#[test]
fn no_deadline_without_timeout() {
    let plan = build(&ctx(json!({})), Some(&self_pod()), None).unwrap();
    assert!(json_of(&plan)["spec"].get("activeDeadlineSeconds").is_none());
}

#[test]
fn pod_spec_and_containers() {
    let rc = ctx(json!({"config": {"serviceAccountName": "agent-sa", "nodeSelector": "pool=ai",
        "tolerations": "[{\"key\":\"gpu\",\"operator\":\"Exists\"}]", "imagePullPolicy": "Always",
        "resources": {"limits": {"memory": "16Gi"}}}}));
    let mut pod = self_pod();
    pod.image_pull_secrets = vec![k8s_openapi::api::core::v1::LocalObjectReference { name: "regcred".into() }];
    let plan = build(&rc, Some(&pod), None).unwrap();
    let j = json_of(&plan);
    let spec = &j["spec"]["template"]["spec"];
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(spec["serviceAccountName"], "agent-sa");
    assert_eq!(
        spec["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000, "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(spec["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert_eq!(spec["nodeSelector"], json!({"pool": "ai"}));
    assert_eq!(spec["tolerations"], json!([{"key": "gpu", "operator": "Exists"}]));
    let c = &spec["containers"][0];
    assert_eq!(c["name"], "claude");
    assert_eq!(c["image"], "paperclip:1");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["workingDir"], "/paperclip");
    assert_eq!(
        c["securityContext"],
        json!({"capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": false, "runAsNonRoot": true, "runAsUser": 1000, "allowPrivilegeEscalation": false})
    );
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "1000m", "memory": "2Gi"}, "limits": {"cpu": "4000m", "memory": "16Gi"}})
    );
    assert_eq!(
        c["command"],
        json!(["sh", "-c", "cat /tmp/prompt/prompt.txt | claude '--print' '-' '--output-format' 'stream-json' '--verbose' '--dangerously-skip-permissions'"])
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "prompt", "mountPath": "/tmp/prompt"}, {"name": "data", "mountPath": "/paperclip"}])
    );
    assert_eq!(
        spec["volumes"],
        json!([{"name": "prompt", "emptyDir": {}},
               {"name": "prompt-secret", "secret": {"secretName": format!("{}-prompt", plan.job_name), "optional": false,
                                                    "items": [{"key": "prompt.txt", "path": "prompt.txt"}]}},
               {"name": "data", "persistentVolumeClaim": {"claimName": "paperclip-data"}}])
    );
    // A configured ServiceAccount keeps its own automount setting.
    assert!(spec.get("automountServiceAccountToken").is_none());
    let init = &spec["initContainers"][0];
    assert_eq!(init["name"], "write-prompt");
    assert_eq!(init["image"], "busybox:1.36");
    assert_eq!(init["command"], json!(["sh", "-c", "cp /tmp/prompt-secret/prompt.txt /tmp/prompt/prompt.txt"]));
    assert!(init.get("env").is_none());
    assert_eq!(init["resources"], json!({"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}));
}

#[test]
fn claude_args_in_order() {
    let rc = ctx(json!({"runtime": {"sessionId": "s1"}, "config": {"model": "claude-sonnet-4-6", "effort": "high",
        "maxTurnsPerRun": 5, "instructionsFilePath": "/x/AGENTS.md", "extraArgs": ["--foo", "it's"]}}));
    let plan = build(&rc, Some(&self_pod()), None).unwrap();
    assert_eq!(
        plan.claude_args,
        ["--print", "-", "--output-format", "stream-json", "--verbose", "--resume", "s1", "--dangerously-skip-permissions",
         "--model", "claude-sonnet-4-6", "--effort", "high", "--max-turns", "5", "--foo", "it's"]
    );
    // Without a session: the instructions file; with a bundle: its file and --add-dir.
    let rc = ctx(json!({"config": {"instructionsFilePath": "/x/AGENTS.md", "dangerouslySkipPermissions": false}}));
    let bundle = PromptBundle {
        bundle_key: "k".into(),
        root_dir: "/paperclip/b".into(),
        add_dir: "/paperclip/b".into(),
        instructions_file_path: Some("/paperclip/b/agent-instructions.md".into()),
    };
    let plan = build(&rc, Some(&self_pod()), Some(&bundle)).unwrap();
    assert_eq!(
        plan.claude_args,
        ["--print", "-", "--output-format", "stream-json", "--verbose", "--append-system-prompt-file",
         "/paperclip/b/agent-instructions.md", "--add-dir", "/paperclip/b"]
    );
    let plan = build(&rc, Some(&self_pod()), None).unwrap();
    assert_eq!(plan.claude_args[5..], ["--append-system-prompt-file", "/x/AGENTS.md"]);
    let cmd = json_of(&plan)["spec"]["template"]["spec"]["containers"][0]["command"][2].as_str().unwrap().to_owned();
    assert!(cmd.ends_with("'--append-system-prompt-file' '/x/AGENTS.md'"), "{cmd}");
}

#[test]
fn working_dir_precedence() {
    let plan = build(&ctx(json!({"config": {"cwd": "/c"}, "context": {"paperclipWorkspace": {"cwd": "/w"}}})), Some(&self_pod()), None).unwrap();
    assert_eq!(json_of(&plan)["spec"]["template"]["spec"]["containers"][0]["workingDir"], "/w");
    let plan = build(&ctx(json!({"config": {"cwd": "/c"}})), Some(&self_pod()), None).unwrap();
    assert_eq!(json_of(&plan)["spec"]["template"]["spec"]["containers"][0]["workingDir"], "/c");
}

/// Issue 21: the prompt, the run's token, the wake payload and secret-named
/// values are in the run's Secret; the Job spec has none of them.
#[test]
fn the_prompt_and_the_token_travel_in_the_runs_secret() {
    let rc = ctx(json!({
        "authToken": "agent-jwt-TOKEN",
        "context": {"paperclipWake": {"reason": "comment_added", "comments": [{"body": "PROMPT-COMMENT-TEXT"}]}},
        "config": {"promptTemplate": "PROMPT-TEMPLATE-TEXT", "env": {"GITHUB_TOKEN": "ghp-CONFIG", "PLAIN": "visible"}}
    }));
    let plan = build(&rc, Some(&self_pod()), None).unwrap();
    let spec = json_of(&plan).to_string();
    for needle in ["agent-jwt-TOKEN", "PROMPT-COMMENT-TEXT", "PROMPT-TEMPLATE-TEXT", "ghp-CONFIG", "sk-secret"] {
        assert!(!spec.contains(needle), "{needle} in the Job spec: {spec}");
    }
    assert!(plan.prompt.contains("PROMPT-TEMPLATE-TEXT"));
    let secret = plan.prompt_secret.as_ref().expect("the run's Secret");
    let name = format!("{}-prompt", plan.job_name);
    assert_eq!(secret.metadata.name.as_deref(), Some(name.as_str()));
    assert_eq!(secret.metadata.labels.as_ref().unwrap()["paperclip.io/run-id"], "run-test-001");
    let data = secret.string_data.as_ref().unwrap();
    assert_eq!(data["prompt.txt"], plan.prompt);
    assert_eq!(data["PAPERCLIP_API_KEY"], "agent-jwt-TOKEN");
    assert_eq!(data["GITHUB_TOKEN"], "ghp-CONFIG");
    assert_eq!(data["ANTHROPIC_API_KEY"], "sk-secret");
    assert!(data["PAPERCLIP_WAKE_PAYLOAD_JSON"].contains("PROMPT-COMMENT-TEXT"));
    // The container sees the same names, through secretKeyRef.
    let j = json_of(&plan);
    let env = j["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap().clone();
    let by_name = |n: &str| env.iter().find(|e| e["name"] == n).cloned().unwrap_or_else(|| panic!("{n} missing"));
    for n in ["PAPERCLIP_API_KEY", "GITHUB_TOKEN", "ANTHROPIC_API_KEY", "PAPERCLIP_WAKE_PAYLOAD_JSON"] {
        assert_eq!(by_name(n), json!({"name": n, "valueFrom": {"secretKeyRef": {"name": name, "key": n}}}));
    }
    assert_eq!(by_name("PLAIN"), json!({"name": "PLAIN", "value": "visible"}));
    assert_eq!(by_name("HOME"), json!({"name": "HOME", "value": "/paperclip"}));
    // The env values are not projected into the mounted files.
    let vol = j["spec"]["template"]["spec"]["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "prompt-secret").unwrap().clone();
    assert_eq!(vol["secret"]["items"], json!([{"key": "prompt.txt", "path": "prompt.txt"}]));
    // No ServiceAccount configured: no token in the pod.
    assert_eq!(j["spec"]["template"]["spec"]["automountServiceAccountToken"], false);
    let asked = build(&ctx(json!({"config": {"automountServiceAccountToken": true}})), Some(&self_pod()), None).unwrap();
    assert_eq!(json_of(&asked)["spec"]["template"]["spec"]["automountServiceAccountToken"], true);
    let refused = build(&ctx(json!({"config": {"serviceAccountName": "sa", "automountServiceAccountToken": false}})), Some(&self_pod()), None).unwrap();
    assert_eq!(json_of(&refused)["spec"]["template"]["spec"]["automountServiceAccountToken"], false);
}

#[test]
fn a_secret_too_full_with_the_prompt_and_the_values_is_refused() {
    let half = "v".repeat(PROMPT_SECRET_LIMIT / 2 + 1);
    let rc = ctx(json!({"config": {"promptTemplate": half.clone(), "env": {"BIG_SECRET": half}}}));
    let e = build(&rc, Some(&self_pod()), None).unwrap_err();
    assert!(matches!(e, JobError::SecretTooLarge { .. }), "{e}");
}

#[test]
fn prompt_too_large_for_a_secret_is_refused() {
    let huge = "z".repeat(PROMPT_SECRET_LIMIT + 1);
    let e = build(&ctx(json!({"config": {"promptTemplate": huge}})), Some(&self_pod()), None).unwrap_err();
    assert_eq!(e, JobError::PromptTooLarge { bytes: PROMPT_SECRET_LIMIT + 1, limit: PROMPT_SECRET_LIMIT });
}

#[test]
fn off_cluster_mode_builds_from_config() {
    let e = build(&ctx(json!({})), None, None).unwrap_err();
    assert_eq!(e, JobError::NoImage);
    let plan = build(&ctx(json!({"config": {"image": "claude:1", "namespace": "agents"}})), None, None).unwrap();
    let j = json_of(&plan);
    assert_eq!(j["metadata"]["namespace"], "agents");
    assert_eq!(j["spec"]["template"]["spec"]["containers"][0]["image"], "claude:1");
    assert!(plan.notes.iter().any(|n| n.starts_with("Off-cluster mode")));
    // No PVC to inherit: /paperclip (HOME, the default cwd) is a writable emptyDir.
    let volumes = &j["spec"]["template"]["spec"]["volumes"];
    assert_eq!(volumes[0], json!({"name": "prompt", "emptyDir": {}}));
    assert_eq!(volumes[1]["name"], "prompt-secret");
    assert_eq!(volumes[2], json!({"name": "data", "emptyDir": {}}));
    assert_eq!(
        j["spec"]["template"]["spec"]["containers"][0]["volumeMounts"],
        json!([{"name": "prompt", "mountPath": "/tmp/prompt"}, {"name": "data", "mountPath": "/paperclip"}])
    );
    assert!(plan.notes.iter().any(|n| n == "No PVC inherited: /paperclip is an emptyDir in the Job pod (sessions will not resume)"));
}

fn pod_with_sources() -> (SelfPod, SourceKeys) {
    let mut pod = self_pod();
    pod.secret_volumes = vec![
        crate::selfpod::SecretVolume {
            volume_name: "creds".into(),
            secret_name: "creds-secret".into(),
            mount_path: "/etc/creds".into(),
            default_mode: Some(0o400),
        },
        crate::selfpod::SecretVolume {
            volume_name: "server".into(),
            secret_name: "paperclip".into(),
            mount_path: "/etc/paperclip".into(),
            default_mode: None,
        },
    ];
    pod.inherited_env_from = vec![
        serde_json::from_value(json!({"secretRef": {"name": "paperclip-secrets"}})).unwrap(),
        serde_json::from_value(json!({"configMapRef": {"name": "settings", "optional": true}, "prefix": "APP_"})).unwrap(),
        serde_json::from_value(json!({"secretRef": {"name": "unreadable"}})).unwrap(),
    ];
    let sources = SourceKeys {
        env_from: vec![
            Ok(vec!["ANTHROPIC_API_KEY".into(), "BETTER_AUTH_SECRET".into(), "CLAUDE_CODE_OAUTH_TOKEN".into(), "bad=name".into()]),
            Ok(vec!["MODE".into(), "DATABASE_URL".into()]),
            Err("Secret unreadable: forbidden".into()),
        ],
        volumes: [
            ("creds".to_owned(), Ok(vec!["gcp.json".to_owned()])),
            ("server".to_owned(), Ok(vec!["agentJwtSecret".to_owned(), "tls.crt".to_owned()])),
        ]
        .into_iter()
        .collect(),
        server_state: Default::default(),
    };
    (pod, sources)
}

fn build_with(rc: &RunContext, pod: &SelfPod, sources: Option<&SourceKeys>) -> JobPlan {
    let cfg = AdapterConfig::from_ctx(rc).unwrap();
    let env = HostEnv::default();
    build_job(&JobInput { ctx: rc, config: &cfg, self_pod: Some(pod), bundle: None, env: &env, namespace: "pc", instructions: None, sources })
        .unwrap()
}

/// envFrom is expanded key by key (values by reference, never in the spec),
/// minus the server's secrets; secret volumes lose the server's files.
#[test]
fn inherited_env_from_and_secret_volumes_without_the_servers_secrets() {
    let (pod, sources) = pod_with_sources();
    let plan = build_with(&ctx(json!({})), &pod, Some(&sources));
    let j = json_of(&plan);
    let spec = &j["spec"]["template"]["spec"];
    let c = &spec["containers"][0];
    assert!(c.get("envFrom").is_none(), "{c}");
    let env = c["env"].as_array().unwrap();
    let find = |n: &str| env.iter().find(|e| e["name"] == n).cloned();
    // Already set from the pod's literal env: env wins over envFrom.
    assert_eq!(env.iter().filter(|e| e["name"] == "ANTHROPIC_API_KEY").count(), 1);
    assert_eq!(
        find("CLAUDE_CODE_OAUTH_TOKEN").unwrap(),
        json!({"name": "CLAUDE_CODE_OAUTH_TOKEN", "valueFrom": {"secretKeyRef": {"name": "paperclip-secrets", "key": "CLAUDE_CODE_OAUTH_TOKEN"}}})
    );
    assert_eq!(
        find("APP_MODE").unwrap(),
        json!({"name": "APP_MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "MODE", "optional": true}}})
    );
    for gone in ["BETTER_AUTH_SECRET", "APP_DATABASE_URL", "bad=name"] {
        assert!(find(gone).is_none(), "{gone} arrived");
    }
    let volumes = spec["volumes"].as_array().unwrap();
    let vol = |n: &str| volumes.iter().find(|v| v["name"] == n).cloned();
    assert_eq!(vol("creds").unwrap(), json!({"name": "creds", "secret": {"secretName": "creds-secret", "defaultMode": 256, "optional": true}}));
    assert_eq!(
        vol("server").unwrap(),
        json!({"name": "server", "secret": {"secretName": "paperclip", "optional": true, "items": [{"key": "tls.crt", "path": "tls.crt"}]}})
    );
    let mounts = c["volumeMounts"].as_array().unwrap();
    assert!(mounts.contains(&json!({"name": "creds", "mountPath": "/etc/creds", "readOnly": true})));
    let held = plan.notes.iter().find(|n| n.starts_with("Held back from the Job")).expect("a note naming what was held back");
    assert!(held.contains("BETTER_AUTH_SECRET, APP_DATABASE_URL, /etc/paperclip/agentJwtSecret"), "{held}");
    assert_eq!(plan.withheld, ["envFrom Secret unreadable not passed to the Job: its keys could not be read (Secret unreadable: forbidden)"]);

    // Not read: nothing of them arrives.
    let plan = build_with(&ctx(json!({})), &pod, None);
    let j = json_of(&plan);
    assert!(j["spec"]["template"]["spec"]["volumes"].as_array().unwrap().iter().all(|v| v["name"] != "creds"));
    assert_eq!(plan.withheld.len(), 5, "{:?}", plan.withheld);

    // The opt-out: 0.1.54's Job, envFrom and volumes whole.
    let plan = build_with(&ctx(json!({"config": {"inheritServerSecrets": true}})), &pod, None);
    let j = json_of(&plan);
    let spec = &j["spec"]["template"]["spec"];
    assert_eq!(spec["containers"][0]["envFrom"].as_array().unwrap().len(), 3);
    assert_eq!(spec["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "server").unwrap()["secret"].get("items"), None);
    assert!(plan.withheld.is_empty() && !plan.notes.iter().any(|n| n.starts_with("Held back")));
}

/// The server's state on the shared PVC: empty read-only mounts over its
/// directories, the run's empty file over its files; never over where the run works.
#[test]
fn the_servers_state_is_masked_but_not_where_the_agent_works() {
    let pod = self_pod();
    let sources = SourceKeys {
        server_state: crate::withhold::ServerState {
            dirs: vec!["/paperclip/instances/default/db".into(), "/paperclip/instances/default/secrets".into(), "/paperclip/work".into()],
            files: vec!["/paperclip/instances/default/.env".into(), "/paperclip/instances/default/config.json".into()],
        },
        ..Default::default()
    };
    let rc = ctx(json!({"context": {"paperclipWorkspace": {"cwd": "/paperclip/work/repo"}}}));
    let plan = build_with(&rc, &pod, Some(&sources));
    let j = json_of(&plan);
    let spec = &j["spec"]["template"]["spec"];
    let mounts = spec["containers"][0]["volumeMounts"].as_array().unwrap();
    let on = |p: &str| mounts.iter().find(|m| m["mountPath"] == p).cloned();
    assert_eq!(on("/paperclip/instances/default/db").unwrap(), json!({"name": "server-state-mask", "mountPath": "/paperclip/instances/default/db", "readOnly": true}));
    assert_eq!(on("/paperclip/instances/default/secrets").unwrap()["name"], "server-state-mask");
    assert_eq!(
        on("/paperclip/instances/default/.env").unwrap(),
        json!({"name": "prompt-secret", "mountPath": "/paperclip/instances/default/.env", "subPath": "empty", "readOnly": true})
    );
    assert!(on("/paperclip/instances/default/config.json").is_some());
    // The masks come after the PVC's own mount (a mount over a path needs the volume under it first).
    let data_at = mounts.iter().position(|m| m["name"] == "data").unwrap();
    assert!(mounts.iter().position(|m| m["name"] == "server-state-mask").unwrap() > data_at);
    // The workspace is under /paperclip/work: that mask is skipped, and said.
    assert!(on("/paperclip/work").is_none());
    assert_eq!(plan.withheld, ["/paperclip/work is not hidden from the agent: the run works in /paperclip/work/repo"]);
    assert!(spec["volumes"].as_array().unwrap().contains(&json!({"name": "server-state-mask", "emptyDir": {}})));
    let items = spec["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "prompt-secret").unwrap()["secret"]["items"].clone();
    assert_eq!(items, json!([{"key": "prompt.txt", "path": "prompt.txt"}, {"key": "empty", "path": "empty"}]));
    assert_eq!(plan.prompt_secret.as_ref().unwrap().string_data.as_ref().unwrap()["empty"], "");
    // The opt-out: no masks.
    let plan = build_with(&ctx(json!({"config": {"inheritServerSecrets": true}})), &pod, Some(&sources));
    assert!(!json_of(&plan).to_string().contains("server-state-mask"));
}

#[test]
fn runtime_class_and_read_only_root_are_opt_in() {
    let j = json_of(&build(&ctx(json!({})), Some(&self_pod()), None).unwrap());
    let spec = &j["spec"]["template"]["spec"];
    assert!(spec.get("runtimeClassName").is_none());
    assert_eq!(spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"], false);
    let rc = ctx(json!({"config": {"runtimeClassName": "gvisor", "readOnlyRootFilesystem": true}}));
    let j = json_of(&build(&rc, Some(&self_pod()), None).unwrap());
    let spec = &j["spec"]["template"]["spec"];
    assert_eq!(spec["runtimeClassName"], "gvisor");
    for c in [&spec["initContainers"][0], &spec["containers"][0]] {
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    }
    assert_eq!(spec["containers"][0]["volumeMounts"][0], json!({"name": "tmp", "mountPath": "/tmp"}));
    assert!(spec["volumes"].as_array().unwrap().contains(&json!({"name": "tmp", "emptyDir": {}})));
}

/// Bedrock selected by the agent's config: AWS_* are its credentials.
#[test]
fn aws_names_arrive_only_for_bedrock() {
    let mut pod = self_pod();
    pod.inherited_env.push(("AWS_ACCESS_KEY_ID".into(), "AKIA-SERVER".into()));
    let names = |plan: &JobPlan| {
        json_of(plan)["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    let plain = build_with(&ctx(json!({})), &pod, Some(&SourceKeys::default()));
    assert!(!names(&plain).contains(&"AWS_ACCESS_KEY_ID".to_owned()));
    let bedrock = build_with(&ctx(json!({"config": {"env": {"CLAUDE_CODE_USE_BEDROCK": "1"}}})), &pod, Some(&SourceKeys::default()));
    assert!(names(&bedrock).contains(&"AWS_ACCESS_KEY_ID".to_owned()));
    // Still not readable from the spec.
    assert!(!json_of(&bedrock).to_string().contains("AKIA-SERVER"));
}

#[test]
fn rtk_prepends_its_setup() {
    let plan = build(&ctx(json!({"config": {"enableRtk": true, "rtkMaxOutputBytes": 777}})), Some(&self_pod()), None).unwrap();
    let cmd = json_of(&plan)["spec"]["template"]["spec"]["containers"][0]["command"][2].as_str().unwrap().to_owned();
    assert!(cmd.starts_with("node -e "));
    assert!(cmd.contains("const MAX=777;"));
    assert!(cmd.contains(" && cat /tmp/prompt/prompt.txt | claude '--print'"));
}

#[test]
fn nul_in_an_argument_is_an_error() {
    let e = build(&ctx(json!({"config": {"extraArgs": ["ok", "bad\u{0}"]}})), Some(&self_pod()), None).unwrap_err();
    assert!(e.to_string().contains("NUL"), "{e}");
}

#[test]
fn hostile_ids_still_make_valid_objects() {
    for id in ["../../etc", "a b", "UPPER", "-x-", "日本", "a".repeat(300).as_str()] {
        let rc = ctx(json!({"runId": id, "agent": {"id": format!("{id}z"), "companyId": id, "name": id}}));
        let plan = build(&rc, Some(&self_pod()), None).unwrap();
        assert!(plan.job_name.len() <= 63);
        for (k, v) in plan.job.metadata.labels.as_ref().unwrap() {
            assert!(v.len() <= 63 && v.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)), "{k}={v}");
        }
    }
    let _ = Map::<String, Value>::new();
}

#[test]
fn security_context_is_restricted_by_default_and_config_lays_over_it() {
    // Default: what Pod Security `restricted` requires of the pod and of both containers.
    let j = json_of(&build(&ctx(json!({})), Some(&self_pod()), None).unwrap());
    let spec = &j["spec"]["template"]["spec"];
    assert_eq!(spec["securityContext"]["seccompProfile"], json!({"type": "RuntimeDefault"}));
    for c in [&spec["initContainers"][0], &spec["containers"][0]] {
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["capabilities"], json!({"drop": ["ALL"]}));
        assert_eq!(c["securityContext"]["runAsNonRoot"], true);
    }
    // Config: top-level fields replace the defaults', the rest stay.
    let rc = ctx(json!({"config": {
        "podSecurityContext": {"runAsUser": 2000, "supplementalGroups": [5]},
        "securityContext": "{\"allowPrivilegeEscalation\": true, \"capabilities\": {\"add\": [\"NET_ADMIN\"]}}"
    }}));
    let j = json_of(&build(&rc, Some(&self_pod()), None).unwrap());
    let spec = &j["spec"]["template"]["spec"];
    assert_eq!(spec["securityContext"]["runAsUser"], 2000);
    assert_eq!(spec["securityContext"]["supplementalGroups"], json!([5]));
    assert_eq!(spec["securityContext"]["seccompProfile"], json!({"type": "RuntimeDefault"}));
    let c = &spec["containers"][0]["securityContext"];
    assert_eq!(c["allowPrivilegeEscalation"], true);
    assert_eq!(c["capabilities"], json!({"add": ["NET_ADMIN"]}));
    assert_eq!(c["runAsNonRoot"], true);
}

#[test]
fn a_security_context_of_the_wrong_shape_is_a_config_error() {
    for (cfg, want) in [
        (json!({"securityContext": "not json"}), "invalid securityContext: not valid JSON"),
        (json!({"securityContext": [1]}), "invalid securityContext: expected an object"),
        (json!({"podSecurityContext": {"runAsUser": "root"}}), "invalid podSecurityContext: invalid type"),
    ] {
        let err = AdapterConfig::from_ctx(&ctx(json!({"config": cfg}))).unwrap_err().to_string();
        assert!(err.starts_with(want), "{err}");
    }
}

#[test]
fn mcp_servers_go_through_the_secret_with_reachable_urls() {
    let mut pod = self_pod();
    pod.inherited_env.push(("PAPERCLIP_API_URL".into(), "http://paperclip.pc.svc:3100".into()));
    let rc = ctx(json!({
        "runtimeMcpServers": [{"name": "Paperclip projects", "url": "http://localhost:3100/api/mcp/project-tools",
                               "token": "agent-jwt-SECRET", "connectionId": "paperclip-project-tools"}],
        "config": {"mcpServers": {"docs": {"type": "http", "url": "https://docs.example/mcp"}}, "strictMcpConfig": true}
    }));
    let plan = build(&rc, Some(&pod), None).unwrap();
    let i = plan.claude_args.iter().position(|a| a == "--mcp-config").expect("--mcp-config");
    assert_eq!(plan.claude_args[i + 1], "/tmp/prompt-secret/mcp-config.json");
    assert_eq!(plan.claude_args[i + 2], "--strict-mcp-config");
    // The token is nowhere in the Job: not in args, env or the spec.
    let spec = json_of(&plan).to_string();
    assert!(!spec.contains("agent-jwt-SECRET"), "{spec}");
    let j = json_of(&plan);
    let mounts = &j["spec"]["template"]["spec"]["containers"][0]["volumeMounts"];
    assert!(mounts.as_array().unwrap().iter().any(|m| m["mountPath"] == "/tmp/prompt-secret" && m["readOnly"] == true), "{mounts}");
    // The Secret holds the MCP config beside the prompt; both are projected as files.
    let secret = plan.prompt_secret.as_ref().expect("a Secret for the MCP config");
    let data = secret.string_data.as_ref().unwrap();
    // (and the Deployment's literal API key, by reference from the env)
    assert_eq!(data.keys().collect::<Vec<_>>(), ["ANTHROPIC_API_KEY", "mcp-config.json", "prompt.txt"]);
    let doc: Value = serde_json::from_str(&data["mcp-config.json"]).unwrap();
    assert_eq!(doc["mcpServers"]["docs"]["url"], "https://docs.example/mcp");
    assert_eq!(
        doc["mcpServers"]["Paperclip projects"],
        json!({"type": "http", "url": "http://paperclip.pc.svc:3100/api/mcp/project-tools", "headers": {"Authorization": "Bearer agent-jwt-SECRET"}})
    );
    // No servers: no flags, and the Secret holds the prompt only.
    let plain = build(&ctx(json!({})), Some(&self_pod()), None).unwrap();
    assert!(!plain.claude_args.iter().any(|a| a.starts_with("--mcp") || a == "--strict-mcp-config"));
    assert_eq!(plain.prompt_secret.unwrap().string_data.unwrap().keys().collect::<Vec<_>>(), ["ANTHROPIC_API_KEY", "prompt.txt"]);
}

#[test]
fn egress_policy_only_when_asked_for_and_aimed_at_the_pods_api_url() {
    let plan = build(&ctx(json!({})), Some(&self_pod()), None).unwrap();
    assert!(plan.egress.is_none(), "off by default");
    let mut pod = self_pod();
    pod.labels = BTreeMap::from([("app".to_owned(), "paperclip".to_owned())]);
    // The agent's own PAPERCLIP_API_URL (env wins) is the one the pod uses, so the one allowed.
    let rc = ctx(json!({"config": {"egressPolicy": true, "env": {"PAPERCLIP_API_URL": "http://10.0.0.7:8080"}}}));
    let plan = build(&rc, Some(&pod), None).unwrap();
    let e = plan.egress.expect("egressPolicy: true");
    let v = serde_json::to_value(&e.policy).unwrap();
    assert_eq!(v["metadata"]["name"], format!("{}-egress", plan.job_name));
    assert_eq!(v["metadata"]["namespace"], "pc");
    assert_eq!(v["metadata"]["labels"]["paperclip.io/run-id"], "run-test-001");
    assert_eq!(v["spec"]["podSelector"]["matchLabels"], json!({"job-name": plan.job_name}));
    let rules = v["spec"]["egress"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["to"][0]["ipBlock"]["cidr"] == "10.0.0.7/32" && r["ports"] == json!([{"port": 8080, "protocol": "TCP"}])), "{rules:?}");
    assert!(rules.iter().any(|r| r["to"][0]["podSelector"]["matchLabels"] == json!({"app": "paperclip"})), "{rules:?}");
    // A bad allow list is a config error before anything is built.
    let bad = ctx(json!({"config": {"egressPolicy": true, "egressAllowCidrs": ["nope"]}}));
    assert!(AdapterConfig::from_ctx(&bad).unwrap_err().to_string().contains("egressAllowCidrs"));
}
