//! Prompts and their desired output lengths: ShareGPT, JSON Lines, synthetic length
//! distributions and shared-prefix groups, and (in [`chat`]) IPEX `prompt.json`, conversations
//! (message lists) and multi-turn chats; filtered by length as the latency-profile-generator
//! does (prompts under 4 tokens or over `max_input_length`, outputs under 4 or over
//! `max_output_length` are dropped); sampled in a seeded order.
//!
//! Token counts use the tokenizer when one is given, else an estimate of one token per 4
//! characters (reported as such). Broken entries are skipped and counted with the first one's
//! place, never fatal unless nothing usable is left.

mod chat;

use crate::LoadError;
use std::{borrow::Cow, path::Path, sync::Arc};

use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use rand_distr::{Distribution, Normal};
use serde::Deserialize;

use super::{
    backends::Prompt,
    runner::{Prompts, Turn, Work},
    tokenize::Tokenizer,
};
use inferbench_schema::{Dataset, LengthDistribution, dataset};

/// One usable entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The prompt.
    pub prompt: Prompt,
    /// Its tokens (counted or estimated).
    pub input_tokens: u32,
    /// Output tokens to ask for.
    pub output_tokens: u32,
    /// A conversation's later turns (multi-turn datasets).
    pub turns: Arc<[Turn]>,
}

impl Entry {
    /// A single request.
    pub fn single(prompt: Prompt, input_tokens: u32, output_tokens: u32) -> Entry {
        Entry { prompt, input_tokens, output_tokens, turns: Arc::default() }
    }
}

/// A loaded dataset.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Usable entries.
    pub entries: Vec<Entry>,
    /// Entries dropped by the length filters.
    pub filtered: u64,
    /// Entries that could not be read, and the first one's place and reason.
    pub broken: u64,
    /// The first broken entry, "file:line: reason".
    pub first_broken: Option<String>,
    /// Whether token counts came from a tokenizer.
    pub tokenized: bool,
}

/// LPG's defaults.
const DEFAULT_MAX_INPUT: u32 = 1024;
const DEFAULT_MAX_OUTPUT: u32 = 1024;
/// LPG drops prompts and outputs shorter than this.
const MIN_LEN: u32 = 4;

pub(crate) struct Counter<'a>(Option<&'a Tokenizer>);

impl Counter<'_> {
    pub(crate) fn count(&self, text: &str) -> u32 {
        match self.0 {
            Some(t) => t.count(text),
            None => (text.len() as u32).div_ceil(4),
        }
    }
}

/// Loads `spec` (paths relative to the working directory).
pub fn load(spec: &Dataset, tokenizer: Option<&Tokenizer>, seed: u64) -> Result<Loaded, LoadError> {
    load_entries(spec, tokenizer, seed).map_err(LoadError::Dataset)
}

