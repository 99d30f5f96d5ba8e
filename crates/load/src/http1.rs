//! The client's side of HTTP/1.1, as bytes in and out: a request's bytes, an answer's head
//! (parsed by `httparse`) and its body's framing (content length, chunked, or to the close).
//!
//! Why not hyper's client: an open stream is mostly waiting, and hyper keeps per connection what a
//! busy one needs (an 8 KB write buffer, a read buffer, a dispatch channel's first block, the
//! boxed exchange): ~21 KB of client memory per open stream, measured. Here a connection holds
//! only the bytes it has read and not yet handed on (see `pool::Conn`), and the decoder below
//! holds a few words, so a stream costs what its task and its socket cost.

/// Longest answer head accepted (status line and headers).
pub const MAX_HEAD: usize = 64 << 10;
/// Most headers an answer may have.
const MAX_HEADERS: usize = 64;
/// Longest trailer section accepted after a chunked body.
const MAX_TRAILERS: usize = 64 << 10;

/// The bytes of a request: its line, `headers` (name, value) and, when given, a body with its
/// `content-length`.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Vec<u8> {
    let len = body.map_or(0, <[u8]>::len);
    let mut out =
        Vec::with_capacity(64 + path.len() + headers.iter().map(|h| h.0.len() + h.1.len() + 4).sum::<usize>() + len);
    for part in [method, " ", path, " HTTP/1.1\r\n"] {
        out.extend_from_slice(part.as_bytes());
    }
    for (name, value) in headers {
        for part in [*name, ": ", *value, "\r\n"] {
            out.extend_from_slice(part.as_bytes());
        }
    }
    if let Some(body) = body {
        out.extend_from_slice(format!("content-length: {len}\r\n\r\n").as_bytes());
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// An answer's head, as much of it as the client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// The connection may carry another request once this answer's body has ended.
    pub keep_alive: bool,
    pub framing: Framing,
}

/// How an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// After this many bytes.
    Length(u64),
    /// At its zero-sized chunk (and the trailers after it).
    Chunked,
    /// When the server closes the connection.
    Close,
}

/// Parses an answer's head from the start of `buf`: `Ok(None)` while it is incomplete, else the
/// head and its length. Informational (1xx) answers are skipped: their length is counted and the
/// head returned is the final one's.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, String> {
    let mut start = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let len = match resp.parse(&buf[start..]) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() - start > MAX_HEAD => {
                return Err(format!("the answer's head is longer than {MAX_HEAD} bytes"));
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(format!("the answer's head is not HTTP/1: {e}")),
        };
        let status = resp.code.unwrap_or(0);
        if (100..200).contains(&status) && status != 101 {
            start += len;
            continue;
        }
        let header = |name: &'static str| resp.headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name));
        let has_token = |name: &'static str, token: &str| {
            header(name)
                .any(|h| String::from_utf8_lossy(h.value).split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        };
        let keep_alive = match resp.version {
            Some(1) => !has_token("connection", "close"),
            _ => has_token("connection", "keep-alive"),
        };
        let framing = if status == 204 || status == 304 {
            Framing::Length(0)
        } else if has_token("transfer-encoding", "chunked") {
            Framing::Chunked
        } else if let Some(h) = header("content-length").next() {
            let text = std::str::from_utf8(h.value).unwrap_or("").trim();
            Framing::Length(
                text.parse().map_err(|_| format!("the answer's content-length \"{text}\" is not a number"))?,
            )
        } else {
            Framing::Close
        };
        let keep_alive = keep_alive && framing != Framing::Close;
        return Ok(Some((Head { status, keep_alive, framing }, start + len)));
    }
}

/// Where a body's decoding is between reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Body {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many bytes of data are left (a content length, or the rest of a chunk).
    Data {
        left: u64,
        chunked: bool,
    },
    /// A chunk's size line is next.
    ChunkSize,
    /// The line end after a chunk's data.
    ChunkEnd,
    /// Trailer lines, up to an empty one; `seen` bytes of them so far.
    Trailers {
        seen: usize,
    },
    /// Everything until the connection closes.
    ToClose,
    Ended,
}

