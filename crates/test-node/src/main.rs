//! claude-k8s-test-node: a test-only Kubernetes node for the local cluster.
//!
//! It registers a Ready Node, runs the containers of every pod scheduled to
//! it as real processes (own mount namespace, volumes bind-mounted, env, uid),
//! reports their real exit codes and timings through `pods/status`, serves
//! the kubelet log endpoint the apiserver proxies `pods/log` to, and exposes
//! fault hooks for the tests. It survives apiserver restarts (watches
//! re-list), and one bad pod never takes it down.

mod control;
mod logfile;
mod logserver;
mod node;
mod runner;

use std::path::PathBuf;
use std::sync::Arc;

use tracing_subscriber::EnvFilter;

pub struct Args {
    pub kubeconfig: Option<String>,
    pub node_name: String,
    pub run_dir: PathBuf,
    pub path_prefix: String,
    /// The kubelet release this node plays (`v1.37.2`): reported in the
    /// Node's `nodeInfo`, and it decides which of the newer kubelet
    /// behaviours the node shows (see [`KubeletVersion`]).
    pub kubelet_version: KubeletVersion,
}

/// The kubelet release the node behaves as. The node must look to the
/// control plane like the kubelet of the version it serves: a 1.20
/// apiserver has never heard of some conditions a 1.37 kubelet posts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeletVersion {
    pub git: String,
    pub minor: u32,
}

impl KubeletVersion {
    fn parse(s: &str) -> Result<Self, String> {
        let bad = || format!("--kubelet-version {s}: expected v1.<minor>.<patch>");
        let rest = s.strip_prefix("v1.").ok_or_else(bad)?;
        let minor = rest.split('.').next().and_then(|m| m.parse().ok()).ok_or_else(bad)?;
        Ok(KubeletVersion { git: s.to_owned(), minor })
    }

    /// `PodReadyToStartContainers` (beta, on by default, from 1.29).
    pub fn ready_to_start_condition(&self) -> bool {
        self.minor >= 29
    }

    /// `status.observedGeneration` on the pod and its conditions (beta, on by default, from 1.34).
    pub fn observed_generation(&self) -> bool {
        self.minor >= 34
    }

    /// The `DisruptionTarget` condition on a pod the kubelet evicts (GA in 1.31, on since 1.26).
    pub fn disruption_condition(&self) -> bool {
        self.minor >= 26
    }
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        kubeconfig: None,
        node_name: "local-node".into(),
        run_dir: "/tmp/claude-k8s-node".into(),
        path_prefix: String::new(),
        kubelet_version: KubeletVersion::parse("v1.37.2")?,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--kubeconfig" => a.kubeconfig = Some(val()?),
            "--node-name" => a.node_name = val()?,
            "--run-dir" => a.run_dir = val()?.into(),
            "--path-prefix" => a.path_prefix = val()?,
            "--kubelet-version" => a.kubelet_version = KubeletVersion::parse(&val()?)?,
            "-h" | "--help" => {
                println!("claude-k8s-test-node --kubeconfig FILE --node-name NAME --run-dir DIR --path-prefix DIR [--kubelet-version v1.37.2]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

async fn client(kubeconfig: Option<&str>) -> Result<kube::Client, String> {
    let config = match kubeconfig {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p).map_err(|e| e.to_string())?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.map_err(|e| e.to_string())?
        }
        None => kube::Config::infer().await.map_err(|e| e.to_string())?,
    };
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("claude-k8s-test-node: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args).await {
        eprintln!("claude-k8s-test-node: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.run_dir).map_err(|e| e.to_string())?;
    let client = client(args.kubeconfig.as_deref()).await?;
    let state = Arc::new(runner::NodeState::new(client.clone(), &args));
    let log_port = logserver::serve(state.clone()).await?;
    let control_port = control::serve(state.clone()).await?;
    std::fs::write(
        args.run_dir.join("control.json"),
        serde_json::json!({"port": control_port, "logPort": log_port}).to_string(),
    )
    .map_err(|e| e.to_string())?;
    tracing::info!(log_port, control_port, "serving");
    let registration = tokio::spawn(node::keep_registered(state.clone(), log_port));
    let pods = tokio::spawn(runner::run_pods(state.clone()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("stopping: killing every container");
    registration.abort();
    pods.abort();
    state.kill_all();
    Ok(())
}
