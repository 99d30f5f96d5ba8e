//! Token counts with the model's own tokenizer: Hugging Face `tokenizers` from a local
//! `tokenizer.json`. Nothing is downloaded at run time (pods may have no internet, and a benchmark
//! must not depend on a hub being up): a hub name with no local file is a clear error saying how
//! to fetch it.

use crate::LoadError;
use std::path::{Path, PathBuf};

/// A loaded tokenizer.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Where it was read from.
    pub source: PathBuf,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokenizer({})", self.source.display())
    }
}

impl Tokenizer {
    /// `spec` is a `tokenizer.json`, or a folder holding one (a downloaded model snapshot), or a
    /// Hugging Face hub name already in the local hub cache (`$HF_HUB_CACHE`, `$HF_HOME/hub`,
    /// `~/.cache/huggingface/hub`): nothing is downloaded at run time.
    pub fn load(spec: &str) -> Result<Tokenizer, LoadError> {
        Self::find_and_load(spec).map_err(LoadError::Tokenizer)
    }

    fn find_and_load(spec: &str) -> Result<Tokenizer, String> {
        let p = Path::new(spec);
        let mut file = if p.is_dir() { p.join("tokenizer.json") } else { p.to_path_buf() };
        let hub_name = !spec.starts_with('/') && !spec.starts_with('.') && spec.contains('/') && !p.exists();
        if hub_name && let Some(cached) = in_hub_cache(spec, &hub_cache_roots()) {
            file = cached;
        }
        if !file.is_file() {
            let hint = if hub_name {
                format!(
                    "; \"{spec}\" looks like a Hugging Face hub name that is not in the local hub cache, and inferbench downloads nothing at run time: fetch it first (e.g. `huggingface-cli download {spec} tokenizer.json`, into the cache, or with `--local-dir DIR` and give DIR)"
                )
            } else {
                String::new()
            };
            return Err(format!("tokenizer {}: no such file{hint}", file.display()));
        }
        let inner = tokenizers::Tokenizer::from_file(&file)
            .map_err(|e| format!("tokenizer {}: cannot load it: {e}", file.display()))?;
        Ok(Tokenizer { inner, source: file })
    }

    /// Tokens of `text`, without special tokens (a chunk must not gain a BOS: inference-perf #564).
    pub fn count(&self, text: &str) -> u32 {
        self.inner.encode_fast(text, false).map_or(0, |e| e.len() as u32)
    }

    /// Tokens the tokenizer adds around any text (a BOS, …): what a server that tokenizes a
    /// completions prompt with this tokenizer counts beyond [`Tokenizer::count`].
    pub fn added_special_tokens(&self) -> u32 {
        let with = self.inner.encode_fast("a", true).map_or(0, |e| e.len() as u32);
        with.saturating_sub(self.count("a"))
    }

    /// Up to `limit` words (a space, then ASCII letters) that add exactly one token each to a text
    /// made of them, in vocabulary order (for BPE, the most frequent merges first). Synthetic
    /// prompts are built from them so that a prompt of N tokens is N tokens *as the server counts
    /// them*, whatever the vocabulary: a fixed English word list is one token each in Llama's and
    /// GPT's vocabularies but two or three in a small one.
    pub fn one_token_words(&self, limit: usize) -> Vec<String> {
        let mut vocab: Vec<(String, u32)> = self.inner.get_vocab(false).into_iter().collect();
        vocab.sort_by_key(|(_, id)| *id);
        let mut words = Vec::new();
        for (_, id) in vocab {
            let Ok(text) = self.inner.decode(&[id], true) else { continue };
            let word = text.trim_start();
            if word.len() < 2 || !word.bytes().all(|b| b.is_ascii_alphabetic()) {
                continue;
            }
            let w = format!(" {word}");
            // Its cost inside a text of such words: a tokenizer that marks a text's start (a
            // SentencePiece `▁` prefix) charges the first word more, and that is the prompt's, not
            // the word's.
            if self.count(&w.repeat(2)) == self.count(&w) + 1 && self.count(&w.repeat(3)) == self.count(&w) + 2 {
                words.push(w);
                if words.len() == limit {
                    break;
                }
            }
        }
        words
    }
}

