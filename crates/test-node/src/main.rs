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
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { kubeconfig: None, node_name: "local-node".into(), run_dir: "/tmp/claude-k8s-node".into(), path_prefix: String::new() };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--kubeconfig" => a.kubeconfig = Some(val()?),
            "--node-name" => a.node_name = val()?,
            "--run-dir" => a.run_dir = val()?.into(),
            "--path-prefix" => a.path_prefix = val()?,
            "-h" | "--help" => {
                println!("claude-k8s-test-node --kubeconfig FILE --node-name NAME --run-dir DIR --path-prefix DIR");
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
