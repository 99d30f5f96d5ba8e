//! Keep-alive HTTP/1.1 connections to one server, each driven by the request that holds it.
//!
//! A request takes an idle connection (or opens one), writes its bytes, reads the answer's head
//! and then its body as the bytes come ([`Conn::read_body`]), and puts the connection back when
//! the body has ended. No connection task and no channel between the request and its connection:
//! everything happens in the request's own task. A connection holds its socket, the bytes read
//! and not yet used (nothing while it waits: the read buffer is taken only once the socket is
//! readable and given back when it would block) and its body's decoder (see [`super::http1`]).
//! That is what keeps an open stream at a few KB of client memory: hyper's client held ~21 KB.

use std::{
    future::poll_fn,
    io,
    pin::Pin,
    sync::{Mutex, atomic::AtomicUsize, atomic::Ordering::SeqCst},
    task::ready,
    time::Duration,
};

use tokio::{io::AsyncWriteExt as _, net::TcpStream, time::Instant};

use super::http1::{self, Body, Head};

/// Bytes a read asks for. Streamed events are a few hundred bytes; a whole body is read in
/// reads this large.
const READ_SIZE: usize = 8 << 10;

/// Idle keep-alive connections to one `host:port`.
pub struct Pool {
    authority: String,
    /// Local addresses new connections are made from, in turn (empty: the kernel's choice). The
    /// kernel has one range of ephemeral ports (~28 000) per local address towards one server
    /// address: N addresses, N times the connections.
    sources: Vec<std::net::IpAddr>,
    next_source: AtomicUsize,
    /// Most recently used last: a request takes the warmest connection, and the ones at the
    /// bottom are those a server may have closed for idleness.
    idle: Mutex<Vec<Conn>>,
}

/// One connection, and where the answer being read on it is.
pub struct Conn {
    tcp: TcpStream,
    /// Bytes read and not yet used (an answer's head as it comes, a partial chunk-size line).
    /// Unallocated while the connection waits.
    read: Vec<u8>,
    /// When the last read completed: the arrival time of what it brought.
    read_at: Instant,
    /// When the first bytes of the answer being read arrived.
    answer_at: Instant,
    body: Body,
    /// The answer lets the connection carry another request after its body.
    keep_alive: bool,
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

    /// Sends `request` (its whole bytes: see [`http1::request`]) on an idle connection, or on a
    /// new one when none is idle or every idle one turns out closed, and reads the answer's head.
    /// An idle connection the server has closed is found so before anything is written on it
    /// (and one whose write fails is left for the next): such a request is sent once, on the
    /// next connection. One that failed on a new connection, or after it was written, is not sent
    /// again. Returns the connection too: the body is read with [`Conn::read_body`], and the
    /// connection goes back with [`Pool::put`].
    pub async fn send(&self, request: &[u8]) -> Result<(Conn, Head), String> {
        loop {
            let reused = self.idle.lock().expect("pool lock").pop();
            let fresh = reused.is_none();
            let mut conn = match reused {
                Some(c) if c.is_open() => c,
                Some(_) => continue,
                // Boxed: the connect's future is large and rarely needed.
                None => Box::pin(self.connect()).await?,
            };
            match conn.tcp.write_all(request).await {
                Ok(()) => {}
                Err(_) if !fresh => continue,
                Err(e) => return Err(format!("{}: {e}", self.authority)),
            }
            let head = conn.read_head().await.map_err(|e| format!("{}: {e}", self.authority))?;
            return Ok((conn, head));
        }
    }

