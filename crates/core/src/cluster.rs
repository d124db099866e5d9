//! The connection to the apiserver: one kube [`Client`] per kubeconfig,
//! created on first use and kept for the process (a Client is a cheap,
//! cloneable handle over one connection pool).
//!
//! `config.kubeconfig` names a file; without it we use kube's inference
//! (`KUBECONFIG`, `~/.kube/config`, then the in-cluster service account),
//! a superset of the original's in-cluster-only default.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// A connected client and the namespace its configuration defaults to.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// Whether this apiserver serves streaming lists (learned by the first watch).
    pub lists: std::sync::Arc<crate::watch::ListSupport>,
    /// The kubeconfig context's namespace, or the service account's, or `default`.
    pub default_namespace: String,
}

/// Why we could not even build a client.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig { path: String, source: kube::config::KubeconfigError },
    #[error("no Kubernetes configuration found (not in a cluster, no KUBECONFIG): {0}")]
    Infer(kube::config::InferConfigError),
    #[error("cannot create a Kubernetes client: {0}")]
    Client(kube::Error),
}

static CLUSTERS: LazyLock<Mutex<HashMap<String, Cluster>>> = LazyLock::new(Default::default);

/// The client for `kubeconfig` (`None` = inferred), cached.
pub async fn connect(kubeconfig: Option<&str>) -> Result<Cluster, ConnectError> {
    let key = kubeconfig.unwrap_or_default().to_owned();
    if let Some(c) = CLUSTERS.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(c.clone());
    }
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|source| ConnectError::Kubeconfig { path: path.to_owned(), source })?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|source| ConnectError::Kubeconfig { path: path.to_owned(), source })?
        }
        None => Config::infer().await.map_err(ConnectError::Infer)?,
    };
    let default_namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(ConnectError::Client)?;
    let cluster = Cluster { client, default_namespace, lists: Default::default() };
    CLUSTERS.lock().unwrap_or_else(|p| p.into_inner()).insert(key, cluster.clone());
    Ok(cluster)
}

/// A short, secret-free description of an apiserver error for messages.
pub fn describe_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

/// True when the apiserver said 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}
