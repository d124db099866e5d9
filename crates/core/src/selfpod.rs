//! What a Job inherits from the pod Paperclip itself runs in (contract §1.8):
//! image, pull secrets, DNS config, the PVC behind `/paperclip`, secret
//! volumes, literal env, `valueFrom` env and `envFrom`.
//!
//! No self pod (no `HOSTNAME`, or no such pod in the namespace) is not an
//! error: the Job is then built from config alone (off-cluster mode).

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};

use k8s_openapi::api::core::v1::{ConfigMap, EnvFromSource, EnvVar, LocalObjectReference, Pod, PodDNSConfig, Secret};
use kube::{Api, Client};

use crate::config::HostEnv;

/// A secret volume of the main container, re-mounted read-only in the Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVolume {
    pub volume_name: String,
    pub secret_name: String,
    pub mount_path: String,
    pub default_mode: Option<i32>,
}

/// `SelfPodInfo`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SelfPod {
    pub name: String,
    pub namespace: String,
    pub image: String,
    pub image_pull_secrets: Vec<LocalObjectReference>,
    pub dns_config: Option<PodDNSConfig>,
    pub pvc_claim_name: Option<String>,
    pub secret_volumes: Vec<SecretVolume>,
    /// Literal env of the main container, in order (empty values skipped).
    pub inherited_env: Vec<(String, String)>,
    pub inherited_env_value_from: Vec<EnvVar>,
    pub inherited_env_from: Vec<EnvFromSource>,
    /// The pod's labels: the egress policy selects Paperclip's pods by them.
    pub labels: BTreeMap<String, String>,
    /// The TCP ports the main container declares (what a Service forwards
    /// the API to, as a NetworkPolicy sees it).
    pub tcp_ports: Vec<i32>,
}

#[derive(Debug, thiserror::Error)]
pub enum SelfPodError {
    #[error("claude_k8s: pod {0} has no spec")]
    NoSpec(String),
    #[error("claude_k8s: pod {0} has no container image")]
    NoImage(String),
    #[error("claude_k8s: cannot read pod {name} in namespace {namespace}: {message}")]
    Read { name: String, namespace: String, message: String },
}

/// The namespace rule: `PAPERCLIP_NAMESPACE`, `POD_NAMESPACE`, the service
/// account's namespace file, then `default`.
pub fn own_namespace(env: &HostEnv) -> String {
    if let Some(ns) = env.non_blank("PAPERCLIP_NAMESPACE").or_else(|| env.non_blank("POD_NAMESPACE")) {
        return ns.trim().to_owned();
    }
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

impl SelfPod {
    /// Reads what the Job inherits from a pod object (pure).
    pub fn from_pod(pod: &Pod) -> Result<SelfPod, SelfPodError> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.as_ref().ok_or_else(|| SelfPodError::NoSpec(name.clone()))?;
        let main = spec
            .containers
            .iter()
            .find(|c| c.name == "paperclip")
            .or_else(|| spec.containers.first())
            .ok_or_else(|| SelfPodError::NoImage(name.clone()))?;
        let image = main.image.clone().filter(|i| !i.is_empty()).ok_or_else(|| SelfPodError::NoImage(name.clone()))?;
        let volumes = spec.volumes.as_deref().unwrap_or_default();
        let mounts = main.volume_mounts.as_deref().unwrap_or_default();
        let pvc_claim_name = mounts
            .iter()
            .find(|m| m.mount_path.trim_end_matches('/') == "/paperclip")
            .and_then(|m| volumes.iter().find(|v| v.name == m.name))
            .and_then(|v| v.persistent_volume_claim.as_ref())
            .map(|p| p.claim_name.clone());
        let secret_volumes = mounts
            .iter()
            // The server's own ServiceAccount token, where the cluster still
            // mounts it as a Secret volume (`<account>-token-xxxxx`, before
            // 1.22's projected tokens): it carries the adapter's RBAC — jobs,
            // secrets, pods/log. Never the agent's; the Job pod's own token is
            // `automountServiceAccountToken`'s (and `serviceAccountName`'s) call.
            .filter(|m| !is_service_account_mount(&m.mount_path))
            .filter_map(|m| {
                let v = volumes.iter().find(|v| v.name == m.name)?;
                let s = v.secret.as_ref()?;
                Some(SecretVolume {
                    volume_name: v.name.clone(),
                    secret_name: s.secret_name.clone().unwrap_or_default(),
                    mount_path: m.mount_path.clone(),
                    default_mode: s.default_mode,
                })
            })
            .collect();
        let mut inherited_env = Vec::new();
        let mut inherited_env_value_from = Vec::new();
        for e in main.env.as_deref().unwrap_or_default() {
            if e.value_from.is_some() {
                inherited_env_value_from.push(e.clone());
            } else if let Some(v) = e.value.as_ref().filter(|v| !v.is_empty()) {
                inherited_env.push((e.name.clone(), v.clone()));
            }
        }
        Ok(SelfPod {
            name,
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            image,
            image_pull_secrets: spec.image_pull_secrets.clone().unwrap_or_default(),
            dns_config: spec.dns_config.clone(),
            pvc_claim_name,
            secret_volumes,
            inherited_env,
            inherited_env_value_from,
            inherited_env_from: main.env_from.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            tcp_ports: main
                .ports
                .as_deref()
                .unwrap_or_default()
                .iter()
                .filter(|p| p.protocol.as_deref().is_none_or(|pr| pr == "TCP"))
                .map(|p| p.container_port)
                .collect(),
        })
    }
}

