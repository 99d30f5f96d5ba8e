//! The simulated KV cache: a fixed number of blocks of `block_size` tokens, with vLLM's automatic
//! prefix caching.
//!
//! A sequence holds *private* blocks (counted, not named) and *shared* blocks: full prompt blocks
//! named by a hash chain over their tokens. When a prompt's prefill completes its full blocks are
//! published to the cache; a later prompt starting with the same blocks takes references to them
//! and skips their prefill. Blocks no sequence references stay cached until space is needed, then
//! the least recently released are evicted (LRU), as in vLLM.
//!
//! Invariant (tested): `free + private blocks of all sequences + cached blocks == total`.

use std::collections::{BTreeMap, HashMap};

/// A cached (named) block.
#[derive(Debug)]
struct Cached {
    refs: u32,
    /// Key in `lru` while `refs == 0`.
    released_at: u64,
}

/// Blocks a sequence holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Holding {
    /// Hashes of the cached blocks referenced, in prompt order (always a prefix of the prompt).
    pub shared: Vec<u64>,
    /// Blocks allocated privately.
    pub private: u32,
}

impl Holding {
    /// Blocks held in all.
    pub fn blocks(&self) -> u32 {
        self.shared.len() as u32 + self.private
    }
}

/// The block manager.
#[derive(Debug)]
pub struct KvCache {
    block_size: u32,
    total: u32,
    free: u32,
    prefix_caching: bool,
    cached: HashMap<u64, Cached>,
    /// Unreferenced cached blocks by release tick (oldest first).
    lru: BTreeMap<u64, u64>,
    tick: u64,
}

impl KvCache {
    /// `total` blocks of `block_size` tokens.
    pub fn new(total: u32, block_size: u32, prefix_caching: bool) -> Self {
        Self {
            block_size: block_size.max(1),
            total,
            free: total,
            prefix_caching,
            cached: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
        }
    }

    /// Tokens per block.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Blocks in all.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Blocks that can be handed out now (never used or evictable).
    pub fn available(&self) -> u32 {
        self.free + self.lru.len() as u32
    }

    /// Fraction of blocks in use by running sequences (vLLM's `kv_cache_usage_perc`).
    pub fn usage(&self) -> f64 {
        if self.total == 0 { 0.0 } else { f64::from(self.total - self.available()) / f64::from(self.total) }
    }

    /// Blocks needed to hold `tokens` tokens.
    pub fn blocks_for(&self, tokens: u64) -> u32 {
        tokens.div_ceil(u64::from(self.block_size)) as u32
    }

    /// How many leading blocks of `hashes` are cached (prefix hit), without taking them.
    pub fn lookup(&self, hashes: &[u64]) -> usize {
        if !self.prefix_caching {
            return 0;
        }
        hashes.iter().take_while(|h| self.cached.contains_key(h)).count()
    }

    /// Blocks that admitting a sequence would take from [`Self::available`]: `blocks` in all, of
    /// which its first `hits` prefix blocks are cached — those unreferenced now leave the evictable
    /// pool when taken, so they count too.
    pub fn admission_cost(&self, hashes: &[u64], hits: usize, blocks: u32) -> u32 {
        let idle_hits =
            hashes[..hits].iter().filter(|h| self.cached.get(h).is_some_and(|c| c.refs == 0)).count() as u32;
        blocks.saturating_sub(hits as u32) + idle_hits
    }

    /// Takes references to the first `n` blocks of `hashes` (all cached: see [`Self::lookup`]).
    pub fn acquire(&mut self, hold: &mut Holding, hashes: &[u64], n: usize) {
        for h in &hashes[..n] {
            let c = self.cached.get_mut(h).expect("lookup() found it");
            if c.refs == 0 {
                self.lru.remove(&c.released_at);
            }
            c.refs += 1;
            hold.shared.push(*h);
        }
    }

    /// Grows `hold` to `blocks` blocks with private blocks, evicting cached ones if needed. False
    /// (and nothing changed) when there is not enough space.
    pub fn grow(&mut self, hold: &mut Holding, blocks: u32) -> bool {
        let need = blocks.saturating_sub(hold.blocks());
        if need > self.available() {
            return false;
        }
        let from_free = need.min(self.free);
        self.free -= from_free;
        for _ in from_free..need {
            let (_, h) = self.lru.pop_first().expect("available() counted it");
            self.cached.remove(&h);
        }
        hold.private += need;
        true
    }

    /// Publishes the sequence's full prompt blocks `hashes` (past those it already shares) to the
    /// cache: each private block becomes a named one, or is given back when another sequence
    /// published the same block meanwhile.
    pub fn publish(&mut self, hold: &mut Holding, hashes: &[u64]) {
        if !self.prefix_caching {
            return;
        }
        for h in &hashes[hold.shared.len().min(hashes.len())..] {
            if hold.private == 0 {
                break;
            }
            hold.private -= 1;
            match self.cached.get_mut(h) {
                Some(c) => {
                    if c.refs == 0 {
                        self.lru.remove(&c.released_at);
                    }
                    c.refs += 1;
                    self.free += 1;
                }
                None => {
                    self.cached.insert(*h, Cached { refs: 1, released_at: 0 });
                }
            }
            hold.shared.push(*h);
        }
    }

