//! The kubelet endpoint the API server proxies `logs` and `exec` to: HTTPS on 127.0.0.1 with a
//! self-signed certificate (the API server does not verify a kubelet's certificate unless told
//! to), HTTP/1.1 only, since exec arrives as a WebSocket upgrade (`v4.channel.k8s.io`: each
//! binary message is a channel byte — 1 stdout, 2 stderr, 3 the final Status — then data).

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::{
        Path, RawQuery, State,
        ws::{Message, WebSocket, WebSocketUpgrade},
    },
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio_rustls::rustls;

use super::{Node, NodeError, container::Launch};

/// The running endpoint.
pub struct Server {
    port: u16,
}

impl Server {
    /// Binds a free port on 127.0.0.1 and serves until the emulator exits.
    pub async fn start(node: Arc<Node>) -> Result<Server, NodeError> {
        let tls_err = |e: &dyn std::fmt::Display| NodeError::Tls(e.to_string());
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .map_err(|e| tls_err(&e))?;
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).map_err(|e| tls_err(&e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_err(&e))?
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .map_err(|e| tls_err(&e))?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(NodeError::io("127.0.0.1:0"))?;
        let port = listener.local_addr().map_err(NodeError::io("127.0.0.1:0"))?.port();
        let app = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/containerLogs/{ns}/{pod}/{container}", get(logs))
            .route("/exec/{ns}/{pod}/{container}", get(exec).post(exec))
            .with_state(node);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Ok(Server { port })
    }

    /// Its port (the Node's `daemonEndpoints.kubeletEndpoint.Port`).
    pub fn port(&self) -> u16 {
        self.port
    }
}

fn params(q: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.unwrap_or_default().as_bytes()).into_owned().collect()
}

fn param<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

fn truthy(p: &[(String, String)], k: &str) -> bool {
    matches!(param(p, k), Some("1" | "true" | "True"))
}