fn load_entries(spec: &Dataset, tokenizer: Option<&Tokenizer>, seed: u64) -> Result<Loaded, String> {
    let max_in = spec.max_input_length.unwrap_or(DEFAULT_MAX_INPUT);
    let max_out = spec.max_output_length.unwrap_or(DEFAULT_MAX_OUTPUT);
    let counter = Counter(tokenizer);
    let mut out = Loaded { tokenized: tokenizer.is_some(), ..Loaded::default() };
    let keep = |out: &mut Loaded, e: Entry| {
        let (input, output) = (e.input_tokens, e.output_tokens);
        if input < MIN_LEN || input > max_in || output < MIN_LEN || output > max_out {
            out.filtered += 1;
        } else {
            out.entries.push(e);
        }
    };
    match &spec.source {
        None => return Err("no dataset given (sharegpt, jsonl, synthetic, shared_prefix, …)".into()),
        Some(dataset::Source::Sharegpt(path)) => {
            let path = &sharegpt_file(path)?;
            let bytes = read(path)?;
            let items: Vec<ShareGpt<'_>> =
                serde_json::from_slice(&bytes).map_err(|e| format!("{path}: not a ShareGPT JSON array: {e}"))?;
            for (i, item) in items.iter().enumerate() {
                let mut turns = item.conversations.iter();
                match (turns.next(), turns.next()) {
                    (Some(q), Some(a)) if q.from != "gpt" => {
                        let (input, output) = (counter.count(&q.value), counter.count(&a.value));
                        keep(&mut out, Entry::single(Prompt::Text(q.value.to_string().into()), input, output));
                    }
                    _ => {
                        out.broken += 1;
                        out.first_broken.get_or_insert_with(|| {
                            format!("{path}: conversation {i}: needs a question then an answer")
                        });
                    }
                }
            }
        }
        Some(dataset::Source::Jsonl(path)) => {
            let text = String::from_utf8(read(path)?).map_err(|e| format!("{path}: not UTF-8: {e}"))?;
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                match serde_json::from_str::<JsonlEntry<'_>>(line) {
                    Ok(e) => {
                        let input = counter.count(&e.prompt);
                        keep(&mut out, Entry::single(Prompt::Text(e.prompt.into_owned().into()), input, e.output_len));
                    }
                    Err(err) => {
                        out.broken += 1;
                        out.first_broken.get_or_insert_with(|| format!("{path}:{}: {err}", i + 1));
                    }
                }
            }
        }
        Some(dataset::Source::Synthetic(s)) => {
            let mut rng = StdRng::seed_from_u64(seed);
            let input = s.input.unwrap_or_default();
            let output = s.output.unwrap_or_default();
            let filler = Filler::new(tokenizer);
            for _ in 0..SYNTHETIC_ENTRIES {
                let n = draw(&input, 256, &mut rng)?;
                let o = draw(&output, 128, &mut rng)?;
                let (text, tokens) = filler.text(n, &mut rng);
                out.entries.push(Entry {
                    prompt: Prompt::Text(text.into()),
                    input_tokens: tokens,
                    output_tokens: o,
                    turns: Arc::default(),
                });
            }
        }
        Some(dataset::Source::SharedPrefix(s)) => {
            let mut rng = StdRng::seed_from_u64(seed);
            let (groups, per) = (s.num_groups.unwrap_or(10).max(1), s.prompts_per_group.unwrap_or(10).max(1));
            let (prefix_len, suffix_len) = (s.prefix_length.unwrap_or(512), s.suffix_length.unwrap_or(128));
            let output = s.output_length.unwrap_or(128).max(1);
            let filler = Filler::new(tokenizer);
            for _ in 0..groups {
                let (prefix, _) = filler.text(prefix_len, &mut rng);
                for _ in 0..per {
                    // The suffix's words follow the prefix's: each adds exactly its own tokens.
                    let suffix = filler.words(suffix_len, &mut rng);
                    let text = format!("{prefix}{suffix}");
                    let tokens = filler.count(&text).unwrap_or(prefix_len + suffix_len);
                    out.entries.push(Entry {
                        prompt: Prompt::Text(text.into()),
                        input_tokens: tokens,
                        output_tokens: output,
                        turns: Arc::default(),
                    });
                }
            }
        }
        Some(dataset::Source::Ipex(path)) => chat::ipex(path, &read(path)?, &counter, max_out, &mut out, &keep)?,
        Some(dataset::Source::Conversations(path)) => {
            chat::conversations(path, &read(path)?, &counter, max_out, false, &mut out, &keep)?
        }
        Some(dataset::Source::MultiTurn(m)) => match m.path.as_deref().filter(|p| !p.is_empty()) {
            Some(path) => chat::conversations(path, &read(path)?, &counter, max_out, true, &mut out, &keep)?,
            None => chat::synthetic_multi_turn(m, seed, &Filler::new(tokenizer), &mut out)?,
        },
    }
    if out.entries.is_empty() {
        let why = out.first_broken.clone().map_or(String::new(), |b| format!("; first broken entry: {b}"));
        return Err(format!(
            "the dataset has no usable prompt ({} filtered by length: inputs {MIN_LEN}..={max_in}, outputs {MIN_LEN}..={max_out} tokens; {} broken{why})",
            out.filtered, out.broken
        ));
    }
    Ok(out)
}

/// Synthetic datasets hold this many entries, sampled from as long as the run needs.
const SYNTHETIC_ENTRIES: usize = 4096;

/// The name latency-profile-generator gives its ShareGPT file (and catalogs that use LPG's default).
pub const LPG_SHAREGPT: &str = "sharegpt_v3_unfiltered_cleaned_split";
const SHAREGPT_FILE: &str = "ShareGPT_V3_unfiltered_cleaned_split.json";
const SHAREGPT_URL: &str = "https://huggingface.co/datasets/anon8231489123/ShareGPT_Vicuna_unfiltered/resolve/main/ShareGPT_V3_unfiltered_cleaned_split.json";