    /// Keeps `conn` for a later request, if its answer was read to its end and it may carry
    /// another.
    pub fn put(&self, conn: Conn) {
        if conn.keep_alive && conn.body.ended() && conn.read.is_empty() {
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
        let now = Instant::now();
        Ok(Conn {
            tcp,
            read: Vec::new(),
            read_at: now,
            answer_at: now,
            body: Body::new(http1::Framing::Length(0)),
            keep_alive: true,
        })
    }
}

impl Conn {
    /// Reads the next bytes of the answer's body, handing each piece of its data to `data` with
    /// the time the read that brought it completed. `Ok(true)` once the body has ended.
    pub async fn read_body(&mut self, mut data: impl FnMut(&[u8], Instant)) -> Result<bool, String> {
        loop {
            if !self.read.is_empty() || self.body.ended() {
                let at = self.read_at;
                let used = self.body.decode(&self.read, |d| data(d, at))?;
                self.used(used);
                if self.body.ended() {
                    return Ok(true);
                }
                if used > 0 {
                    return Ok(false);
                }
            }
            match self.fill().await {
                Ok(0) => {
                    self.keep_alive = false;
                    self.body.closed()?;
                    return Ok(true);
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// The server has not closed this idle connection, nor sent anything on it: a peek that
    /// does not wait (the kernel's word, not the runtime's last readiness event, which may not
    /// have come in yet).
    fn is_open(&self) -> bool {
        use std::os::fd::AsRawFd as _;
        let mut byte = 0u8;
        // SAFETY: a one-byte buffer that lives through the call, on a socket this owns.
        let n =
            unsafe { libc::recv(self.tcp.as_raw_fd(), (&raw mut byte).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
        n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
    }

    /// When the first bytes of the answer arrived (the read that brought them completed).
    pub fn answer_at(&self) -> Instant {
        self.answer_at
    }

    async fn read_head(&mut self) -> Result<Head, String> {
        let mut first = true;
        loop {
            if let Some((head, len)) = http1::parse_head(&self.read)? {
                self.used(len);
                self.body = Body::new(head.framing);
                self.keep_alive = head.keep_alive;
                return Ok(head);
            }
            match self.fill().await {
                Ok(0) => return Err("the connection closed before an answer came".into()),
                Ok(_) if first => {
                    first = false;
                    self.answer_at = self.read_at;
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Waits until the socket is readable and appends what it has to `read` (0: it has closed).
    /// The buffer is reserved only once there is something to read, and given back if the read
    /// would block after all: a waiting connection holds none.
    async fn fill(&mut self) -> io::Result<usize> {
        let n = poll_fn(|cx| {
            ready!(self.tcp.poll_read_ready(cx))?;
            self.read.reserve(READ_SIZE);
            let read = tokio_util::io::poll_read_buf(Pin::new(&mut self.tcp), cx, &mut self.read);
            if read.is_pending() && self.read.is_empty() {
                self.read = Vec::new();
            }
            read
        })
        .await?;
        self.read_at = Instant::now();
        Ok(n)
    }

    /// The first `n` bytes read have been used. What is left is kept in as little memory as it
    /// needs, nothing when nothing is left.
    fn used(&mut self, n: usize) {
        self.read.drain(..n);
        if self.read.is_empty() {
            self.read = Vec::new();
        } else if self.read.capacity() > 4 * self.read.len() {
            self.read.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _},
        net::TcpListener,
        sync::{Notify, mpsc},
    };

    use super::*;
    use std::sync::Arc;

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

    fn post(path: &str) -> Vec<u8> {
        http1::request("POST", path, &[("host", "test")], Some(b"{}"))
    }

    /// Reads the body of the answer on `conn` to its end.
    async fn body(conn: &mut Conn) -> Result<String, String> {
        let mut body = Vec::new();
        while !conn.read_body(|d, _| body.extend_from_slice(d)).await? {}
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    async fn exchange(pool: &Pool, path: &str) -> Result<String, String> {
        let (mut conn, _) = pool.send(&post(path)).await?;
        let body = body(&mut conn).await?;
        pool.put(conn);
        Ok(body)
    }

    #[tokio::test]
    async fn connections_are_opened_as_needed_and_reused() {
        let (addr, mut seen) = server(None).await;
        let pool = Pool::new(addr);
        // Three at once: three connections.
        let posts: Vec<Vec<u8>> = (0..3).map(|i| post(&format!("/w{i}"))).collect();
        let three = futures_util::future::join_all(posts.iter().map(|p| pool.send(p))).await;
        for sent in three {
            let (mut conn, head) = sent.unwrap();
            assert_eq!(head.status, 200);
            assert_eq!(body(&mut conn).await.unwrap(), "ok");
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
        let err = pool.send(&post("/")).await.err().expect("nothing listens");
        assert!(err.starts_with(&format!("connect to {addr}: ")), "{err}");
        assert_eq!(pool.idle(), 0);
    }

    #[tokio::test]
    async fn a_connection_whose_answer_was_not_read_to_its_end_is_not_kept() {
        let (addr, mut seen) = server(None).await;
        let pool = Pool::new(addr);
        let (conn, _head) = pool.send(&post("/a")).await.unwrap();
        drop(conn); // the caller gave up on it (as the client does after a parse error)
        assert_eq!(exchange(&pool, "/b").await.unwrap(), "ok");
        let seen: Vec<String> = std::iter::from_fn(|| seen.try_recv().ok()).collect();
        assert_eq!(seen.iter().filter(|s| *s == "accepted").count(), 2, "{seen:?}");
    }

    /// A server that answers one request with `parts`, written one at a time, each after the
    /// client's go on `go` (the first at once), then closes or keeps the connection.
    async fn scripted(parts: Vec<&'static [u8]>) -> (String, mpsc::UnboundedSender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (go, mut went) = mpsc::unbounded_channel::<()>();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await.unwrap();
            for (i, part) in parts.into_iter().enumerate() {
                if i > 0 && went.recv().await.is_none() {
                    return;
                }
                sock.write_all(part).await.unwrap();
            }
            // Held open until the client is done.
            let _ = went.recv().await;
        });
        (addr, go)
    }

    #[tokio::test]
    async fn a_streamed_answer_comes_piece_by_piece_and_a_waiting_connection_holds_no_read_buffer() {
        let parts: Vec<&[u8]> = vec![
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\ndata: ",
            b"\r\n5\r\none\n\n\r\n",
            b"b\r\ndata: two\n\n\r\n0\r\n\r\n",
        ];
        let (addr, go) = scripted(parts).await;
        let pool = Pool::new(addr);
        let (mut conn, head) = pool.send(&post("/s")).await.unwrap();
        assert_eq!(head.status, 200);
        let mut got = Vec::new();
        assert!(!conn.read_body(|d, _| got.extend_from_slice(d)).await.unwrap());
        assert_eq!(got, b"data: ", "what came with the head is handed on at once");
        assert_eq!(conn.read.capacity(), 0, "nothing kept while the stream waits");
        go.send(()).unwrap();
        while got.len() < 11 {
            assert!(!conn.read_body(|d, _| got.extend_from_slice(d)).await.unwrap());
        }
        assert_eq!(got, b"data: one\n\n");
        assert_eq!(conn.read.capacity(), 0, "nothing kept while the stream waits");
        go.send(()).unwrap();
        while !conn.read_body(|d, _| got.extend_from_slice(d)).await.unwrap() {}
        assert_eq!(got, b"data: one\n\ndata: two\n\n");
        pool.put(conn);
        assert_eq!(pool.idle(), 1, "a chunked answer read to its end leaves the connection reusable");
    }

    #[tokio::test]
    async fn an_answer_that_closes_its_connection_is_read_to_its_end_and_the_connection_not_kept() {
        let parts: Vec<&[u8]> = vec![b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"];
        let (addr, _go) = scripted(parts).await;
        let pool = Pool::new(addr);
        let (mut conn, _) = pool.send(&post("/c")).await.unwrap();
        assert_eq!(body(&mut conn).await.unwrap(), "ok");
        pool.put(conn);
        assert_eq!(pool.idle(), 0);
    }

    #[tokio::test]
    async fn a_body_cut_by_the_server_is_an_error_and_one_delimited_by_the_close_is_not() {
        let (addr, go) = scripted(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"]).await;
        let pool = Pool::new(addr);
        let (mut conn, _) = pool.send(&post("/cut")).await.unwrap();
        drop(go); // the server closes after what it wrote
        assert_eq!(body(&mut conn).await.unwrap_err(), "the connection closed before the end of the answer");

        let (addr, go) = scripted(vec![b"HTTP/1.0 200 OK\r\n\r\nall of it"]).await;
        let pool = Pool::new(addr);
        let (mut conn, _) = pool.send(&post("/close")).await.unwrap();
        drop(go);
        assert_eq!(body(&mut conn).await.unwrap(), "all of it");
        pool.put(conn);
        assert_eq!(pool.idle(), 0);
    }
}
