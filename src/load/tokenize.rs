//! Token counts with the model's own tokenizer: Hugging Face `tokenizers` from a local
//! `tokenizer.json`. Nothing is downloaded at run time (pods may have no internet, and a benchmark
//! must not depend on a hub being up): a hub name with no local file is a clear error saying how
//! to fetch it.

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
    /// `spec` is a `tokenizer.json`, or a folder holding one (a downloaded model snapshot).
    pub fn load(spec: &str) -> Result<Tokenizer, String> {
        let p = Path::new(spec);
        let file = if p.is_dir() { p.join("tokenizer.json") } else { p.to_path_buf() };
        if !file.is_file() {
            let hint = if !spec.starts_with('/') && !spec.starts_with('.') && spec.contains('/') && !p.exists() {
                format!(
                    "; \"{spec}\" looks like a Hugging Face hub name, and inferbench downloads nothing at run time: fetch it first (e.g. `huggingface-cli download {spec} tokenizer.json --local-dir DIR`) and give DIR or DIR/tokenizer.json"
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
        let e = Tokenizer::load("meta-llama/Llama-3.1-8B-Instruct").unwrap_err();
        assert!(e.contains("looks like a Hugging Face hub name") && e.contains("huggingface-cli download"), "{e}");
        std::fs::write(dir.path().join("bad.json"), "{not json").unwrap();
        let e = Tokenizer::load(dir.path().join("bad.json").to_str().unwrap()).unwrap_err();
        assert!(e.contains("cannot load it"), "{e}");
    }
}
