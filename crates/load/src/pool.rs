//! Keep-alive HTTP/1 connections to one server, each driven by the request that holds it.
//!
//! A pooled client (hyper-util's) runs every connection as a task of its own: a request hands its
//! message to that task and waits for the answer to be handed back, two or three task wake-ups per
//! request, each one a chance to wake the other worker thread. Here a request takes an idle
//! connection (or opens one), drives it itself while it sends and reads ([`Conn::drive`]), and puts
//! it back when the answer is read to its end: no connection task, and the wakes between the
//! request and its connection stay inside one poll of one task. Measured against hyper-util's pool
//! at 20 000 req/s on two cores: 2.5-3.5 % less client CPU, and fewer late arrivals at 24 000 req/s
//! (most of the client's context switches came from the pacer's wakes: see [`super::pacer`]).

use std::{
    future::Future,
    pin::{Pin, pin},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering::SeqCst},
    },
    task::{Context, Poll, Wake, Waker},
    time::Duration,
};

use futures_util::task::AtomicWaker;
use http_body_util::Full;
use hyper::{
    Request, Response,
    body::{Bytes, Incoming},
    client::conn::http1::{self, Connection, SendRequest},
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The request body every request has (a whole JSON document).
type Body = Full<Bytes>;
/// A connection's state machine.
type Io = Connection<TokioIo<TcpStream>, Body>;

/// Idle keep-alive connections to one `host:port`.
pub struct Pool {
    authority: String,
    /// Local addresses new connections are made from, in turn (empty: the kernel's choice). The
    /// kernel has one range of ephemeral ports (~28 000) per local address towards one server
    /// address: N addresses, N times the connections.
    sources: Vec<std::net::IpAddr>,
    next_source: std::sync::atomic::AtomicUsize,
    /// Most recently used last: a request takes the warmest connection, and the ones at the
    /// bottom are those a server may have closed for idleness.
    idle: Mutex<Vec<Conn>>,
}

/// One connection: the handle requests are sent on and the connection's state machine, which
/// only moves while someone polls it.
pub struct Conn {
    send: SendRequest<Body>,
    /// `None` once the connection has ended (closed by the server, or broken). Boxed: it is
    /// ~1 KB, and a request's future, which holds its connection, is moved whole when spawned.
    io: Option<Box<Io>>,
    turn: Arc<Turn>,
    waker: Waker,
}

impl Pool {
    /// A pool for `authority` (`host:port`).
    pub fn new(authority: String) -> Pool {
        Pool { authority, sources: vec![], next_source: Default::default(), idle: Mutex::new(Vec::new()) }
    }

    /// New connections are made from `sources` in turn.
    pub fn with_sources(mut self, sources: Vec<std::net::IpAddr>) -> Pool {
        self.sources = sources;
        self
    }

    /// Sends `req` on an idle connection, or on a new one when none is idle or every idle one
    /// turns out closed. A request that failed before any of it was written (the server had
    /// closed the connection while it was idle) is retried on the next; one that failed on a new
    /// connection is not. Returns the connection too: the body is read by driving it
    /// ([`Conn::drive`]), and it goes back with [`Pool::put`].
    pub async fn send(&self, mut req: Request<Body>) -> Result<(Conn, Response<Incoming>), String> {
        loop {
            let reused = self.idle.lock().expect("pool lock").pop();
            let fresh = reused.is_none();
            let mut conn = match reused {
                Some(c) => c,
                // Boxed: the handshake's future is large and rarely needed.
                None => Box::pin(self.connect()).await?,
            };
            // A reused connection is ready once it has taken in the end of its last answer; one
            // the server closed fails here, before anything of `req` is written.
            let ready = drive(&mut conn.io, &conn.turn, &conn.waker, conn.send.ready()).await;
            let sent = match ready {
                Ok(()) => drive(&mut conn.io, &conn.turn, &conn.waker, conn.send.try_send_request(req)).await,
                Err(_) if !fresh => continue,
                Err(e) => return Err(format!("{}: {e}", self.authority)),
            };
            match sent {
                Ok(resp) => return Ok((conn, resp)),
                Err(mut e) => match e.take_message() {
                    Some(back) if !fresh => req = back,
                    _ => return Err(format!("{}: {}", self.authority, e.error())),
                },
            }
        }
    }

    /// Keeps `conn` for a later request, unless it has ended.
    pub fn put(&self, conn: Conn) {
        if conn.io.is_some() && !conn.send.is_closed() {
            self.idle.lock().expect("pool lock").push(conn);
        }
    }

    /// Connections idle now.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.idle.lock().expect("pool lock").len()
    }

    async fn connect(&self) -> Result<Conn, String> {
        let err = |e: &dyn std::fmt::Display| format!("connect to {}: {e}", self.authority);
        let tcp = match self.sources.len() {
            0 => TcpStream::connect(&self.authority).await.map_err(|e| err(&e))?,
            n => {
                let source = self.sources[self.next_source.fetch_add(1, SeqCst) % n];
                let to = tokio::net::lookup_host(&self.authority)
                    .await
                    .map_err(|e| err(&e))?
                    .find(|a| a.is_ipv4() == source.is_ipv4())
                    .ok_or_else(|| err(&format!("no address of the family of source {source}")))?;
                let socket =
                    if source.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
                        .map_err(|e| err(&e))?;
                socket
                    .bind(std::net::SocketAddr::new(source, 0))
                    .map_err(|e| err(&format!("from source address {source}: {e}")))?;
                socket.connect(to).await.map_err(|e| err(&e))?
            }
        };
        // Small writes go out at once (Nagle's wait would add up to 40 ms to a request).
        tcp.set_nodelay(true).map_err(|e| err(&e))?;
        // Long idle streams through load balancers and NAT stay open.
        let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
        socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive).map_err(|e| err(&e))?;
        let (send, io) = http1::handshake(TokioIo::new(tcp)).await.map_err(|e| err(&e))?;
        let turn = Arc::new(Turn::default());
        Ok(Conn { send, io: Some(Box::new(io)), waker: Waker::from(turn.clone()), turn })
    }
}

