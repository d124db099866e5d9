//! Skills and agent instructions, delivered to the pod through the shared PVC
//! (contract §1.5 step 6, §1.11 `prepareClaudePromptBundle`, §2.4).
//!
//! The bundle is a directory under `PAPERCLIP_HOME` (which a Deployment keeps
//! under `/paperclip`, the PVC the Job mounts too), keyed by a hash of its
//! contents: `agent-instructions.md` and `.claude/skills/<name>` symlinks. The
//! Job gets `--add-dir <bundle>` and `--append-system-prompt-file`.
//!
//! Invariants: ids that become path components (companyId, instanceId) are
//! validated — no `/`, `\`, `..` or NUL — so the bundle can never be written
//! outside its root; files are written atomically (temp file + rename).

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::{AdapterConfig, HostEnv};
use crate::ctx::RunContext;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("Invalid {field}: {value:?}")]
    InvalidId { field: &'static str, value: String },
    #[error("cannot prepare the prompt bundle at {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// A skill Paperclip provides (`PaperclipSkillEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillEntry {
    pub key: String,
    pub runtime_name: Option<String>,
    pub source: String,
    pub required: bool,
    pub required_reason: Option<String>,
}

impl SkillEntry {
    pub fn name(&self) -> &str {
        self.runtime_name.as_deref().unwrap_or(&self.key)
    }
}

/// `readPaperclipRuntimeSkillEntries`: from `config.paperclipRuntimeSkills`.
/// (The original also scanned skills shipped beside its own module; this
/// package ships none.)
pub fn runtime_skill_entries(config: &Map<String, Value>) -> Vec<SkillEntry> {
    let Some(Value::Array(items)) = config.get("paperclipRuntimeSkills") else { return Vec::new() };
    items
        .iter()
        .filter_map(|v| {
            let o = v.as_object()?;
            let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
            Some(SkillEntry {
                key: s("key")?,
                runtime_name: s("runtimeName"),
                source: s("source")?,
                required: o.get("required").and_then(Value::as_bool).unwrap_or(false),
                required_reason: s("requiredReason"),
            })
        })
        .collect()
}

/// `resolvePaperclipDesiredSkillNames`: required keys, plus
/// `config.paperclipSkillSync.desiredSkills` when that key exists.
pub fn desired_skill_names(config: &Map<String, Value>, entries: &[SkillEntry]) -> Vec<String> {
    let mut out: Vec<String> = entries.iter().filter(|e| e.required).map(|e| e.key.clone()).collect();
    if let Some(Value::Array(d)) = config.get("paperclipSkillSync").and_then(|s| s.get("desiredSkills")) {
        for k in d.iter().filter_map(Value::as_str) {
            if !out.iter().any(|o| o == k) {
                out.push(k.to_owned());
            }
        }
    }
    out
}

fn validate_id(field: &'static str, v: &str) -> Result<(), BundleError> {
    let bad = v.trim().is_empty() || v.contains('/') || v.contains('\\') || v.contains("..") || v.contains('\0');
    if bad { Err(BundleError::InvalidId { field, value: v.to_owned() }) } else { Ok(()) }
}

/// The prepared bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptBundle {
    pub bundle_key: String,
    pub root_dir: PathBuf,
    pub add_dir: PathBuf,
    pub instructions_file_path: Option<PathBuf>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Io { path: path.display().to_string(), source }
}

/// Hashes a file or directory tree (relative names and bytes), for the key.
fn hash_tree(h: &mut Sha256, path: &Path) {
    let Ok(meta) = std::fs::metadata(path) else { return };
    if meta.is_file() {
        if let Ok(bytes) = std::fs::read(path) {
            h.update(Sha256::digest(&bytes));
        }
        return;
    }
    let Ok(rd) = std::fs::read_dir(path) else { return };
    let mut names: Vec<_> = rd.filter_map(Result::ok).map(|e| e.file_name()).collect();
    names.sort();
    for n in names {
        h.update(n.as_encoded_bytes());
        h.update(b"\n");
        hash_tree(h, &path.join(&n));
    }
}

/// Writes `contents` to `path` via a temp file and a rename.
fn write_atomic(path: &Path, contents: &str) -> Result<(), BundleError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, contents).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// `PAPERCLIP_HOME`, else `~/.paperclip`.
pub fn paperclip_home(env: &HostEnv) -> PathBuf {
    match env.non_blank("PAPERCLIP_HOME") {
        Some(h) => PathBuf::from(h),
        None => PathBuf::from(env.non_blank("HOME").unwrap_or("/paperclip")).join(".paperclip"),
    }
}

