//! Fault hooks for the tests, on plain HTTP at 127.0.0.1:
//! - `POST /faults/cut-logs {"namespace","pod","container","afterBytes"?,"everySeconds"?}`:
//!   every log stream of that container (current and future; `pod` may be a
//!   prefix, e.g. a Job's name) ends after N bytes or N seconds — with
//!   `"midLine": true`, N seconds and then half-way through the next line's
//!   record. The stream ends cleanly (kube-apiserver passes that on as the
//!   clean end of our response, as when its leg to a kubelet breaks);
//! - `POST /faults/rotate-logs {"namespace","pod","container"?,"maxBytes"}`:
//!   containers started from now on have their log file rotated whenever it
//!   reaches N bytes (the kubelet's `containerLogMaxSize`, checked at every
//!   write instead of every 10 s);
//! - `POST /faults/oom {"namespace","pod","container"?}`: SIGKILL the container,
//!   reported as `OOMKilled`, exit 137;
//! - `POST /faults/oom-beside {"namespace","pod","container"?}`: the container's
//!   exit is reported `OOMKilled` with its own exit code (cgroup v1, when the
//!   OOM killer took another of its processes);
//! - `POST /faults/evict {"namespace","pod"}`: evict the pod as a kubelet under
//!   memory pressure does (containers killed, `Failed`/`Evicted`, the
//!   `DisruptionTarget` condition from 1.26; the pod object stays);
//! - `POST /faults/stop-heartbeat`: the node goes silent: no node or pod status
//!   updates, no logs served (its containers keep running, as on a partitioned node);
//! - `POST /faults/clear`; `GET /pods`: what runs.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::runner::NodeState;

/// How a log stream of one container is cut.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cut {
    pub after_bytes: Option<u64>,
    pub every: Option<Duration>,
    /// After `every`, cut half-way through the next record.
    pub mid_line: bool,
}

#[derive(Default)]
pub struct Faults {
    cuts: Mutex<HashMap<(String, String, String), Cut>>,
    rotations: Mutex<HashMap<(String, String, String), u64>>,
    silent: AtomicBool,
}

impl Faults {
    pub fn cut_for(&self, ns: &str, pod: &str, container: &str) -> Cut {
        // The key's pod may be a prefix (a Job's name): its pods' names are unknown in advance.
        let cuts = self.cuts.lock().unwrap_or_else(|p| p.into_inner());
        cuts.iter()
            .find(|((n, p, c), _)| n == ns && pod.starts_with(p.as_str()) && c == container)
            .map(|(_, cut)| *cut)
            .unwrap_or_default()
    }

    /// The size at which the container's log file is rotated (0: never).
    pub fn rotation_for(&self, ns: &str, pod: &str, container: &str) -> u64 {
        let rotations = self.rotations.lock().unwrap_or_else(|p| p.into_inner());
        rotations.iter().find(|((n, p, c), _)| n == ns && pod.starts_with(p.as_str()) && c == container).map_or(0, |(_, b)| *b)
    }

    pub fn heartbeat_stopped(&self) -> bool {
        self.silent.load(Ordering::SeqCst)
    }
}

fn reply(code: StatusCode, v: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .expect("static response")
}

pub async fn serve(state: Arc<NodeState>) -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else { continue };
            let state = state.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(state, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(sock), svc).await;
            });
        }
    });
    Ok(port)
}

async fn handle(state: Arc<NodeState>, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST, json!({"error": "bad body"})),
    };
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    match (method.as_str(), path.as_str()) {
        ("GET", "/pods") => reply(StatusCode::OK, state.describe()),
        ("POST", "/faults/cut-logs") => {
            let cut = Cut {
                after_bytes: v.get("afterBytes").and_then(Value::as_u64),
                every: v.get("everySeconds").and_then(Value::as_f64).map(Duration::from_secs_f64),
                mid_line: v.get("midLine").and_then(Value::as_bool).unwrap_or(false),
            };
            let container = if s("container").is_empty() { "claude".to_owned() } else { s("container") };
            state.faults.cuts.lock().unwrap_or_else(|p| p.into_inner()).insert((s("namespace"), s("pod"), container), cut);
            reply(StatusCode::OK, json!({"ok": true}))
        }
        ("POST", "/faults/rotate-logs") => {
            let container = if s("container").is_empty() { "claude".to_owned() } else { s("container") };
            let Some(bytes) = v.get("maxBytes").and_then(Value::as_u64) else {
                return reply(StatusCode::BAD_REQUEST, json!({"error": "maxBytes required"}));
            };
            state.faults.rotations.lock().unwrap_or_else(|p| p.into_inner()).insert((s("namespace"), s("pod"), container), bytes);
            reply(StatusCode::OK, json!({"ok": true}))
        }
        ("POST", "/faults/oom") => {
            let container = if s("container").is_empty() { "claude".to_owned() } else { s("container") };
            match state.oom_kill(&s("namespace"), &s("pod"), &container) {
                true => reply(StatusCode::OK, json!({"ok": true})),
                false => reply(StatusCode::NOT_FOUND, json!({"error": "no such running container"})),
            }
        }
        ("POST", "/faults/oom-beside") => {
            let container = if s("container").is_empty() { "claude".to_owned() } else { s("container") };
            match state.oom_beside(&s("namespace"), &s("pod"), &container) {
                true => reply(StatusCode::OK, json!({"ok": true})),
                false => reply(StatusCode::NOT_FOUND, json!({"error": "no such running container"})),
            }
        }
        ("POST", "/faults/evict") => match state.evict(&s("namespace"), &s("pod")) {
            Ok(()) => reply(StatusCode::OK, json!({"ok": true})),
            Err(e) => reply(StatusCode::NOT_FOUND, json!({"error": e})),
        },
        ("POST", "/faults/stop-heartbeat") => {
            state.faults.silent.store(true, Ordering::SeqCst);
            reply(StatusCode::OK, json!({"ok": true}))
        }
        ("POST", "/faults/clear") => {
            if state.faults.silent.swap(false, Ordering::SeqCst) {
                state.resync().await;
            }
            state.faults.cuts.lock().unwrap_or_else(|p| p.into_inner()).clear();
            state.faults.rotations.lock().unwrap_or_else(|p| p.into_inner()).clear();
            reply(StatusCode::OK, json!({"ok": true}))
        }
        _ => reply(StatusCode::NOT_FOUND, json!({"error": "unknown route"})),
    }
}
