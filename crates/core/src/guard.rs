//! The concurrency guard (contract §1.5 step 5): before creating a Job, look
//! for this agent's Jobs that are still running and decide whether to go on,
//! reattach to one, or refuse.
//!
//! Invariants: the guard never deletes anything (orphans are left for a later
//! reattach or for a human), and it fails closed — if the Jobs cannot be
//! listed, the run is blocked rather than risking two agents' Jobs at once.

use k8s_openapi::api::batch::v1::Job;

use crate::names::sanitize_label_value;

pub const LABEL_AGENT_ID: &str = "paperclip.io/agent-id";
pub const LABEL_ADAPTER_TYPE: &str = "paperclip.io/adapter-type";
pub const LABEL_RUN_ID: &str = "paperclip.io/run-id";
pub const LABEL_TASK_ID: &str = "paperclip.io/task-id";
pub const LABEL_SESSION_ID: &str = "paperclip.io/session-id";
pub const ADAPTER_TYPE: &str = "claude_k8s";

/// The label selector for one agent's Jobs of this adapter.
pub fn agent_selector(sanitized_agent_id: &str) -> String {
    format!("{LABEL_AGENT_ID}={sanitized_agent_id},{LABEL_ADAPTER_TYPE}={ADAPTER_TYPE}")
}

/// "Running" as the original counted it: not being deleted, and no
/// `Complete`/`Failed` condition with status `"True"`.
pub fn is_running(job: &Job) -> bool {
    if job.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let terminal = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True"));
    !terminal
}

/// What to do with one orphan (a running Job of this agent with another run id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanClass {
    /// The orphan or the current run has no task id: we cannot tell whether it is the same work.
    BlockTaskUnknown,
    /// The orphan works on another task.
    BlockTaskMismatch,
    /// Same task, both have a session, and they differ.
    BlockSessionMismatch,
    /// Same task and compatible session: follow it instead of starting another.
    Reattach,
}

/// `classifyOrphan` of the original. `task_label` and `session_label` are the
/// current run's values, already sanitised like the labels they are compared to.
pub fn classify_orphan(job: &Job, task_label: Option<&str>, session_label: Option<&str>) -> OrphanClass {
    let labels = job.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str).filter(|v| !v.is_empty());
    let (Some(orphan_task), Some(task)) = (label(LABEL_TASK_ID), task_label) else {
        return OrphanClass::BlockTaskUnknown;
    };
    if orphan_task != task {
        return OrphanClass::BlockTaskMismatch;
    }
    match (label(LABEL_SESSION_ID), session_label) {
        (Some(a), Some(b)) if a != b => OrphanClass::BlockSessionMismatch,
        _ => OrphanClass::Reattach,
    }
}

/// The Job to follow instead of creating one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReattachTarget {
    pub job_name: String,
    pub namespace: String,
    pub prior_run_id: Option<String>,
    pub image: String,
}

/// The guard's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Proceed,
    Reattach(ReattachTarget),
    Block { code: &'static str, message: String },
}

