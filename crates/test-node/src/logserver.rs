//! The kubelet's log endpoint, over HTTPS with a self-signed certificate (the
//! apiserver does not verify it): `GET /containerLogs/{ns}/{pod}/{container}`
//! honouring `follow`, `timestamps`, `sinceTime`, `sinceSeconds`, `tailLines`
//! and `limitBytes`, as `ReadLogs` (`k8s.io/cri-client@v0.37.2/pkg/logs`)
//! does: one timestamp per logical line (see [`Writer`]), `sinceTime` per
//! record, and a request reads the current file only; a followed read goes
//! on into the new file after a rotation. A followed stream ends when the
//! container has exited and its file is drained — or earlier, when a
//! `cut-logs` fault says so (then cleanly, possibly in mid-line).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};
use tokio::net::TcpListener;

use crate::logfile::{LogQuery, Writer, count_records, parse_record};
use crate::runner::NodeState;

type Body = BoxBody<Bytes, std::io::Error>;

fn text(code: StatusCode, msg: &str) -> Response<Body> {
    let body = Full::new(Bytes::from(msg.to_owned())).map_err(|never: Infallible| match never {}).boxed();
    Response::builder().status(code).body(body).expect("static response")
}

fn tls_config() -> Result<Arc<tokio_rustls::rustls::ServerConfig>, String> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).map_err(|e| e.to_string())?;
    let key = tokio_rustls::rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).map_err(|e| e.to_string())?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

/// Starts the server on 127.0.0.1:0; returns its port.
pub async fn serve(state: Arc<NodeState>) -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls_config()?);
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            let state = state.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(sock).await else { return };
                let svc = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(state, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
            });
        }
    });
    Ok(port)
}

async fn handle(state: Arc<NodeState>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let query = LogQuery::parse(req.uri().query().unwrap_or_default());
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["containerLogs", ns, pod, container] = parts.as_slice() else {
        return text(StatusCode::NOT_FOUND, "not found");
    };
    if state.faults.heartbeat_stopped() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "node is not responding");
    }
    let Some(log) = state.container_log(ns, pod, container) else {
        return text(StatusCode::NOT_FOUND, &format!("container \"{container}\" in pod \"{pod}\" is not running"));
    };
    let cut = state.faults.cut_for(ns, pod, container);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    tokio::spawn(async move {
        let _ = stream_log(log, query, cut, tx).await;
    });
    let body = StreamBody::new(tokio_stream_from(rx)).boxed();
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain")
        .body(body)
        .expect("static response")
}

fn tokio_stream_from(
    rx: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Frame<Bytes>, std::io::Error>> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

/// Writes matching records to `tx`; follows the file while the container runs.
async fn stream_log(
    log: Arc<crate::logfile::ContainerLog>,
    q: LogQuery,
    cut: crate::control::Cut,
    tx: tokio::sync::mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>,
) -> Result<(), ()> {
    let mut generation = log.generation();
    let file = tokio::fs::File::open(&log.path).await.map_err(|_| ())?;
    let skip = match q.tail_lines {
        Some(n) => count_records(&log.path).await.saturating_sub(n),
        None => 0,
    };
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut writer = Writer::new(q.timestamps, q.since);
    let mut seen = 0u64;
    let mut sent = 0u64;
    let started = Instant::now();
    let mut rec = Vec::new();
    let mut pos = 0u64;
    let mut out = Vec::with_capacity(1 << 16);
    // A mid-line cut is due: the next record is sent half and the stream ends.
    let mut cut_next = false;
    // The file was rotated and has been read to its end once since.
    let mut old_file_drained = false;
    loop {
        rec.clear();
        // Register for wake-ups before reading, so a write between our EOF and the wait is not missed.
        let notified = log.notify.notified();
        let finished_before = log.finished.load(Ordering::SeqCst);
        let rotated_before = log.generation() != generation;
        let n = reader.read_until(b'\n', &mut rec).await.map_err(|_| ())?;
        if n > 0 && rec.last() == Some(&b'\n') {
            pos += n as u64;
            seen += 1;
            if seen <= skip {
                continue;
            }
            let Some(r) = parse_record(&rec) else { continue };
            let mut chunk = writer.render(&r);
            if chunk.is_empty() {
                continue;
            }
            if let Some(limit) = q.limit_bytes {
                let room = limit.saturating_sub(sent) as usize;
                chunk.truncate(room);
            }
            if let Some(after) = cut.after_bytes {
                let room = after.saturating_sub(sent) as usize;
                chunk.truncate(room);
            }
            let cut_here = cut_next && chunk.len() >= 2;
            if cut_here {
                chunk.truncate(chunk.len() / 2);
            }
            sent += chunk.len() as u64;
            out.extend_from_slice(&chunk);
            let limit_hit = q.limit_bytes.is_some_and(|l| sent >= l) || cut.after_bytes.is_some_and(|a| sent >= a) || cut_here;
            if out.len() >= 1 << 16 || limit_hit {
                tx.send(Ok(Frame::data(Bytes::from(std::mem::take(&mut out))))).await.map_err(|_| ())?;
            }
            if limit_hit {
                return Ok(());
            }
            if cut.every.is_some_and(|d| started.elapsed() >= d) {
                if !cut.mid_line {
                    break;
                }
                cut_next = true;
            }
            continue;
        }
        // At EOF (or a half-written record: rewind to its start and wait).
        if n > 0 {
            reader.seek(std::io::SeekFrom::Start(pos)).await.map_err(|_| ())?;
        }
        if !out.is_empty() {
            tx.send(Ok(Frame::data(Bytes::from(std::mem::take(&mut out))))).await.map_err(|_| ())?;
        }
        if q.follow && rotated_before && n == 0 {
            // Nothing goes to the old file after a rotation: once read to
            // its end after seeing the rotation, go on in the new one.
            if old_file_drained {
                let Ok(file) = tokio::fs::File::open(&log.path).await else { break };
                generation = log.generation();
                reader = BufReader::with_capacity(1 << 16, file);
                (pos, old_file_drained) = (0, false);
            } else {
                old_file_drained = true;
            }
            continue;
        }
        if !q.follow || finished_before {
            break;
        }
        let wait = match cut.every {
            Some(d) if !cut_next => d.saturating_sub(started.elapsed()).min(Duration::from_millis(200)),
            _ => Duration::from_millis(200),
        };
        let _ = tokio::time::timeout(wait, notified).await;
        if !cut.mid_line && cut.every.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if cut.mid_line && cut.every.is_some_and(|d| started.elapsed() >= d) {
            cut_next = true;
        }
    }
    if !out.is_empty() {
        let _ = tx.send(Ok(Frame::data(Bytes::from(out)))).await;
    }
    Ok(())
}