/// `prepareClaudePromptBundle`.
pub fn prepare_prompt_bundle(
    env: &HostEnv,
    company_id: &str,
    skills: &[SkillEntry],
    instructions: Option<&str>,
) -> Result<(PromptBundle, Vec<String>), BundleError> {
    validate_id("companyId", company_id)?;
    let instance = env.non_blank("PAPERCLIP_INSTANCE_ID").unwrap_or("default");
    validate_id("instanceId", instance)?;
    let home = paperclip_home(env);
    let mut sorted: Vec<&SkillEntry> = skills.iter().collect();
    sorted.sort_by(|a, b| a.name().cmp(b.name()));
    let mut h = Sha256::new();
    h.update(b"paperclip-claude-prompt-bundle:v1\n");
    match instructions {
        Some(i) => {
            h.update(b"instructions:");
            h.update(Sha256::digest(i.as_bytes()));
            h.update(b"\n");
        }
        None => h.update(b"instructions:none\n"),
    }
    for s in &sorted {
        h.update(format!("skill:{}:{}\n", s.key, s.name()).as_bytes());
        hash_tree(&mut h, Path::new(&s.source));
    }
    let key: String = h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    let root = home.join("instances").join(instance).join("companies").join(company_id).join("claude-prompt-cache").join(&key);
    let skills_dir = root.join(".claude").join("skills");
    std::fs::create_dir_all(&skills_dir).map_err(io_err(&skills_dir))?;
    let mut warnings = Vec::new();
    for s in &sorted {
        let name = s.name();
        if name.contains('/') || name.contains("..") || name.contains('\0') || name.is_empty() {
            warnings.push(format!("Warning: skipped skill with an unsafe name: {name:?}"));
            continue;
        }
        let target = skills_dir.join(name);
        let current = std::fs::read_link(&target).ok();
        if current.as_deref() != Some(Path::new(&s.source)) {
            let _ = std::fs::remove_file(&target);
            #[cfg(unix)]
            if let Err(e) = std::os::unix::fs::symlink(&s.source, &target) {
                warnings.push(format!("Warning: could not link skill {name}: {e}"));
            }
        }
    }
    let instructions_file_path = match instructions {
        Some(text) => {
            let p = root.join("agent-instructions.md");
            if std::fs::read_to_string(&p).ok().as_deref() != Some(text) {
                write_atomic(&p, text)?;
            }
            Some(p)
        }
        None => None,
    };
    Ok((PromptBundle { bundle_key: key, add_dir: root.clone(), root_dir: root, instructions_file_path }, warnings))
}

/// Reads `config.instructionsFilePath` and appends the original's note.
/// Returns the text, or `None` and a warning line.
pub fn read_instructions(path: &str) -> (Option<String>, Option<String>) {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let dir = Path::new(path).parent().map(|d| d.display().to_string()).unwrap_or_default();
            let note = format!(
                "\nThe above agent instructions were loaded from {path}. Resolve any relative file references from {dir}/. This base directory is authoritative for sibling instruction files such as ./HEARTBEAT.md, ./SOUL.md, and ./TOOLS.md; do not resolve those from the parent agent directory."
            );
            (Some(text + &note), None)
        }
        Err(e) => (None, Some(format!("Warning: could not read agent instructions file \"{path}\": {e}"))),
    }
}

/// Everything the run prepares before building or reattaching to a Job.
#[derive(Debug, Clone, Default)]
pub struct PreparedRun {
    pub bundle: Option<PromptBundle>,
    pub instructions: Option<String>,
    pub log_lines: Vec<String>,
    pub warnings: Vec<String>,
    /// `Skills (<n>): <names>` for onMeta's notes.
    pub skills_note: String,
}