/// Decides from the listed Jobs (pure; the list call is the pipeline's).
pub fn decide(
    jobs: &[Job],
    run_id: &str,
    namespace: &str,
    reattach_enabled: bool,
    task_label: Option<&str>,
    session_label: Option<&str>,
) -> Verdict {
    let run_label = sanitize_label_value(run_id);
    let running: Vec<&Job> = jobs.iter().filter(|j| is_running(j)).collect();
    let job_run = |j: &Job| j.metadata.labels.as_ref().and_then(|l| l.get(LABEL_RUN_ID)).cloned();
    let (same_run, mut orphans): (Vec<&Job>, Vec<&Job>) =
        running.into_iter().partition(|j| job_run(j).is_some() && job_run(j) == run_label);

    if !orphans.is_empty() {
        if !reattach_enabled {
            return Verdict::Block {
                code: "k8s_concurrent_run_blocked",
                message: "Concurrent run blocked: orphaned Job(s) still running for this agent (reattach disabled)".into(),
            };
        }
        // Newest first: if several are reattachable, follow the latest.
        orphans.sort_by(|a, b| b.metadata.creation_timestamp.cmp(&a.metadata.creation_timestamp));
        let mut target = None;
        for job in &orphans {
            let name = job.metadata.name.clone().unwrap_or_default();
            match classify_orphan(job, task_label, session_label) {
                OrphanClass::BlockTaskUnknown => {
                    return Verdict::Block {
                        code: "k8s_orphan_task_unknown",
                        message: format!("Concurrent run blocked: orphaned Job {name} has unknown task context"),
                    };
                }
                OrphanClass::BlockTaskMismatch => {
                    return Verdict::Block {
                        code: "k8s_concurrent_run_blocked",
                        message: format!("Concurrent run blocked: orphaned Job {name} is running a different task"),
                    };
                }
                OrphanClass::BlockSessionMismatch => {
                    return Verdict::Block {
                        code: "k8s_orphan_session_mismatch",
                        message: format!("Concurrent run blocked: orphaned Job {name} has a mismatched session"),
                    };
                }
                OrphanClass::Reattach if target.is_none() => {
                    let image = job
                        .spec
                        .as_ref()
                        .and_then(|s| s.template.spec.as_ref())
                        .and_then(|s| s.containers.first())
                        .and_then(|c| c.image.clone())
                        .unwrap_or_else(|| "unknown".into());
                    target = Some(ReattachTarget {
                        job_name: name,
                        namespace: job.metadata.namespace.clone().unwrap_or_else(|| namespace.to_owned()),
                        prior_run_id: job_run(job),
                        image,
                    });
                }
                OrphanClass::Reattach => {}
            }
        }
        if let Some(t) = target {
            return Verdict::Reattach(t);
        }
    }
    if !same_run.is_empty() {
        let names: Vec<String> = same_run.iter().filter_map(|j| j.metadata.name.clone()).collect();
        return Verdict::Block {
            code: "k8s_concurrent_run_blocked",
            message: format!("Concurrent run blocked: Job {} is still running for this agent", names.join(", ")),
        };
    }
    Verdict::Proceed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(name: &str, labels: serde_json::Value, status: serde_json::Value, created: &str) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "labels": labels, "creationTimestamp": created},
            "spec": {"template": {"spec": {"containers": [{"name": "claude", "image": "img:1"}]}}},
            "status": status
        }))
        .unwrap()
    }

    fn labels(run: &str, task: Option<&str>, session: Option<&str>) -> serde_json::Value {
        let mut l = json!({"paperclip.io/run-id": run, "paperclip.io/agent-id": "a"});
        if let Some(t) = task {
            l["paperclip.io/task-id"] = json!(t);
        }
        if let Some(s) = session {
            l["paperclip.io/session-id"] = json!(s);
        }
        l
    }

    const T0: &str = "2026-01-01T00:00:00Z";

    #[test]
    fn no_jobs_proceeds() {
        assert_eq!(decide(&[], "r1", "ns", true, Some("t"), None), Verdict::Proceed);
    }

    #[test]
    fn finished_and_deleting_jobs_are_not_running() {
        let done = job("j1", labels("r0", Some("t"), None), json!({"conditions": [{"type": "Complete", "status": "True"}]}), T0);
        let failed = job("j2", labels("r0", Some("t"), None), json!({"conditions": [{"type": "Failed", "status": "True"}]}), T0);
        let mut deleting = job("j3", labels("r0", Some("t"), None), json!({}), T0);
        deleting.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        let false_cond = job("j4", labels("r0", Some("x"), None), json!({"conditions": [{"type": "Failed", "status": "False"}]}), T0);
        assert!(!is_running(&done) && !is_running(&failed) && !is_running(&deleting));
        assert!(is_running(&false_cond));
        assert_eq!(decide(&[done, failed, deleting], "r1", "ns", true, Some("t"), None), Verdict::Proceed);
    }

    #[test]
    fn orphan_with_reattach_disabled_blocks() {
        let j = job("j1", labels("r0", Some("t"), None), json!({}), T0);
        let v = decide(&[j], "r1", "ns", false, Some("t"), None);
        assert_eq!(
            v,
            Verdict::Block {
                code: "k8s_concurrent_run_blocked",
                message: "Concurrent run blocked: orphaned Job(s) still running for this agent (reattach disabled)".into()
            }
        );
    }

    #[test]
    fn orphan_classification() {
        let j = |task: Option<&str>, sess: Option<&str>| job("j1", labels("r0", task, sess), json!({}), T0);
        assert_eq!(classify_orphan(&j(None, None), Some("t"), None), OrphanClass::BlockTaskUnknown);
        assert_eq!(classify_orphan(&j(Some("t"), None), None, None), OrphanClass::BlockTaskUnknown);
        assert_eq!(classify_orphan(&j(Some("u"), None), Some("t"), None), OrphanClass::BlockTaskMismatch);
        assert_eq!(classify_orphan(&j(Some("t"), Some("s1")), Some("t"), Some("s2")), OrphanClass::BlockSessionMismatch);
        assert_eq!(classify_orphan(&j(Some("t"), Some("s1")), Some("t"), Some("s1")), OrphanClass::Reattach);
        assert_eq!(classify_orphan(&j(Some("t"), None), Some("t"), Some("s1")), OrphanClass::Reattach);
        assert_eq!(classify_orphan(&j(Some("t"), Some("s1")), Some("t"), None), OrphanClass::Reattach);
    }

    #[test]
    fn block_messages_name_the_orphan() {
        let v = decide(&[job("ac-x", labels("r0", None, None), json!({}), T0)], "r1", "ns", true, Some("t"), None);
        assert_eq!(
            v,
            Verdict::Block {
                code: "k8s_orphan_task_unknown",
                message: "Concurrent run blocked: orphaned Job ac-x has unknown task context".into()
            }
        );
        let v = decide(&[job("ac-y", labels("r0", Some("u"), None), json!({}), T0)], "r1", "ns", true, Some("t"), None);
        assert!(matches!(v, Verdict::Block { code: "k8s_concurrent_run_blocked", ref message } if message.contains("ac-y is running a different task")));
        let v = decide(&[job("ac-z", labels("r0", Some("t"), Some("a")), json!({}), T0)], "r1", "ns", true, Some("t"), Some("b"));
        assert!(matches!(v, Verdict::Block { code: "k8s_orphan_session_mismatch", ref message } if message.contains("ac-z has a mismatched session")));
    }

    #[test]
    fn newest_reattachable_orphan_is_the_target() {
        let old = job("old", labels("r-old", Some("t"), None), json!({}), "2026-01-01T00:00:00Z");
        let new = job("new", labels("r-new", Some("t"), None), json!({}), "2026-01-02T00:00:00Z");
        let v = decide(&[old, new], "r1", "ns", true, Some("t"), None);
        assert_eq!(
            v,
            Verdict::Reattach(ReattachTarget {
                job_name: "new".into(),
                namespace: "ns".into(),
                prior_run_id: Some("r-new".into()),
                image: "img:1".into()
            })
        );
    }

    #[test]
    fn same_run_still_running_blocks() {
        let v = decide(&[job("mine", labels("r1", Some("t"), None), json!({}), T0)], "r1", "ns", true, Some("t"), None);
        assert_eq!(
            v,
            Verdict::Block {
                code: "k8s_concurrent_run_blocked",
                message: "Concurrent run blocked: Job mine is still running for this agent".into()
            }
        );
    }
}