/// A ShareGPT path as given, or, for LPG's dataset name, the file where LPG's users have it: the
/// working folder, or the Hugging Face hub cache. Nothing is downloaded; the error says how.
fn sharegpt_file(path: &str) -> Result<String, String> {
    if path != LPG_SHAREGPT || Path::new(path).exists() {
        return Ok(path.to_owned());
    }
    sharegpt_in(Path::new("."), super::tokenize::hub_cache_roots().into_iter())
}

/// LPG's ShareGPT file in `folder` or one of the hub cache `roots`.
fn sharegpt_in(folder: &Path, roots: impl Iterator<Item = std::path::PathBuf>) -> Result<String, String> {
    let mut candidates = vec![folder.join(SHAREGPT_FILE)];
    for root in roots {
        let snaps = root.join("datasets--anon8231489123--ShareGPT_Vicuna_unfiltered/snapshots");
        for e in std::fs::read_dir(snaps).into_iter().flatten().flatten() {
            candidates.push(e.path().join(SHAREGPT_FILE));
        }
    }
    candidates.into_iter().find(|c| c.is_file()).map(|c| c.to_string_lossy().into_owned()).ok_or_else(|| {
        format!(
            "dataset {LPG_SHAREGPT} (latency-profile-generator's ShareGPT): {SHAREGPT_FILE} is neither in the working folder nor in the Hugging Face hub cache, and nothing is downloaded at run time: fetch it (`wget {SHAREGPT_URL}`) and run from its folder, or give its path as the dataset"
        )
    })
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(Path::new(path)).map_err(|e| format!("dataset {path}: {e}"))
}

#[derive(Deserialize)]
struct ShareGpt<'a> {
    #[serde(borrow, default)]
    conversations: Vec<ShareGptTurn<'a>>,
}

#[derive(Deserialize)]
struct ShareGptTurn<'a> {
    #[serde(borrow, default)]
    from: Cow<'a, str>,
    #[serde(borrow, default)]
    value: Cow<'a, str>,
}

#[derive(Deserialize)]
struct JsonlEntry<'a> {
    #[serde(borrow)]
    prompt: Cow<'a, str>,
    output_len: u32,
}

/// A length from a distribution (truncated normal; `mean` alone: always `mean`).
pub(crate) fn draw(d: &LengthDistribution, default_mean: u32, rng: &mut StdRng) -> Result<u32, String> {
    let mean = d.mean.unwrap_or(default_mean).max(1);
    let (lo, hi) = (d.min.unwrap_or(1).max(1), d.max.unwrap_or(u32::MAX));
    if lo > hi {
        return Err(format!("length distribution: min {lo} > max {hi}"));
    }
    let sd = d.stddev.unwrap_or(0.0);
    let v = if sd > 0.0 {
        Normal::new(f64::from(mean), sd).map_err(|e| format!("length distribution: {e}"))?.sample(rng).round()
    } else {
        f64::from(mean)
    };
    Ok((v.max(1.0) as u32).clamp(lo, hi))
}

/// Words that are one token each in the Llama and GPT tokenizers.
pub(crate) const WORDS: &[&str] = &[
    " time",
    " year",
    " people",
    " way",
    " day",
    " man",
    " thing",
    " woman",
    " life",
    " child",
    " world",
    " school",
    " state",
    " family",
    " group",
    " country",
    " problem",
    " hand",
    " part",
    " place",
    " case",
    " week",
    " company",
    " system",
    " program",
    " question",
    " work",
    " number",
    " night",
    " point",
    " home",
    " water",
    " room",
    " mother",
    " area",
    " money",
    " story",
    " fact",
    " month",
    " lot",
    " right",
    " study",
    " book",
    " eye",
    " job",
    " word",
];

/// Synthetic prompt text of an exact number of tokens.
///
/// With the model's tokenizer, texts are made of words that each add exactly one token
/// ([`Tokenizer::one_token_words`]): a prompt asked to be N tokens is N tokens as the server counts
/// a completions prompt (the tokenizer's added BOS aside, which the server adds to every prompt
/// alike). Where the tokenizer splits text into words before merging (a byte-level or metaspace
/// pre-tokenizer: Llama, GPT, Mistral, Qwen …), such words add up whatever their neighbours, which
/// samples of joined words confirm once; then one text in [`VERIFY_EVERY`] is still counted whole,
/// and a miss turns counting on for every text. Otherwise (a tokenizer that merges across words)
/// every text is counted whole and corrected word by word. Counting every text of a large dataset
/// (4 096 prompts of 2 500 tokens) took minutes in a debug build. Without a tokenizer, [`WORDS`]
/// are one token each in Llama's and GPT's vocabularies: an estimate.
pub(crate) struct Filler<'a> {
    words: Vec<String>,
    tokenizer: Option<&'a Tokenizer>,
    /// Tokens a text of such words costs beyond one per word (a SentencePiece start mark).
    offset: u32,
    /// Words add up (see above): texts are exact by construction.
    additive: std::cell::Cell<bool>,
    /// Texts made so far (every [`VERIFY_EVERY`]-th is counted whole).
    made: std::cell::Cell<u64>,
}