/// Step 6 of the pipeline. `has_shared_volume`: the Job mounts the PVC at
/// `/paperclip`, so a bundle written under `PAPERCLIP_HOME` reaches the pod.
pub fn prepare_for_run(rc: &RunContext, cfg: &AdapterConfig, env: &HostEnv, has_shared_volume: bool) -> Result<PreparedRun, BundleError> {
    let entries = runtime_skill_entries(&rc.config);
    let desired = desired_skill_names(&rc.config, &entries);
    let skills: Vec<SkillEntry> = entries.into_iter().filter(|e| desired.contains(&e.key)).collect();
    let names: Vec<&str> = skills.iter().map(SkillEntry::name).collect();
    let listed = if names.is_empty() { "none".to_owned() } else { names.join(", ") };
    let mut out = PreparedRun {
        log_lines: vec![format!("Skills bundled ({}): {listed}", names.len())],
        skills_note: format!("Skills ({}): {listed}", names.len()),
        ..Default::default()
    };
    if let Some(path) = &cfg.instructions_file_path {
        let (text, warning) = read_instructions(path);
        out.instructions = text;
        out.warnings.extend(warning);
    }
    let home = paperclip_home(env);
    if has_shared_volume && !home.starts_with("/paperclip") {
        out.warnings.push(format!(
            "Warning: PAPERCLIP_HOME ({}) is not under /paperclip, the volume Job pods share: skills and agent instructions cannot reach the pod",
            home.display()
        ));
    } else if has_shared_volume {
        let (bundle, warnings) = prepare_prompt_bundle(env, &rc.agent.company_id, &skills, out.instructions.as_deref())?;
        out.bundle = Some(bundle);
        out.warnings.extend(warnings);
    } else if !skills.is_empty() || out.instructions.is_some() {
        out.warnings.push(
            "Warning: no PVC is mounted at /paperclip, so skills and agent instructions cannot be delivered to the Job pod".into(),
        );
    }
    Ok(out)
}

/// A skill entry of the host's snapshot (`AdapterSkillEntry`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillSnapshotEntry {
    pub key: String,
    pub runtime_name: Option<String>,
    pub desired: bool,
    pub managed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_reason: Option<String>,
    pub state: &'static str,
    pub origin: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `AdapterSkillSnapshot`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkillSnapshot {
    pub adapter_type: &'static str,
    pub supported: bool,
    pub mode: &'static str,
    pub desired_skills: Vec<String>,
    pub entries: Vec<SkillSnapshotEntry>,
    pub warnings: Vec<String>,
}