/// Reads the pod named by `HOSTNAME`. `Ok(None)` = off-cluster mode.
pub async fn discover(client: &Client, env: &HostEnv) -> Result<Option<SelfPod>, SelfPodError> {
    let Some(name) = env.non_blank("HOSTNAME") else { return Ok(None) };
    let namespace = own_namespace(env);
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    match api.get_opt(name).await {
        Ok(Some(pod)) => {
            let mut p = SelfPod::from_pod(&pod)?;
            if p.namespace.is_empty() {
                p.namespace = namespace;
            }
            Ok(Some(p))
        }
        Ok(None) => Ok(None),
        // Forbidden to read pods: behave as off-cluster rather than fail every run.
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
        Err(e) => Err(SelfPodError::Read {
            name: name.to_owned(),
            namespace,
            message: crate::cluster::describe_error(&e),
        }),
    }
}

/// Where the kubelet mounts a pod's ServiceAccount token (and what lies under it).
fn is_service_account_mount(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    ["/var/run/secrets/kubernetes.io", "/run/secrets/kubernetes.io"].iter().any(|d| p == *d || p.starts_with(&format!("{d}/")))
}

/// The keys behind the self pod's `envFrom` sources and secret volumes, read
/// for each run in the Job's namespace (what its pod would resolve), so that
/// a server secret among them can be held back key by key. Keys only: the
/// values are dropped as soon as the object is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceKeys {
    /// One per `envFrom` entry, in order: its keys, or why they could not be read.
    pub env_from: Vec<Result<Vec<String>, String>>,
    /// Per secret volume name: the Secret's keys, or why they could not be read.
    pub volumes: BTreeMap<String, Result<Vec<String>, String>>,
    /// The server's state on the inherited PVC, to be hidden from the agent
    /// ([`crate::withhold::server_state`], read from the host's side of the volume).
    pub server_state: crate::withhold::ServerState,
}

fn keys_of_secret(s: Secret) -> Vec<String> {
    let mut keys: Vec<String> = s.data.unwrap_or_default().into_keys().collect();
    keys.extend(s.string_data.unwrap_or_default().into_keys());
    keys.sort();
    keys.dedup();
    keys
}

fn keys_of_config_map(m: ConfigMap) -> Vec<String> {
    let mut keys: Vec<String> = m.data.unwrap_or_default().into_keys().collect();
    keys.extend(m.binary_data.unwrap_or_default().into_keys());
    keys.sort();
    keys.dedup();
    keys
}

/// Reads [`SourceKeys`]. A source that is missing and optional has no keys;
/// one that cannot be read (missing and required, forbidden, …) says why,
/// and the Job gets none of it.
pub async fn read_source_keys(client: &Client, namespace: &str, pod: &SelfPod) -> SourceKeys {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let why = |kind: &str, name: &str, e: &kube::Error| format!("{kind} {name}: {}", crate::cluster::describe_error(e));
    let mut out = SourceKeys::default();
    for ef in &pod.inherited_env_from {
        let read = if let Some(r) = &ef.secret_ref {
            match secrets.get_opt(&r.name).await {
                Ok(Some(s)) => Ok(keys_of_secret(s)),
                Ok(None) if r.optional == Some(true) => Ok(Vec::new()),
                Ok(None) => Err(format!("Secret {} not found", r.name)),
                Err(e) => Err(why("Secret", &r.name, &e)),
            }
        } else if let Some(r) = &ef.config_map_ref {
            match maps.get_opt(&r.name).await {
                Ok(Some(m)) => Ok(keys_of_config_map(m)),
                Ok(None) if r.optional == Some(true) => Ok(Vec::new()),
                Ok(None) => Err(format!("ConfigMap {} not found", r.name)),
                Err(e) => Err(why("ConfigMap", &r.name, &e)),
            }
        } else {
            Ok(Vec::new())
        };
        out.env_from.push(read);
    }
    for sv in &pod.secret_volumes {
        let read = match secrets.get_opt(&sv.secret_name).await {
            Ok(Some(s)) => Ok(keys_of_secret(s)),
            // Mounted `optional: true`, as the Job always has: nothing to mount.
            Ok(None) => Ok(Vec::new()),
            Err(e) => Err(why("Secret", &sv.secret_name, &e)),
        };
        out.volumes.insert(sv.volume_name.clone(), read);
    }
    out
}

