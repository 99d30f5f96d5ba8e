//! The per-request records of a stage, stored in fixed-size chunks so that appending never moves
//! what is already stored.
//!
//! Why not a `Vec`: records are appended under the stage's results lock, by every request as it
//! ends. A `Vec` doubles: at 2¹⁷ records (8 MB) the doubling copied 8 MB into 16 MB of fresh
//! pages while every other answer waited for the lock — measured at 20 000 req/s as an 11 ms
//! schedule-lag spike at 6.5 s into every run (and smaller ones at 3.3 s and 1.6 s). A chunk is
//! 256 KB, allocated once when the previous one is full.

use super::recorder::RequestRecord;

/// Records per chunk (64 bytes each: 256 KB).
const CHUNK: usize = 4096;

/// Per-request records, in the order they were pushed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Records {
    chunks: Vec<Vec<RequestRecord>>,
    len: usize,
}

impl Records {
    /// No record.
    pub fn new() -> Records {
        Records::default()
    }

    /// Appends `r` (never moves the records already stored).
    pub fn push(&mut self, r: RequestRecord) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(r),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(r);
                self.chunks.push(c);
            }
        }
        self.len += 1;
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.len
    }

    /// None at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Each record, in the order pushed.
    pub fn iter(&self) -> impl Iterator<Item = &RequestRecord> {
        self.chunks.iter().flatten()
    }
}

impl FromIterator<RequestRecord> for Records {
    fn from_iter<I: IntoIterator<Item = RequestRecord>>(iter: I) -> Records {
        let mut r = Records::new();
        iter.into_iter().for_each(|x| r.push(x));
        r
    }
}

impl<'a> IntoIterator for &'a Records {
    type Item = &'a RequestRecord;
    type IntoIter = std::iter::Flatten<std::slice::Iter<'a, Vec<RequestRecord>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.chunks.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::tests::example;

    fn rec(i: u64) -> RequestRecord {
        RequestRecord { intended_us: i, ..example().record }
    }

    #[test]
    fn records_keep_their_order_across_chunks_and_never_move() {
        let mut r = Records::new();
        assert!(r.is_empty());
        r.push(rec(0));
        let first = r.iter().next().unwrap() as *const RequestRecord;
        for i in 1..(2 * CHUNK as u64 + 5) {
            r.push(rec(i));
        }
        assert_eq!(r.len(), 2 * CHUNK + 5);
        assert_eq!(r.chunks.len(), 3);
        assert!(r.iter().map(|x| x.intended_us).eq(0..(2 * CHUNK as u64 + 5)), "in push order");
        assert_eq!(r.iter().next().unwrap() as *const RequestRecord, first, "the first record did not move");
        assert_eq!((0..3).map(rec).collect::<Records>().into_iter().count(), 3);
    }
}
