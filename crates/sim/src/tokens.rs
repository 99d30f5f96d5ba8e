//! Tokens without a model: an approximate tokenizer for prompts and deterministic output text.
//!
//! Prompt tokens: a word piece of up to [`MAX_PIECE`] letters or digits (with its leading space) is
//! one token, every other character is one token — about 1.2 tokens per English word, close to
//! BPE tokenizers on prose. Each piece maps to a 32-bit id by hashing, so equal text gives equal
//! ids (prefix caching works on text). Prompts given as token ids are used as they are.
//!
//! Output tokens are common English words with a leading space, each a single token in the
//! Llama / GPT tokenizers, so a client that re-tokenizes the text counts what the server reports.

/// Longest run of alphanumerics counted as one token.
pub const MAX_PIECE: usize = 6;

/// Token ids of `text` (see the module doc).
pub fn encode(text: &str) -> Vec<u32> {
    let mut out = Vec::with_capacity(text.len() / 4 + 1);
    encode_into(text, &mut out);
    out
}

/// Appends the token ids of `text` to `out`.
pub fn encode_into(text: &str, out: &mut Vec<u32>) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        if b[i] == b' ' && i + 1 < b.len() && b[i + 1].is_ascii_alphanumeric() {
            i += 1;
        }
        let mut n = 0;
        while i < b.len() && b[i].is_ascii_alphanumeric() && n < MAX_PIECE {
            i += 1;
            n += 1;
        }
        if n == 0 {
            // One character (a UTF-8 sequence is one token too).
            i = start + 1;
            while i < b.len() && (b[i] & 0xC0) == 0x80 {
                i += 1;
            }
        }
        out.push(hash_piece(&b[start..i]));
    }
}

/// The id of one token's text (as [`encode`] gives it).
pub fn piece_id(piece: &str) -> u32 {
    hash_piece(piece.as_bytes())
}

fn hash_piece(p: &[u8]) -> u32 {
    // FNV-1a: tiny, stable across runs and platforms.
    let mut h: u32 = 0x811c_9dc5;
    for &c in p {
        h = (h ^ u32::from(c)).wrapping_mul(0x0100_0193);
    }
    h
}

/// A chat conversation as the prompt the model sees: each message wrapped in role markers, as a
/// chat template does (the markers are ~4 tokens per message, plus the assistant header).
pub fn chat_prompt<'a>(messages: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u32> {
    let mut out = Vec::new();
    for (role, content) in messages {
        out.push(hash_piece(b"<|start|>"));
        encode_into(role, &mut out);
        out.push(hash_piece(b"<|sep|>"));
        encode_into(content, &mut out);
        out.push(hash_piece(b"<|end|>"));
    }
    out.push(hash_piece(b"<|start|>"));
    out.push(hash_piece(b"assistant"));
    out
}

/// Words the simulated model says (none longer than [`MAX_PIECE`] letters: each is one token).
const WORDS: &[&str] = &[
    " the", " of", " and", " to", " in", " is", " that", " for", " it", " as", " with", " was", " on", " be", " at",
    " by", " this", " had", " not", " are", " but", " from", " or", " have", " an", " they", " which", " one", " you",
    " were", " all", " we", " her", " she", " there", " would", " their", " will", " when", " who", " him", " been",
    " has", " more", " if", " no", " out", " so", " said", " what", " up", " its", " about", " than", " into", " them",
    " can", " only", " other", " time", " new", " some", " could", " these", " two", " may", " first", " then", " do",
    " any", " like", " my", " now", " over", " such", " our", " man", " me", " even", " most", " made", " after",
    " also", " did", " many", " before", " must", " years", " where", " much", " your", " way", " well", " down",
    " should", " each", " just", " those", " people", " how", " too", " little", " state", " good", " very", " make",
    " world", " still", " own", " see", " men", " work", " long", " get", " here", " both", " life", " being",
    " under", " never", " day", " same", " know", " while", " last", " might", " us", " great", " old", " year",
    " off", " come", " since", " go", " came", " right", " used", " take", " three",
];

/// Deterministic output text: the same seed gives the same words.
#[derive(Debug, Clone)]
pub struct TextGen {
    state: u64,
}

impl TextGen {
    /// A generator for one request.
    pub fn new(seed: u64) -> Self {
        Self { state: seed ^ 0x2545_f491_4f6c_dd1d }
    }

    /// Appends the next `n` words to `out`.
    pub fn push_words(&mut self, n: u32, out: &mut String) {
        for _ in 0..n {
            // xorshift64*: fast and good enough to pick words.
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let r = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
            out.push_str(WORDS[(r >> 33) as usize % WORDS.len()]);
        }
    }

    /// The next `n` words.
    pub fn words(&mut self, n: u32) -> String {
        let mut s = String::with_capacity(n as usize * 6);
        self.push_words(n, &mut s);
        s
    }
}

/// A stable 64-bit hash of a request's content, to seed what the simulator draws for it.
pub fn content_hash(seed: u64, tokens: &[u32], max_tokens: u32) -> u64 {
    let mut h = seed ^ 0xcbf2_9ce4_8422_2325 ^ u64::from(max_tokens).rotate_left(17);
    for t in tokens {
        h = (h ^ u64::from(*t)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_word_pieces() {
        assert_eq!(encode("").len(), 0);
        assert_eq!(encode("Hello world").len(), 2);
        assert_eq!(encode("Hello, world!").len(), 4);
        assert_eq!(encode(" benchmarking").len(), 2, "long words split every 6 letters");
        assert_eq!(encode("héllo").len(), 3, "h, é, llo");
        assert_eq!(encode("a b")[1], encode("x b")[1], "same piece, same id");
        let prose = "The quick brown fox jumps over the lazy dog while the benchmark measures latency.";
        let words = prose.split_whitespace().count() as f64;
        let ratio = encode(prose).len() as f64 / words;
        assert!((1.0..1.5).contains(&ratio), "{ratio} tokens per word");
    }

    #[test]
    fn output_is_deterministic_and_one_token_per_word() {
        let a = TextGen::new(7).words(50);
        assert_eq!(a, TextGen::new(7).words(50));
        assert_ne!(a, TextGen::new(8).words(50));
        assert_eq!(encode(&a).len(), 50);
        let mut g = TextGen::new(7);
        let mut s = String::new();
        g.push_words(20, &mut s);
        g.push_words(30, &mut s);
        assert_eq!(s, a, "chunks concatenate to the same text");
    }

    #[test]
    fn chat_prompts_count_the_template() {
        let p = chat_prompt([("user", "Hello world")]);
        assert_eq!(p.len(), 2 + 3 + 1 + 2);
    }
}