/// `(kubeconfig, HOSTNAME)` → the discovered pod. Only successes are cached
/// (the original's rule), so a transient failure is retried next run.
type CacheKey = (String, String);
static CACHE: LazyLock<Mutex<HashMap<CacheKey, Option<SelfPod>>>> = LazyLock::new(Default::default);

/// [`discover`], cached after the first success.
pub async fn cached_discover(client: &Client, env: &HostEnv, kubeconfig: Option<&str>) -> Result<Option<SelfPod>, SelfPodError> {
    let key = (kubeconfig.unwrap_or_default().to_owned(), env.get("HOSTNAME").unwrap_or_default().to_owned());
    if let Some(hit) = CACHE.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(hit.clone());
    }
    let found = discover(client, env).await?;
    CACHE.lock().unwrap_or_else(|p| p.into_inner()).insert(key, found.clone());
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "paperclip-0", "namespace": "pc"},
            "spec": {
                "imagePullSecrets": [{"name": "regcred"}],
                "dnsConfig": {"options": [{"name": "ndots", "value": "2"}]},
                "containers": [
                    {"name": "sidecar", "image": "side:1"},
                    {"name": "paperclip", "image": "paperclip:2",
                     "env": [{"name": "A", "value": "1"}, {"name": "EMPTY", "value": ""},
                             {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                     "envFrom": [{"secretRef": {"name": "paperclip-secrets"}}],
                     "volumeMounts": [{"name": "data", "mountPath": "/paperclip"},
                                      {"name": "creds", "mountPath": "/etc/creds"},
                                      {"name": "cache", "mountPath": "/cache"},
                                      // As 1.20's ServiceAccount admission adds it: the server's token.
                                      {"name": "default-token-hhz54", "readOnly": true,
                                       "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}
                ],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": "paperclip-data"}},
                    {"name": "creds", "secret": {"secretName": "creds-secret", "defaultMode": 256}},
                    {"name": "cache", "emptyDir": {}},
                    {"name": "default-token-hhz54", "secret": {"secretName": "default-token-hhz54", "defaultMode": 420}}
                ]
            }
        }))
        .unwrap()
    }

    #[test]
    fn reads_what_the_job_inherits() {
        let p = SelfPod::from_pod(&pod()).unwrap();
        assert_eq!(p.namespace, "pc");
        assert_eq!(p.image, "paperclip:2");
        assert_eq!(p.image_pull_secrets[0].name, "regcred");
        assert!(p.dns_config.is_some());
        assert_eq!(p.pvc_claim_name.as_deref(), Some("paperclip-data"));
        assert_eq!(
            p.secret_volumes,
            vec![SecretVolume {
                volume_name: "creds".into(),
                secret_name: "creds-secret".into(),
                mount_path: "/etc/creds".into(),
                default_mode: Some(256)
            }]
        );
        // (the server's ServiceAccount token volume is not among them)
        assert_eq!(p.inherited_env, vec![("A".to_owned(), "1".to_owned())]);
        assert_eq!(p.inherited_env_value_from.len(), 1);
        assert_eq!(p.inherited_env_from.len(), 1);
    }

    #[test]
    fn the_service_account_directory_is_never_inherited() {
        for p in ["/var/run/secrets/kubernetes.io/serviceaccount", "/run/secrets/kubernetes.io/serviceaccount/", "/var/run/secrets/kubernetes.io"] {
            assert!(is_service_account_mount(p), "{p}");
        }
        for p in ["/var/run/secrets/other", "/var/run/secrets/kubernetes.iox", "/etc/creds"] {
            assert!(!is_service_account_mount(p), "{p}");
        }
    }

    #[test]
    fn first_container_without_paperclip_and_errors() {
        let mut p = pod();
        p.spec.as_mut().unwrap().containers.remove(1);
        assert_eq!(SelfPod::from_pod(&p).unwrap().image, "side:1");
        p.spec.as_mut().unwrap().containers[0].image = None;
        assert_eq!(SelfPod::from_pod(&p).unwrap_err().to_string(), "claude_k8s: pod paperclip-0 has no container image");
        p.spec = None;
        assert_eq!(SelfPod::from_pod(&p).unwrap_err().to_string(), "claude_k8s: pod paperclip-0 has no spec");
    }

    #[test]
    fn namespace_rule() {
        assert_eq!(own_namespace(&HostEnv::from_pairs([("PAPERCLIP_NAMESPACE", "a"), ("POD_NAMESPACE", "b")])), "a");
        assert_eq!(own_namespace(&HostEnv::from_pairs([("POD_NAMESPACE", "b")])), "b");
    }
}
