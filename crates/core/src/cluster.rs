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
    let client = if config.proxy_url.is_none() && config.auth_info.exec.is_none() {
        nodelay_client(&config)
    } else {
        Client::try_from(config)
    }
    .map_err(ConnectError::Client)?;
    let cluster = Cluster { client, default_namespace, lists: Default::default() };
    CLUSTERS.lock().unwrap_or_else(|p| p.into_inner()).insert(key, cluster.clone());
    Ok(cluster)
}

/// kube's own client stack (kube-client's `make_generic_builder`: timeouts,
/// base URI, retry of 429/503/504, auth, extra headers, the `HTTP` spans)
/// over sockets with `TCP_NODELAY`, as every Go client of the apiserver has.
///
/// kube leaves Nagle's algorithm on. Then the first request on a new
/// connection is held until the apiserver acknowledges the client's TLS
/// Finished, which it delays: a new connection cost 40 ms more, every time,
/// on the real node's cluster (bench: completion; a TLS handshake there takes
/// 4 ms). A run opens several: its watches, each log read, requests made
/// side by side.
///
/// Left to kube's own builder: a proxy (its tunnel connectors), and an exec
/// plugin (whose client certificate's expiry kube tracks, privately).
fn nodelay_client(config: &Config) -> Result<Client, kube::Error> {
    use std::time::Duration;

    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;
    use kube::client::retry::RetryPolicy;
    use kube::client::{Body, ConfigExt};
    use tower::ServiceBuilder;
    use tower::retry::RetryLayer;
    use tower_http::classify::ServerErrorsFailureClass;
    use tower_http::trace::TraceLayer;
    use tracing::Span;

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = config.rustls_https_connector_with_connector(http)?;
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let client: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Builder::new(TokioExecutor::new()).build(connector);
    // The spans keep kube's target and names, so that `kube=debug` shows them as before.
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &http::Request<Body>| {
            tracing::debug_span!(
                target: "kube_client::client::builder",
                "HTTP",
                http.method = %req.method(),
                http.url = %req.uri(),
                http.status_code = tracing::field::Empty,
                otel.name = req.extensions().get::<&'static str>().unwrap_or(&"HTTP"),
                otel.kind = "client",
                otel.status_code = tracing::field::Empty,
            )
        })
        .on_request(|_: &http::Request<Body>, _: &Span| tracing::debug!(target: "kube_client::client::builder", "requesting"))
        .on_response(|res: &http::Response<hyper::body::Incoming>, _: Duration, span: &Span| {
            let status = res.status();
            span.record("http.status_code", status.as_u16());
            if status.is_client_error() || status.is_server_error() {
                span.record("otel.status_code", "ERROR");
            }
        })
        .on_body_chunk(())
        .on_eos(|_: Option<&http::HeaderMap>, _: Duration, _: &Span| tracing::debug!(target: "kube_client::client::builder", "stream closed"))
        .on_failure(|ec: ServerErrorsFailureClass, _: Duration, span: &Span| {
            span.record("otel.status_code", "ERROR");
            match ec {
                ServerErrorsFailureClass::StatusCode(status) => {
                    span.record("http.status_code", status.as_u16());
                    tracing::error!(target: "kube_client::client::builder", "failed with status {status}")
                }
                ServerErrorsFailureClass::Error(err) => tracing::error!(target: "kube_client::client::builder", "failed with error {err}"),
            }
        });
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.default_retry.then(|| RetryLayer::new(RetryPolicy::server_retry())))
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .layer(trace)
        .map_err(tower::BoxError::from)
        .service(client);
    Ok(Client::new(service, config.default_namespace.clone()))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// TCP_NODELAY of this process's socket whose local port is `port`.
    fn nodelay_of_local_port(port: u16) -> Option<bool> {
        for entry in std::fs::read_dir("/proc/self/fd").ok()? {
            let Ok(fd) = entry.ok()?.file_name().to_string_lossy().parse::<i32>() else { continue };
            // SAFETY: plain getsockname/getsockopt on a descriptor of our own
            // process, into buffers of the sizes passed; a descriptor that is
            // not a socket just fails.
            unsafe {
                let mut addr: libc::sockaddr_in = std::mem::zeroed();
                let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                if libc::getsockname(fd, (&raw mut addr).cast(), &mut len) != 0 || i32::from(addr.sin_family) != libc::AF_INET {
                    continue;
                }
                if u16::from_be(addr.sin_port) != port {
                    continue;
                }
                let mut on: libc::c_int = 0;
                let mut olen = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                if libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, (&raw mut on).cast(), &mut olen) == 0 {
                    return Some(on != 0);
                }
            }
        }
        None
    }

    async fn first_bytes(mut stream: tokio::net::TcpStream) -> tokio::net::TcpStream {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 64];
        assert!(stream.read(&mut buf).await.unwrap() > 0);
        stream
    }

    /// The connections the adapter opens to the apiserver do not wait on
    /// Nagle's algorithm (kube's own stack leaves it on).
    #[tokio::test]
    async fn connections_to_the_apiserver_have_nodelay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let nodelay = nodelay_client(&Config::new(url.parse().unwrap())).unwrap();
        let request = tokio::spawn(async move { nodelay.apiserver_version().await });
        let (server_side, peer) = listener.accept().await.unwrap();
        // The option is set once connected, before the request is written.
        first_bytes(server_side).await;
        assert_eq!(nodelay_of_local_port(peer.port()), Some(true));
        request.abort();
        // kube's own builder, for contrast: the check can tell the two apart.
        let plain = Client::try_from(Config::new(url.parse().unwrap())).unwrap();
        let request = tokio::spawn(async move { plain.apiserver_version().await });
        let (server_side, peer) = listener.accept().await.unwrap();
        first_bytes(server_side).await;
        assert_eq!(nodelay_of_local_port(peer.port()), Some(false));
        request.abort();
    }
}
