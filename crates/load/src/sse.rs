//! Server-sent events parsed incrementally from the bytes as they arrive (the WHATWG
//! `text/event-stream` rules), each event stamped with the arrival time of the read that completed
//! it — before any JSON is parsed, so parsing cost never shows in a latency.
//!
//! Lines end with `\n`, `\r\n` or `\r` (a `\r` at the end of one read and a `\n` at the start of
//! the next are one line ending); `data:` lines join with `\n`; one space after the colon is
//! dropped (TGI writes `data:{…}`, OpenAI servers `data: {…}`); `:` lines are comments; a blank
//! line dispatches the event. A line longer than [`MAX_LINE`] is an error (a server that never
//! sends a line end must not exhaust memory).

use tokio::time::Instant;

/// Longest line accepted (bytes).
pub const MAX_LINE: usize = 16 << 20;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: Vec<u8>,
    /// When the bytes that completed it arrived.
    pub at: Instant,
}

/// A stream that broke the rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line longer than [`MAX_LINE`].
    #[error("an SSE line is longer than {MAX_LINE} bytes")]
    LineTooLong,
}

/// The parser's state between reads.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    event: Option<String>,
    /// The last read ended with `\r`: a `\n` starting the next one belongs to that line end.
    after_cr: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one read's bytes, appending every event they complete to `out`.
    pub fn push(&mut self, mut bytes: &[u8], at: Instant, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.after_cr && bytes.first() == Some(&b'\n') {
            bytes = &bytes[1..];
        }
        self.after_cr = false;
        while !bytes.is_empty() {
            match memchr::memchr2(b'\n', b'\r', bytes) {
                None => {
                    if self.line.len() + bytes.len() > MAX_LINE {
                        return Err(SseError::LineTooLong);
                    }
                    self.line.extend_from_slice(bytes);
                    return Ok(());
                }
                Some(i) => {
                    let end = i;
                    let mut next = i + 1;
                    if bytes[i] == b'\r' {
                        if bytes.get(i + 1) == Some(&b'\n') {
                            next += 1;
                        } else if i + 1 == bytes.len() {
                            self.after_cr = true;
                        }
                    }
                    if self.line.is_empty() {
                        self.line_done(&bytes[..end], at, out)?;
                    } else {
                        if self.line.len() + end > MAX_LINE {
                            return Err(SseError::LineTooLong);
                        }
                        let mut line = std::mem::take(&mut self.line);
                        line.extend_from_slice(&bytes[..end]);
                        self.line_done(&line, at, out)?;
                        line.clear();
                        self.line = line;
                    }
                    bytes = &bytes[next..];
                }
            }
        }
        Ok(())
    }

    /// The end of the stream: a pending event without its blank line is dropped, as the standard
    /// says (a truncated last event is not an event). Returns whether anything was pending.
    pub fn finish(&mut self) -> bool {
        let pending = !self.line.is_empty() || self.has_data;
        *self = Self::default();
        pending
    }

    fn line_done(&mut self, line: &[u8], at: Instant, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent { event: self.event.take(), data: std::mem::take(&mut self.data), at });
                self.has_data = false;
            } else {
                self.event = None;
            }
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                if self.data.len() + value.len() > MAX_LINE {
                    return Err(SseError::LineTooLong);
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            // id and retry mean nothing to a benchmark; unknown fields are ignored by the standard.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<(Option<String>, String)> {
        let mut p = SseParser::new();
        let mut out = vec![];
        let at = Instant::now();
        for c in chunks {
            p.push(c, at, &mut out).unwrap();
        }
        out.into_iter().map(|e| (e.event, String::from_utf8(e.data).unwrap())).collect()
    }

    #[test]
    fn openai_tgi_and_multi_line_events() {
        let body =
            b"data: {\"a\":1}\n\ndata:{\"b\":2}\n\n: keep-alive\n\nevent: done\ndata: x\ndata: y\n\ndata: [DONE]\n\n";
        let want = vec![
            (None, "{\"a\":1}".to_owned()),
            (None, "{\"b\":2}".to_owned()),
            (Some("done".to_owned()), "x\ny".to_owned()),
            (None, "[DONE]".to_owned()),
        ];
        assert_eq!(parse_all(&[body]), want);
        // Byte by byte, and with CRLF / CR line ends split across reads.
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(parse_all(&bytes), want);
        assert_eq!(parse_all(&[b"data: a\r", b"\n\r", b"\n"]), [(None, "a".to_owned())]);
        assert_eq!(parse_all(&[b"data: a\r\rdata: b\r\n\r\n"]), [(None, "a".to_owned()), (None, "b".to_owned())]);
    }

    #[test]
    fn each_event_carries_the_time_of_the_read_that_completed_it() {
        let mut p = SseParser::new();
        let mut out = vec![];
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_millis(5);
        p.push(b"data: hel", t0, &mut out).unwrap();
        p.push(b"lo\n\ndata: next\n", t1, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].data.as_slice(), out[0].at), (&b"hello"[..], t1));
        assert!(p.finish(), "a started event without its blank line is pending");
    }

    #[test]
    fn an_endless_line_is_an_error_not_memory() {
        let mut p = SseParser::new();
        let chunk = vec![b'x'; 1 << 20];
        let mut out = vec![];
        let r = (0..17).try_for_each(|_| p.push(&chunk, Instant::now(), &mut out));
        assert_eq!(r, Err(SseError::LineTooLong));
    }
}