/// Words kept from a vocabulary: plenty for varied prompts, few enough to find quickly.
const FILLER_WORDS: usize = 2000;
/// With words that add up, one text in this many is still counted whole.
const VERIFY_EVERY: u64 = 16;

impl<'a> Filler<'a> {
    pub(crate) fn new(tokenizer: Option<&'a Tokenizer>) -> Filler<'a> {
        let fixed = || WORDS.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
        let mut filler = Filler {
            words: fixed(),
            tokenizer,
            offset: 0,
            additive: std::cell::Cell::new(false),
            made: std::cell::Cell::new(0),
        };
        let Some(t) = tokenizer else { return filler };
        let words = t.one_token_words(FILLER_WORDS);
        if !words.is_empty() {
            filler.words = words;
        }
        filler.offset = t.count(&filler.words[0].repeat(3)).saturating_sub(3);
        // Joined in random orders, do the words add up? Four texts of 512 words.
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let adds_up = (0..4).all(|_| t.count(&filler.words(512, &mut rng)) == 512 + filler.offset);
        filler.additive.set(adds_up);
        filler
    }

    /// `n` random words, appended to a text of such words (no correction).
    pub(crate) fn words(&self, n: u32, rng: &mut StdRng) -> String {
        let mut s = String::with_capacity(n as usize * 7);
        for _ in 0..n {
            s.push_str(&self.words[rng.random_range(0..self.words.len())]);
        }
        s
    }

    /// The tokenizer's count of `text` (None without a tokenizer).
    pub(crate) fn count(&self, text: &str) -> Option<u32> {
        self.tokenizer.map(|t| t.count(text))
    }

    /// A text of `n` tokens and its count: `n` but where no text of words can be exactly `n`
    /// (fewer tokens than the tokenizer's start mark costs), or without a tokenizer (an estimate).
    pub(crate) fn text(&self, n: u32, rng: &mut StdRng) -> (String, u32) {
        let Some(t) = self.tokenizer else { return (self.words(n, rng), n) };
        let made = self.made.get();
        self.made.set(made + 1);
        let mut picks: Vec<usize> =
            (0..n.saturating_sub(self.offset).max(1)).map(|_| rng.random_range(0..self.words.len())).collect();
        let join = |picks: &[usize]| picks.iter().map(|&i| self.words[i].as_str()).collect::<String>();
        let mut text = join(&picks);
        if self.additive.get() && !made.is_multiple_of(VERIFY_EVERY) && n > self.offset {
            return (text, n);
        }
        let mut got = t.count(&text);
        if got != n && self.additive.get() {
            // The words did not add up here: count every text from now on.
            self.additive.set(false);
        }
        for _ in 0..8 {
            if got == n {
                break;
            }
            if got > n {
                let keep = picks.len().saturating_sub((got - n) as usize).max(1);
                if keep == picks.len() {
                    break;
                }
                picks.truncate(keep);
            } else {
                picks.extend((0..n - got).map(|_| rng.random_range(0..self.words.len())));
            }
            text = join(&picks);
            got = t.count(&text);
        }
        (text, got)
    }
}

/// Entries served in a seeded random order (cycling when the run needs more), each sent to a model
/// picked by the traffic split.
pub struct Sampled {
    entries: Vec<Entry>,
    order: Vec<u32>,
    /// Cumulative model weights, normalised to 1.
    split: Vec<f64>,
    seed: u64,
}

impl Sampled {
    /// Serves `loaded` to `models` weighted by `split` (empty: equal).
    pub fn new(loaded: Loaded, models: usize, split: &[f64], seed: u64) -> Result<Sampled, LoadError> {
        Self::weighted(loaded, models, split, seed).map_err(LoadError::Dataset)
    }