impl Conn {
    /// Runs `f` (reading the answer of a request sent on this connection) while driving the
    /// connection, which is what moves the answer's bytes from the socket to `f`.
    pub async fn drive<F: Future>(&mut self, f: F) -> F::Output {
        drive(&mut self.io, &self.turn, &self.waker, f).await
    }
}

/// Polls `f` and the connection `io` together until `f` is done. Each wakes the other (a request
/// handed to the connection, bytes handed to the request) through [`Turn`]: a wake during the poll
/// is only noted, and both are polled again at once, rather than waking the task to be scheduled
/// anew. `io` is dropped when the connection ends, which fails what `f` still waits for.
async fn drive<F: Future>(io: &mut Option<Box<Io>>, turn: &Turn, waker: &Waker, f: F) -> F::Output {
    /// Rounds in one poll before yielding to other tasks (tokio's cooperative budget can make a
    /// resource say "not now" and wake at once; looping on that would never end).
    const ROUNDS: usize = 8;
    let mut f = pin!(f);
    std::future::poll_fn(|cx| {
        turn.task.register(cx.waker());
        let mut inner = Context::from_waker(waker);
        for _ in 0..ROUNDS {
            turn.polling.store(true, SeqCst);
            turn.woken.store(false, SeqCst);
            if let Poll::Ready(out) = f.as_mut().poll(&mut inner) {
                turn.polling.store(false, SeqCst);
                return Poll::Ready(out);
            }
            if let Some(c) = io.as_mut()
                && Pin::new(&mut **c).poll(&mut inner).is_ready()
            {
                *io = None;
                turn.woken.store(true, SeqCst);
            }
            turn.polling.store(false, SeqCst);
            if !turn.woken.swap(false, SeqCst) {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// The waker given to a connection and its request: outside [`drive`]'s poll it wakes the task;
/// during it, it only notes the wake. Wakes come from other threads too (the socket's readiness):
/// `woken` is set before `polling` is read, and `drive` clears `polling` before it reads `woken`,
/// so a wake is always either seen by `drive` or passed to the task.
#[derive(Default)]
struct Turn {
    polling: AtomicBool,
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Turn {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, SeqCst);
        if !self.polling.load(SeqCst) {
            self.task.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::TcpListener,
        sync::{Notify, mpsc},
    };

    use super::*;

    /// A server reporting each connection ("accepted"), each request's head and each close
    /// ("closed"). With `close`, a connection is closed after its first answer once `close` is
    /// notified, as a server's idle timeout does (no `Connection: close` warning).
    async fn server(close: Option<Arc<Notify>>) -> (String, mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let (tx, close) = (tx.clone(), close.clone());
                let _ = tx.send("accepted".to_owned());
                tokio::spawn(async move {
                    loop {
                        let mut got = Vec::new();
                        let mut buf = [0u8; 4096];
                        // Requests here are small: a head and the body `{}`.
                        while !(got.windows(4).any(|w| w == b"\r\n\r\n") && got.ends_with(b"}")) {
                            match sock.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => got.extend_from_slice(&buf[..n]),
                            }
                        }
                        let head = String::from_utf8_lossy(&got).split("\r\n\r\n").next().unwrap().to_owned();
                        let _ = tx.send(head);
                        sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
                        if let Some(close) = &close {
                            close.notified().await;
                            drop(sock);
                            let _ = tx.send("closed".to_owned());
                            return;
                        }
                    }
                });
            }
        });
        (addr, rx)
    }

    fn post(path: &str) -> Request<Body> {
        Request::post(path).header("host", "test").body(Full::new(Bytes::from_static(b"{}"))).unwrap()
    }

    async fn exchange(pool: &Pool, path: &str) -> Result<String, String> {
        let (mut conn, resp) = pool.send(post(path)).await?;
        let body = conn.drive(resp.into_body().collect()).await.map_err(|e| e.to_string())?.to_bytes();
        pool.put(conn);
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn connections_are_opened_as_needed_and_reused() {
        let (addr, mut seen) = server(None).await;
        let pool = Pool::new(addr);
        // Three at once: three connections.
        let three = futures_util::future::join_all((0..3).map(|i| pool.send(post(&format!("/w{i}"))))).await;
        for sent in three {
            let (mut conn, resp) = sent.unwrap();
            conn.drive(resp.into_body().collect()).await.unwrap();
            pool.put(conn);
        }
        assert_eq!(pool.idle(), 3);
        let first: Vec<String> = std::iter::from_fn(|| seen.try_recv().ok()).collect();
        assert_eq!(first.iter().filter(|s| *s == "accepted").count(), 3, "{first:?}");
        for i in 0..5 {
            assert_eq!(exchange(&pool, &format!("/v1/x{i}")).await.unwrap(), "ok");
            let head = seen.recv().await.unwrap();
            assert!(head.starts_with(&format!("POST /v1/x{i} HTTP/1.1\r\n")), "no new connection: {head}");
        }
        assert_eq!(pool.idle(), 3);
    }

    #[tokio::test]
    async fn a_request_on_a_connection_the_server_closed_is_sent_again_on_a_new_one() {
        let close = Arc::new(Notify::new());
        let (addr, mut seen) = server(Some(close.clone())).await;
        let pool = Pool::new(addr);
        assert_eq!(exchange(&pool, "/first").await.unwrap(), "ok");
        assert_eq!(seen.recv().await.unwrap(), "accepted");
        assert!(seen.recv().await.unwrap().starts_with("POST /first"));
        assert_eq!(pool.idle(), 1);
        close.notify_one();
        assert_eq!(seen.recv().await.unwrap(), "closed");
        // The idle connection is found closed before anything is written: the request goes out
        // once, on a new connection.
        assert_eq!(exchange(&pool, "/second").await.unwrap(), "ok");
        assert_eq!(seen.recv().await.unwrap(), "accepted");
        assert!(seen.recv().await.unwrap().starts_with("POST /second"));
        assert!(seen.try_recv().is_err(), "sent once");
    }

    #[tokio::test]
    async fn connections_are_made_from_the_source_addresses_in_turn() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let sources: Vec<std::net::IpAddr> = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
        let pool = Pool::new(addr).with_sources(sources.clone());
        let connects = async {
            let mut conns = vec![];
            for _ in 0..4 {
                conns.push(Box::pin(pool.connect()).await.unwrap());
            }
            conns
        };
        let accepts = async {
            let mut peers = vec![];
            for _ in 0..4 {
                peers.push(listener.accept().await.unwrap().1.ip());
            }
            peers
        };
        let (_conns, peers) = tokio::join!(connects, accepts);
        assert_eq!(peers, [sources[0], sources[1], sources[0], sources[1]], "in turn, as the server sees them");
    }

    #[tokio::test]
    async fn a_server_that_is_not_there_is_a_connect_error_naming_it() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let pool = Pool::new(addr.clone());
        let err = pool.send(post("/")).await.err().expect("nothing listens");
        assert!(err.starts_with(&format!("connect to {addr}: ")), "{err}");
        assert_eq!(pool.idle(), 0);
    }

    #[tokio::test]
    async fn a_connection_whose_answer_was_not_read_to_its_end_is_not_kept() {
        let (addr, mut seen) = server(None).await;
        let pool = Pool::new(addr);
        let (conn, _resp) = pool.send(post("/a")).await.unwrap();
        drop(conn); // the caller gave up on it (as the client does after a parse error)
        assert_eq!(exchange(&pool, "/b").await.unwrap(), "ok");
        let seen: Vec<String> = std::iter::from_fn(|| seen.try_recv().ok()).collect();
        assert_eq!(seen.iter().filter(|s| *s == "accepted").count(), 2, "{seen:?}");
    }
}