/// `listK8sSkills` / `syncK8sSkills` (§1.11); `installed_dir` is
/// `/paperclip/.claude/skills`.
pub fn skills_snapshot(config: &Map<String, Value>, desired_override: Option<&[String]>, installed_dir: &Path) -> SkillSnapshot {
    let entries = runtime_skill_entries(config);
    let mut desired = desired_skill_names(config, &entries);
    if let Some(d) = desired_override {
        for k in d {
            if !desired.contains(k) {
                desired.push(k.clone());
            }
        }
    }
    let mut out: Vec<SkillSnapshotEntry> = entries
        .iter()
        .map(|e| {
            let is_desired = desired.contains(&e.key);
            SkillSnapshotEntry {
                key: e.key.clone(),
                runtime_name: e.runtime_name.clone(),
                desired: is_desired,
                managed: true,
                required: e.required.then_some(true),
                required_reason: e.required_reason.clone(),
                state: if is_desired { "configured" } else { "available" },
                origin: if e.required { "paperclip_required" } else { "company_managed" },
                location_label: None,
                read_only: None,
                source_path: Some(e.source.clone()),
                target_path: None,
                detail: is_desired
                    .then(|| "Materialized into the PVC-backed Claude prompt bundle before each K8s Job run.".to_owned()),
            }
        })
        .collect();
    let mut warnings = Vec::new();
    for k in &desired {
        if !entries.iter().any(|e| &e.key == k) {
            warnings.push(format!("Desired skill \"{k}\" is not available from the Paperclip skills directory."));
            out.push(SkillSnapshotEntry {
                key: k.clone(),
                runtime_name: None,
                desired: true,
                managed: true,
                required: None,
                required_reason: None,
                state: "missing",
                origin: "external_unknown",
                location_label: None,
                read_only: None,
                source_path: None,
                target_path: None,
                detail: None,
            });
        }
    }
    if let Ok(rd) = std::fs::read_dir(installed_dir) {
        for e in rd.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if out.iter().any(|o| o.key == name || o.runtime_name.as_deref() == Some(&name)) {
                continue;
            }
            out.push(SkillSnapshotEntry {
                key: name.clone(),
                runtime_name: Some(name),
                desired: false,
                managed: false,
                required: None,
                required_reason: None,
                state: "external",
                origin: "user_installed",
                location_label: Some("~/.claude/skills".into()),
                read_only: Some(true),
                source_path: None,
                target_path: Some(e.path().display().to_string()),
                detail: None,
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    SkillSnapshot { adapter_type: "claude_k8s", supported: true, mode: "ephemeral", desired_skills: desired, entries: out, warnings }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ck8s-bundle-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn ids_that_could_escape_are_rejected() {
        let home = tmp("ids");
        let env = HostEnv::from_pairs([("PAPERCLIP_HOME", home.to_str().unwrap())]);
        for bad in ["", " ", "a/b", "a\\b", "..", "x..y", "a\0b"] {
            let e = prepare_prompt_bundle(&env, bad, &[], None).unwrap_err();
            assert!(e.to_string().starts_with("Invalid companyId"), "{bad:?}: {e}");
        }
        let env = HostEnv::from_pairs([("PAPERCLIP_HOME", home.to_str().unwrap()), ("PAPERCLIP_INSTANCE_ID", "../x")]);
        assert!(prepare_prompt_bundle(&env, "co", &[], None).unwrap_err().to_string().starts_with("Invalid instanceId"));
    }

    #[test]
    fn bundle_layout_links_and_instructions() {
        let home = tmp("layout");
        let skill_src = home.join("src-skill");
        std::fs::create_dir_all(&skill_src).unwrap();
        std::fs::write(skill_src.join("SKILL.md"), "hello").unwrap();
        let env = HostEnv::from_pairs([("PAPERCLIP_HOME", home.to_str().unwrap())]);
        let skills = vec![SkillEntry {
            key: "paperclip".into(),
            runtime_name: Some("paperclip-skill".into()),
            source: skill_src.display().to_string(),
            required: true,
            required_reason: None,
        }];
        let (b, warnings) = prepare_prompt_bundle(&env, "co1", &skills, Some("Be nice.")).unwrap();
        assert!(warnings.is_empty());
        let prefix = home.join("instances/default/companies/co1/claude-prompt-cache");
        assert!(b.root_dir.starts_with(&prefix), "{:?}", b.root_dir);
        assert_eq!(b.add_dir, b.root_dir);
        assert_eq!(std::fs::read_to_string(b.instructions_file_path.as_ref().unwrap()).unwrap(), "Be nice.");
        assert_eq!(std::fs::read_link(b.root_dir.join(".claude/skills/paperclip-skill")).unwrap(), skill_src);
        // Same inputs → same key; changed skill content → new key.
        let (again, _) = prepare_prompt_bundle(&env, "co1", &skills, Some("Be nice.")).unwrap();
        assert_eq!(again.bundle_key, b.bundle_key);
        std::fs::write(skill_src.join("SKILL.md"), "changed").unwrap();
        let (changed, _) = prepare_prompt_bundle(&env, "co1", &skills, Some("Be nice.")).unwrap();
        assert_ne!(changed.bundle_key, b.bundle_key);
    }

    #[test]
    fn instructions_note_and_missing_file() {
        let d = tmp("instr");
        let p = d.join("AGENTS.md");
        std::fs::write(&p, "Do things.").unwrap();
        let (text, warn) = read_instructions(p.to_str().unwrap());
        assert!(warn.is_none());
        let text = text.unwrap();
        assert!(text.starts_with("Do things.\nThe above agent instructions were loaded from "));
        assert!(text.contains(&format!("Resolve any relative file references from {}/.", d.display())));
        let (none, warn) = read_instructions("/nonexistent/x.md");
        assert!(none.is_none());
        assert!(warn.unwrap().starts_with("Warning: could not read agent instructions file \"/nonexistent/x.md\": "));
    }

    #[test]
    fn snapshot_states() {
        let d = tmp("snap");
        std::fs::create_dir_all(d.join("mine")).unwrap();
        let config = json!({
            "paperclipRuntimeSkills": [
                {"key": "req", "runtimeName": "req", "source": "/s/req", "required": true},
                {"key": "opt", "source": "/s/opt"},
                {"bad": true}
            ],
            "paperclipSkillSync": {"desiredSkills": ["ghost"]}
        });
        let s = skills_snapshot(config.as_object().unwrap(), None, &d);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["desiredSkills"], json!(["req", "ghost"]));
        let states: Vec<(String, String)> = s.entries.iter().map(|e| (e.key.clone(), e.state.to_owned())).collect();
        assert_eq!(
            states,
            [("ghost", "missing"), ("mine", "external"), ("opt", "available"), ("req", "configured")]
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert_eq!(s.warnings, vec!["Desired skill \"ghost\" is not available from the Paperclip skills directory."]);
        assert_eq!(v["entries"][3]["origin"], "paperclip_required");
        assert_eq!(v["mode"], "ephemeral");
    }
}