    fn weighted(loaded: Loaded, models: usize, split: &[f64], seed: u64) -> Result<Sampled, String> {
        let models = models.max(1);
        let weights: Vec<f64> = if split.is_empty() { vec![1.0; models] } else { split.to_vec() };
        if weights.len() != models
            || weights.iter().any(|w| !(w.is_finite() && *w >= 0.0))
            || weights.iter().sum::<f64>() <= 0.0
        {
            return Err(format!("traffic split {weights:?} must give a weight ≥ 0 to each of the {models} models"));
        }
        let total: f64 = weights.iter().sum();
        let split = weights.iter().scan(0.0, |acc, w| {
            *acc += w / total;
            Some(*acc)
        });
        let mut order: Vec<u32> = (0..loaded.entries.len() as u32).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        Ok(Sampled { entries: loaded.entries, order, split: split.collect(), seed })
    }
}

impl Prompts for Sampled {
    fn get(&self, i: u64) -> Work {
        let e = &self.entries[self.order[(i % self.order.len() as u64) as usize] as usize];
        let u = (splitmix(self.seed ^ i) >> 11) as f64 / (1u64 << 53) as f64;
        let model = self.split.iter().position(|c| u < *c).unwrap_or(self.split.len() - 1) as u16;
        Work {
            prompt: e.prompt.clone(),
            max_tokens: e.output_tokens,
            input_tokens: e.input_tokens,
            model,
            turns: e.turns.clone(),
        }
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferbench_schema::{SharedPrefix, Synthetic};

    fn ds(source: dataset::Source) -> Dataset {
        Dataset { source: Some(source), max_input_length: Some(200), max_output_length: Some(100) }
    }

    #[test]
    fn sharegpt_and_jsonl_are_read_filtered_and_broken_entries_counted() {
        let dir = tempfile::tempdir().unwrap();
        let long = "word ".repeat(400);
        let sg = serde_json::json!([
            {"id": "1", "conversations": [{"from": "human", "value": "What is the capital of France, please?"}, {"from": "gpt", "value": "The capital of France is Paris, of course."}]},
            {"id": "2", "conversations": [{"from": "human", "value": long}, {"from": "gpt", "value": "Too long a question."}]},
            {"id": "3", "conversations": [{"from": "human", "value": "Only a question"}]},
        ]);
        let p = dir.path().join("sg.json");
        std::fs::write(&p, sg.to_string()).unwrap();
        let l = load(&ds(dataset::Source::Sharegpt(p.to_str().unwrap().into())), None, 0).unwrap();
        assert_eq!((l.entries.len(), l.filtered, l.broken), (1, 1, 1));
        assert_eq!(l.entries[0].input_tokens, 10, "39 characters ≈ 10 tokens without a tokenizer");
        assert!(l.first_broken.unwrap().contains("conversation 2: needs a question then an answer"));

        let p = dir.path().join("d.jsonl");
        std::fs::write(&p, "{\"prompt\": \"hello world, the benchmark\", \"output_len\": 20}\n\n{\"prompt\": 3}\n")
            .unwrap();
        let dir2 = tempfile::tempdir().unwrap();
        let tok = Tokenizer::load(crate::tokenize::tests::small_tokenizer(dir2.path()).to_str().unwrap()).unwrap();
        let l = load(&ds(dataset::Source::Jsonl(p.to_str().unwrap().into())), Some(&tok), 0).unwrap();
        assert_eq!((l.entries.len(), l.broken, l.tokenized), (1, 1, true));
        assert_eq!((l.entries[0].input_tokens, l.entries[0].output_tokens), (5, 20));
        assert!(l.first_broken.unwrap().contains("d.jsonl:3: "), "line numbers count blank lines");
        let e = load(&ds(dataset::Source::Jsonl("/no/such.jsonl".into())), None, 0).unwrap_err().to_string();
        assert!(e.contains("/no/such.jsonl"), "{e}");
    }

    #[test]
    fn synthetic_lengths_follow_the_distribution_and_shared_prefixes_share() {
        let s = Synthetic {
            input: Some(LengthDistribution { mean: Some(100), min: Some(50), max: Some(150), stddev: Some(30.0) }),
            output: Some(LengthDistribution { mean: Some(64), ..Default::default() }),
        };
        let mut d = ds(dataset::Source::Synthetic(s));
        d.max_input_length = Some(1000);
        let l = load(&d, None, 7).unwrap();
        let mean = l.entries.iter().map(|e| f64::from(e.input_tokens)).sum::<f64>() / l.entries.len() as f64;
        assert!((mean - 100.0).abs() < 3.0, "{mean}");
        assert!(l.entries.iter().all(|e| (50..=150).contains(&e.input_tokens) && e.output_tokens == 64));
        let Prompt::Text(t) = &l.entries[0].prompt else { panic!() };
        assert_eq!(t.split_whitespace().count() as u32, l.entries[0].input_tokens);

        let sp = SharedPrefix {
            num_groups: Some(2),
            prompts_per_group: Some(3),
            prefix_length: Some(50),
            suffix_length: Some(10),
            output_length: Some(8),
        };
        let l = load(&ds(dataset::Source::SharedPrefix(sp)), None, 1).unwrap();
        assert_eq!(l.entries.len(), 6);
        let text = |i: usize| match &l.entries[i].prompt {
            Prompt::Text(t) => t.to_string(),
            Prompt::Chat(_) => unreachable!(),
        };
        let prefix = |i: usize| text(i).split_whitespace().take(50).collect::<Vec<_>>().join(" ");
        assert_eq!(prefix(0), prefix(2));
        assert_ne!(prefix(0), prefix(3));
        assert_ne!(text(0), text(1));
    }

    #[test]
    fn with_a_tokenizer_synthetic_prompts_are_exactly_the_asked_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let tok = Tokenizer::load(crate::tokenize::tests::small_tokenizer(dir.path()).to_str().unwrap()).unwrap();
        let s = Synthetic {
            input: Some(LengthDistribution { mean: Some(40), min: Some(5), max: Some(90), stddev: Some(20.0) }),
            output: Some(LengthDistribution { mean: Some(8), ..Default::default() }),
        };
        let l = load(&ds(dataset::Source::Synthetic(s)), Some(&tok), 3).unwrap();
        assert!(l.tokenized);
        // Every text, the ones counted whole and the ones exact by construction alike.
        for e in &l.entries {
            let Prompt::Text(t) = &e.prompt else { panic!() };
            assert_eq!(tok.count(t), e.input_tokens, "{t}");
            assert!(t.split_whitespace().all(|w| ["hello", "world", "the", "benchmark"].contains(&w)), "{t}");
        }
        let lens: std::collections::BTreeSet<u32> = l.entries.iter().map(|e| e.input_tokens).collect();
        assert!(lens.len() > 20 && lens.iter().all(|n| (5..=90).contains(n)), "{lens:?}");
    }

