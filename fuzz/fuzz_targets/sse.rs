//! The SSE parser never panics, and splitting a stream into reads at any points gives the same
//! events as one read.
#![no_main]

use inferbench::load::sse::SseParser;
use libfuzzer_sys::fuzz_target;
use tokio::time::Instant;

fuzz_target!(|input: &[u8]| {
    if input.is_empty() {
        return;
    }
    // The first byte picks the split points of the rest.
    let (step, body) = (usize::from(input[0]).max(1), &input[1..]);
    let at = Instant::now();
    let mut whole = vec![];
    let whole_ok = SseParser::new().push(body, at, &mut whole).is_ok();
    let mut parts = vec![];
    let mut p = SseParser::new();
    let mut parts_ok = true;
    for chunk in body.chunks(step) {
        parts_ok &= p.push(chunk, at, &mut parts).is_ok();
    }
    assert_eq!(whole_ok, parts_ok);
    if whole_ok {
        assert_eq!(whole, parts);
    }
});