/// `GET /containerLogs/{ns}/{pod}/{container}`: `tailLines`, `limitBytes`, `previous`, `follow`.
async fn logs(
    State(node): State<Arc<Node>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = params(q.as_deref());
    let Some(run) = node.pods.find(&ns, &pod) else {
        return (StatusCode::NOT_FOUND, format!("pod {ns}/{pod} does not run on this node")).into_response();
    };
    let Some(path) = run.log_path(&container, truthy(&p, "previous")) else {
        return (StatusCode::BAD_REQUEST, format!("container {container:?} of {ns}/{pod}: no such log"))
            .into_response();
    };
    let text = tokio::fs::read(&path).await.unwrap_or_default();
    let mut start = 0;
    if let Some(n) = param(&p, "tailLines").and_then(|n| n.parse::<usize>().ok()) {
        let body = text.strip_suffix(b"\n").unwrap_or(&text);
        start = memchr::memrchr_iter(b'\n', body).nth(n.saturating_sub(1)).map_or(0, |i| i + 1);
        if n == 0 {
            start = text.len();
        }
    }
    let limit = param(&p, "limitBytes").and_then(|n| n.parse::<usize>().ok()).unwrap_or(usize::MAX);
    let head = Bytes::copy_from_slice(&text[start..text.len().min(start.saturating_add(limit))]);
    if !truthy(&p, "follow") || head.len() >= limit {
        return head.into_response();
    }
    // Follow: what is there, then what is appended, until the container stops running.
    let offset = text.len() as u64;
    let stream = futures_util::stream::unfold(
        (Some(head), offset, run, container, path),
        |(head, mut off, run, c, path)| async move {
            if let Some(h) = head {
                return Some((Ok::<_, std::io::Error>(h), (None, off, run, c, path)));
            }
            loop {
                let running = run.running(&c);
                let mut f = tokio::fs::File::open(&path).await.ok()?;
                f.seek(std::io::SeekFrom::Start(off)).await.ok()?;
                let mut buf = Vec::new();
                f.read_to_end(&mut buf).await.ok()?;
                if !buf.is_empty() {
                    off += buf.len() as u64;
                    return Some((Ok(Bytes::from(buf)), (None, off, run, c, path)));
                }
                if !running {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        },
    );
    Body::from_stream(stream).into_response()
}

/// An exec command's argv: `inferbench results …` runs this node's program for the image (paths
/// under mounts rewritten by the caller). Anything else is refused (`None`): the endpoint has no
/// client authentication (loopback only), so it must not run arbitrary host programs, nor
/// inferbench commands that write where they are told.
pub fn map_exec(argv: Vec<String>, l: &Launch) -> Option<Vec<String>> {
    let mut argv = argv;
    let first = argv.first()?;
    if (first != "inferbench" && !first.ends_with("/inferbench")) || argv.get(1).map(String::as_str) != Some("results")
    {
        return None;
    }
    argv[0].clone_from(&l.argv[0]);
    Some(argv)
}

/// `/exec/{ns}/{pod}/{container}?command=…&output=1&error=1`, upgraded to a WebSocket.
async fn exec(
    State(node): State<Arc<Node>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let p = params(q.as_deref());
    let command: Vec<String> = p.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect();
    let Some(run) = node.pods.find(&ns, &pod) else {
        return (StatusCode::NOT_FOUND, format!("pod {ns}/{pod} does not run on this node")).into_response();
    };
    let launch = {
        let cs = run.containers.lock().expect("containers");
        cs.iter()
            .find(|c| c.name == container && matches!(c.state, super::pods::State::Running { .. }))
            .and_then(|c| c.launch.clone())
    };
    let Some(l) = launch else {
        return (StatusCode::BAD_REQUEST, format!("container {container:?} of {ns}/{pod} is not running"))
            .into_response();
    };
    // `inferbench results VERB DIR` with DIR inside one of the pod's volumes (and the one answer a
    // load worker's gate takes, whose name the command checks): nothing else of the host is
    // reachable through this endpoint.
    let gate_answer = command.len() == 8 && command[2] == "gate" && command[4] == "--open" && command[6] == "--answer";
    let in_volume = (command.len() == 4 || gate_answer)
        && l.mounts.iter().any(|(m, _)| {
            let m = m.trim_end_matches('/');
            command[3] == m || command[3].starts_with(&format!("{m}/"))
        });
    let argv: Vec<String> = command.iter().map(|a| super::container::rewrite_path(a, &l.mounts)).collect();
    let Some(argv) = map_exec(argv, &l).filter(|_| in_volume) else {
        return (
            StatusCode::FORBIDDEN,
            "exec: the inferbench node emulator runs only `inferbench results VERB DIR [--open NAME --answer TEXT]` with DIR in one of the pod's volumes",
        )
            .into_response();
    };
    let (out, err) = (truthy(&p, "output") || truthy(&p, "stdout"), truthy(&p, "error") || truthy(&p, "stderr"));
    let cwd = run.dir.clone();
    ws.protocols(["v4.channel.k8s.io", "channel.k8s.io"])
        .max_message_size(1 << 20)
        .on_upgrade(move |socket| run_exec(socket, argv, l, cwd, out, err))
}

async fn run_exec(mut ws: WebSocket, argv: Vec<String>, l: Launch, cwd: std::path::PathBuf, out: bool, err: bool) {
    let status = match exec_streams(&mut ws, &argv, &l, &cwd, out, err).await {
        Ok(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
        Ok(code) => serde_json::json!({"metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: {code}"), "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}}),
        Err(e) => {
            serde_json::json!({"metadata": {}, "status": "Failure", "message": e.to_string(), "reason": "InternalError"})
        }
    };
    let mut msg = vec![3u8];
    msg.extend(serde_json::to_vec(&status).unwrap_or_default());
    let _ = ws.send(Message::Binary(msg.into())).await;
    let _ = ws.send(Message::Close(None)).await;
}

/// Runs the command, sending its stdout and stderr as they come; returns its exit code.
async fn exec_streams(
    ws: &mut WebSocket,
    argv: &[String],
    l: &Launch,
    cwd: &std::path::Path,
    out: bool,
    err: bool,
) -> std::io::Result<i32> {
    use std::process::Stdio;
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .envs(&l.env)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(if out { Stdio::piped() } else { Stdio::null() })
        .stderr(if err { Stdio::piped() } else { Stdio::null() })
        .kill_on_drop(true)
        .spawn()?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    for (channel, pipe) in [
        (1u8, child.stdout.take().map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>)),
        (2u8, child.stderr.take().map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>)),
    ] {
        let Some(mut pipe) = pipe else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                let mut buf = vec![0u8; 64 * 1024 + 1];
                buf[0] = channel;
                match pipe.read(&mut buf[1..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        buf.truncate(n + 1);
                        if tx.send(buf).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    drop(tx);
    while let Some(msg) = rx.recv().await {
        if ws.send(Message::Binary(msg.into())).await.is_err() {
            // The client went away: stop the command.
            let _ = child.kill().await;
            return Err(std::io::Error::other("the client closed the stream"));
        }
    }
    let st = child.wait().await?;
    Ok(st.code().unwrap_or(1))
}