impl Body {
    /// A body framed as `framing` says.
    pub fn new(framing: Framing) -> Body {
        let state = match framing {
            Framing::Length(0) => State::Ended,
            Framing::Length(n) => State::Data { left: n, chunked: false },
            Framing::Chunked => State::ChunkSize,
            Framing::Close => State::ToClose,
        };
        Body { state }
    }

    /// The body has ended (its connection may carry another request).
    pub fn ended(&self) -> bool {
        self.state == State::Ended
    }

    /// The connection closed: the end of a body that ends so; else the body was cut.
    pub fn closed(&mut self) -> Result<(), String> {
        match self.state {
            State::ToClose | State::Ended => {
                self.state = State::Ended;
                Ok(())
            }
            _ => Err("the connection closed before the end of the answer".into()),
        }
    }

    /// Decodes what it can of `input`, handing each piece of the body's data to `data`, and says
    /// how many bytes it used (a partial chunk-size line, say, is left for the next read).
    pub fn decode(&mut self, input: &[u8], mut data: impl FnMut(&[u8])) -> Result<usize, String> {
        let mut at = 0;
        loop {
            let rest = &input[at..];
            match self.state {
                State::Ended => return Ok(at),
                State::ToClose => {
                    if !rest.is_empty() {
                        data(rest);
                    }
                    return Ok(input.len());
                }
                State::Data { left, chunked } => {
                    let take = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    if take == 0 {
                        return Ok(at);
                    }
                    data(&rest[..take]);
                    at += take;
                    let left = left - take as u64;
                    self.state = match (left, chunked) {
                        (0, true) => State::ChunkEnd,
                        (0, false) => State::Ended,
                        (left, _) => State::Data { left, chunked },
                    };
                }
                State::ChunkSize => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((len, 0))) => {
                        at += len;
                        self.state = State::Trailers { seen: 0 };
                    }
                    Ok(httparse::Status::Complete((len, size))) => {
                        at += len;
                        self.state = State::Data { left: size, chunked: true };
                    }
                    Ok(httparse::Status::Partial) if rest.len() > 1024 => {
                        return Err("a chunk-size line of the answer is longer than 1024 bytes".into());
                    }
                    Ok(httparse::Status::Partial) => return Ok(at),
                    Err(_) => return Err("the answer's chunked framing is broken (a bad chunk size)".into()),
                },
                State::ChunkEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        at += 2;
                        self.state = State::ChunkSize;
                    }
                    [] | [b'\r'] => return Ok(at),
                    _ => return Err("the answer's chunked framing is broken (no line end after a chunk)".into()),
                },
                State::Trailers { seen } => {
                    let Some(i) = memchr::memchr(b'\n', rest) else {
                        if seen + rest.len() > MAX_TRAILERS {
                            return Err(format!("the answer's trailers are longer than {MAX_TRAILERS} bytes"));
                        }
                        return Ok(at);
                    };
                    let line = &rest[..i];
                    at += i + 1;
                    self.state = if line.is_empty() || line == b"\r" {
                        State::Ended
                    } else {
                        State::Trailers { seen: seen + i + 1 }
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `parts` fed one after another as reads, keeping what each left unused.
    fn decode_in_reads(framing: Framing, parts: &[&[u8]]) -> (Vec<u8>, bool, Vec<u8>) {
        let mut body = Body::new(framing);
        let (mut out, mut pending) = (Vec::new(), Vec::new());
        for part in parts {
            pending.extend_from_slice(part);
            let used = body.decode(&pending, |d| out.extend_from_slice(d)).unwrap();
            pending.drain(..used);
        }
        (out, body.ended(), pending)
    }

    #[test]
    fn a_chunked_body_is_decoded_across_any_split_of_its_reads() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        for cut1 in 0..wire.len() {
            for cut2 in cut1..wire.len() {
                let (out, ended, left) =
                    decode_in_reads(Framing::Chunked, &[&wire[..cut1], &wire[cut1..cut2], &wire[cut2..]]);
                assert_eq!(out, b"hello world", "cut at {cut1}, {cut2}");
                assert!(ended);
                assert_eq!(left, b"NEXT", "what follows the body is not used");
            }
        }
    }

    #[test]
    fn a_content_length_body_ends_at_its_length() {
        let (out, ended, left) = decode_in_reads(Framing::Length(5), &[b"he", b"lloEXTRA"]);
        assert_eq!((out.as_slice(), ended, left.as_slice()), (&b"hello"[..], true, &b"EXTRA"[..]));
        let (out, ended, _) = decode_in_reads(Framing::Length(5), &[b"hel"]);
        assert_eq!((out.as_slice(), ended), (&b"hel"[..], false));
        assert!(Body::new(Framing::Length(0)).ended());
    }

    #[test]
    fn a_body_to_the_close_ends_only_when_the_connection_closes_and_a_cut_one_is_an_error() {
        let mut body = Body::new(Framing::Close);
        assert_eq!(body.decode(b"abc", |d| assert_eq!(d, b"abc")), Ok(3));
        assert!(!body.ended());
        assert_eq!(body.closed(), Ok(()));
        assert!(body.ended());
        let mut cut = Body::new(Framing::Chunked);
        cut.decode(b"5\r\nhel", |_| ()).unwrap();
        assert_eq!(cut.closed().unwrap_err(), "the connection closed before the end of the answer");
    }

    #[test]
    fn broken_chunked_framing_is_an_error_saying_what_broke() {
        let mut body = Body::new(Framing::Chunked);
        assert!(body.decode(b"zz\r\n", |_| ()).unwrap_err().contains("bad chunk size"));
        let mut body = Body::new(Framing::Chunked);
        assert!(body.decode(b"2\r\nokXX", |_| ()).unwrap_err().contains("no line end after a chunk"));
    }

    #[test]
    fn heads_say_status_framing_and_whether_the_connection_stays() {
        let parse = |s: &str| parse_head(s.as_bytes()).unwrap().unwrap().0;
        let h = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h, Head { status: 200, keep_alive: true, framing: Framing::Chunked });
        let h = parse("HTTP/1.1 503 Busy\r\ncontent-length: 12\r\nConnection: close\r\n\r\n");
        assert_eq!(h, Head { status: 503, keep_alive: false, framing: Framing::Length(12) });
        let h = parse("HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!(h, Head { status: 200, keep_alive: false, framing: Framing::Close });
        let h = parse("HTTP/1.0 200 OK\r\nconnection: Keep-Alive\r\ncontent-length: 1\r\n\r\n");
        assert!(h.keep_alive);
        assert_eq!(parse("HTTP/1.1 204 No Content\r\n\r\n").framing, Framing::Length(0));
    }

    #[test]
    fn informational_answers_are_skipped_and_partial_heads_wait() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        let (head, len) = parse_head(wire).unwrap().unwrap();
        assert_eq!((head.status, &wire[len..]), (200, &b"ok"[..]));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le"), Ok(None));
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").unwrap_err().starts_with("the answer's head is not HTTP/1"));
        let bad = parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: many\r\n\r\n").unwrap_err();
        assert_eq!(bad, "the answer's content-length \"many\" is not a number");
    }

    #[test]
    fn a_request_is_its_line_headers_and_body_with_its_length() {
        let r = request("POST", "/v1/completions", &[("host", "h:1"), ("x-request-id", "7")], Some(b"{}"));
        assert_eq!(r, b"POST /v1/completions HTTP/1.1\r\nhost: h:1\r\nx-request-id: 7\r\ncontent-length: 2\r\n\r\n{}");
        assert_eq!(request("GET", "/health", &[("host", "h")], None), b"GET /health HTTP/1.1\r\nhost: h\r\n\r\n");
    }
}