/// Where Hugging Face's hub cache may be, in the order its tools look.
pub(crate) fn hub_cache_roots() -> Vec<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let mut roots = vec![];
    roots.extend(env("HF_HUB_CACHE"));
    roots.extend(env("HF_HOME").map(|h| h.join("hub")));
    roots.extend(env("HOME").map(|h| h.join(".cache/huggingface/hub")));
    roots
}

/// `tokenizer.json` of hub model `name` ("org/model") in a hub cache under one of `roots`
/// (`models--org--model/snapshots/REV/tokenizer.json`; the revision `refs/main` names first).
fn in_hub_cache(name: &str, roots: &[PathBuf]) -> Option<PathBuf> {
    let folder = format!("models--{}", name.replace('/', "--"));
    roots.iter().find_map(|root| {
        let repo = root.join(&folder);
        let main = std::fs::read_to_string(repo.join("refs/main")).ok();
        let preferred = main.map(|rev| repo.join("snapshots").join(rev.trim()).join("tokenizer.json"));
        preferred.filter(|p| p.is_file()).or_else(|| {
            let mut snaps: Vec<PathBuf> =
                std::fs::read_dir(repo.join("snapshots")).ok()?.flatten().map(|e| e.path()).collect();
            snaps.sort();
            snaps.into_iter().map(|s| s.join("tokenizer.json")).find(|p| p.is_file())
        })
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A word-level tokenizer over a small vocabulary, saved as tokenizer.json in `dir`.
    pub(crate) fn small_tokenizer(dir: &Path) -> PathBuf {
        let vocab: serde_json::Map<String, serde_json::Value> =
            ["[UNK]", "hello", "world", "the", "a", "benchmark", ",", "!"]
                .iter()
                .enumerate()
                .map(|(i, w)| ((*w).to_owned(), i.into()))
                .collect();
        let json = serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [],
            "normalizer": {"type": "Lowercase"},
            "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": null,
            "decoder": null,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"},
        });
        let path = dir.join("tokenizer.json");
        std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        path
    }

    #[test]
    fn a_local_tokenizer_counts_and_a_hub_name_says_how_to_fetch_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = small_tokenizer(dir.path());
        let t = Tokenizer::load(path.to_str().unwrap()).unwrap();
        assert_eq!(t.count("Hello world, the benchmark!"), 6);
        assert_eq!(Tokenizer::load(dir.path().to_str().unwrap()).unwrap().count("a a a"), 3, "a folder works too");
        let e = Tokenizer::load("meta-llama/Not-A-Real-Model-xyz").unwrap_err().to_string();
        assert!(e.contains("looks like a Hugging Face hub name") && e.contains("huggingface-cli download"), "{e}");
        std::fs::write(dir.path().join("bad.json"), "{not json").unwrap();
        let e = Tokenizer::load(dir.path().join("bad.json").to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("cannot load it"), "{e}");
    }

    #[test]
    fn a_hub_name_is_found_in_the_local_hub_cache() {
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("models--org--model");
        for rev in ["aaa", "bbb"] {
            std::fs::create_dir_all(repo.join("snapshots").join(rev)).unwrap();
            small_tokenizer(&repo.join("snapshots").join(rev));
        }
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "bbb\n").unwrap();
        let roots = [root.path().join("elsewhere"), root.path().to_path_buf()];
        assert_eq!(
            in_hub_cache("org/model", &roots),
            Some(repo.join("snapshots/bbb/tokenizer.json")),
            "refs/main first"
        );
        std::fs::remove_file(repo.join("refs/main")).unwrap();
        assert_eq!(in_hub_cache("org/model", &roots), Some(repo.join("snapshots/aaa/tokenizer.json")));
        assert_eq!(in_hub_cache("org/other", &roots), None);
    }
}