    /// Gives every block of `hold` back: private ones become free, shared ones lose a reference
    /// and, when unreferenced, become evictable (most recently released last).
    pub fn release(&mut self, hold: &mut Holding) {
        self.free += hold.private;
        hold.private = 0;
        // Release the tail first so the prefix's head is evicted last.
        for h in hold.shared.drain(..).rev() {
            let c = self.cached.get_mut(&h).expect("held blocks are cached");
            c.refs -= 1;
            if c.refs == 0 {
                self.tick += 1;
                c.released_at = self.tick;
                self.lru.insert(self.tick, h);
            }
        }
    }

    /// Checks the accounting invariant given every holding alive.
    #[cfg(test)]
    pub fn check<'a>(&self, holds: impl IntoIterator<Item = &'a Holding>) {
        let private: u32 = holds.into_iter().map(|h| h.private).sum();
        assert_eq!(self.free + private + self.cached.len() as u32, self.total, "block accounting");
        assert_eq!(self.lru.len(), self.cached.values().filter(|c| c.refs == 0).count(), "lru holds the unreferenced");
    }
}

/// Hash chain of a prompt's full blocks: block i's hash covers every token up to its end, so equal
/// hashes mean equal prefixes (as vLLM's block hashes).
pub fn block_hashes(tokens: &[u32], block_size: u32, salt: u64) -> Vec<u64> {
    let mut h = salt ^ 0x9e37_79b9_7f4a_7c15;
    tokens
        .chunks_exact(block_size.max(1) as usize)
        .map(|block| {
            for t in block {
                h = (h ^ u64::from(*t)).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
            }
            h
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn admitting_onto_idle_cached_blocks_counts_them_as_taken() {
        // 10 blocks: 6 held by a running sequence, prefix blocks A and B cached but idle, 2 free.
        let mut kv = KvCache::new(10, 2, true);
        let mut running = Holding::default();
        assert!(kv.grow(&mut running, 6));
        let ab = block_hashes(&[1, 2, 3, 4], 2, 0);
        let mut old = Holding::default();
        assert!(kv.grow(&mut old, 2));
        kv.publish(&mut old, &ab);
        kv.release(&mut old);
        assert_eq!(kv.available(), 4);
        // A prompt starting with A, B needs 5 blocks: 3 new + the 2 idle ones leave the pool: 5 > 4.
        assert_eq!(kv.lookup(&ab), 2);
        assert_eq!(kv.admission_cost(&ab, 2, 5), 5);
        assert_eq!(kv.admission_cost(&ab, 2, 4), 4, "fits exactly");
        let mut new = Holding::default();
        kv.acquire(&mut new, &ab, 2);
        assert!(kv.grow(&mut new, 4));
        kv.check([&running, &new]);
    }

    #[test]
    fn shared_prefixes_are_found_and_evicted_lru() {
        let mut kv = KvCache::new(4, 2, true);
        let a = block_hashes(&[1, 2, 3, 4, 5], 2, 0);
        assert_eq!(a.len(), 2, "only full blocks are named");
        let mut ha = Holding::default();
        assert!(kv.grow(&mut ha, 3));
        kv.publish(&mut ha, &a);
        assert_eq!((ha.shared.len(), ha.private), (2, 1));
        kv.release(&mut ha);
        assert_eq!(kv.available(), 4, "released cached blocks can be evicted");
        // Same first block, different second.
        let b = block_hashes(&[1, 2, 9, 9], 2, 0);
        assert_eq!(kv.lookup(&b), 1);
        let mut hb = Holding::default();
        kv.acquire(&mut hb, &b, 1);
        assert!(kv.grow(&mut hb, 4), "three more blocks: two free, one evicted");
        assert_eq!(kv.lookup(&a), 1, "a's second block was evicted");
        assert!(!kv.grow(&mut Holding::default(), 1), "full");
        kv.check([&hb]);
    }

    proptest! {
        #[test]
        fn accounting_holds_under_any_sequence_of_operations(ops in proptest::collection::vec((0u8..4, 0usize..6, 1u32..6), 1..200)) {
            let mut kv = KvCache::new(16, 4, true);
            let prompts: Vec<Vec<u64>> = (0..6u32).map(|i| block_hashes(&(0..16).map(|t| t * (i % 3)).collect::<Vec<_>>(), 4, 0)).collect();
            let mut holds: Vec<Holding> = vec![Holding::default(); 6];
            for (op, i, n) in ops {
                let h = &mut holds[i];
                match op {
                    0 if h.blocks() == 0 => { let n = kv.lookup(&prompts[i]); kv.acquire(h, &prompts[i], n); }
                    1 => { let want = h.blocks() + n; let _ = kv.grow(h, want); }
                    2 => kv.publish(h, &prompts[i]),
                    _ => kv.release(h),
                }
                kv.check(holds.iter());
                prop_assert!(kv.available() <= kv.total());
            }
        }
    }
}
