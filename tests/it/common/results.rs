//! Reading a results folder the way a test compares runs.

use std::{io::Read as _, path::Path};

/// Every per-request record of `dir/requests.jsonl.zst`, in file order.
pub fn records(dir: &Path) -> Vec<serde_json::Value> {
    let mut jsonl = String::new();
    zstd::Decoder::new(std::fs::File::open(dir.join("requests.jsonl.zst")).unwrap())
        .unwrap()
        .read_to_string(&mut jsonl)
        .unwrap();
    jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// What a run sent, to compare two runs request for request: (stage, intended µs, the prompt's
/// tokens as the dataset counted them) of every record of `dir`, sorted.
pub fn sent(dir: &Path) -> Vec<(String, u64, u64)> {
    let mut v: Vec<_> = records(dir)
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap_or(0);
            (r["stage"].as_str().unwrap().to_owned(), n("intended_us"), n("dataset_input_tokens"))
        })
        .collect();
    v.sort();
    v
}