    #[test]
    fn lpgs_sharegpt_name_is_found_where_its_users_keep_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = sharegpt_in(dir.path(), std::iter::empty()).unwrap_err();
        assert!(
            e.contains("wget https://huggingface.co/datasets/anon8231489123") && e.contains("nothing is downloaded"),
            "{e}"
        );
        let snap = dir.path().join("hub/datasets--anon8231489123--ShareGPT_Vicuna_unfiltered/snapshots/abc");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(snap.join(SHAREGPT_FILE), "[]").unwrap();
        let found = sharegpt_in(dir.path(), std::iter::once(dir.path().join("hub"))).unwrap();
        assert_eq!(found, snap.join(SHAREGPT_FILE).to_string_lossy());
        std::fs::write(dir.path().join(SHAREGPT_FILE), "[]").unwrap();
        assert_eq!(
            sharegpt_in(dir.path(), std::iter::empty()).unwrap(),
            dir.path().join(SHAREGPT_FILE).to_string_lossy(),
            "the working folder first"
        );
    }

    #[test]
    fn sampling_is_seeded_and_follows_the_traffic_split() {
        let entries = (0..10).map(|i| Entry::single(Prompt::Text(i.to_string().into()), 4, 4));
        let loaded = || Loaded { entries: entries.clone().collect(), ..Loaded::default() };
        let s = Sampled::new(loaded(), 2, &[3.0, 1.0], 5).unwrap();
        let firsts: Vec<_> = (0..10).map(|i| s.get(i).prompt).collect();
        assert_eq!(
            firsts,
            (0..10).map(|i| Sampled::new(loaded(), 2, &[3.0, 1.0], 5).unwrap().get(i).prompt).collect::<Vec<_>>()
        );
        let mut seen: Vec<_> = firsts.iter().map(|p| format!("{p:?}")).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 10, "one pass visits every entry once");
        let to_first = (0..10_000).filter(|i| s.get(*i).model == 0).count();
        assert!((7200..7800).contains(&to_first), "{to_first} of 10 000 to the model weighted 3:1");
        assert!(Sampled::new(loaded(), 2, &[1.0], 0).is_err());
    }
}
