//! Datasets of messages rather than single prompts:
//! - IPEX `prompt.json` (llm-on-ray's benchmark): `{family: {"<input tokens>": "<prompt>", …}, …}`,
//!   at any depth; every prompt is an entry;
//! - conversations (inference-benchmarker's format, `[{"conversations": [{"role", "content"}, …]}]`,
//!   and ShareGPT's `from`/`value` messages): the messages up to the last user message are sent as
//!   they are (system prompt and history, not flattened); the answer after it, if any, sets the
//!   output length;
//! - multi-turn: the same files replayed turn by turn — each user message sent once the previous
//!   answer is complete, after the real history (the model's own answers) — or synthetic
//!   conversations from length distributions.

use std::sync::Arc;

use rand::{SeedableRng, rngs::StdRng};
use serde::Deserialize;

use super::{Counter, Entry, Filler, Loaded, SYNTHETIC_ENTRIES, draw};
use inferbench_schema::MultiTurn;

use crate::{
    backends::{Message, Prompt},
    runner::Turn,
};

/// Output tokens asked for when a dataset gives no answer to measure one by.
const DEFAULT_OUTPUT: u32 = 256;

/// Loads an IPEX `prompt.json`.
pub(super) fn ipex(
    path: &str,
    bytes: &[u8],
    counter: &Counter<'_>,
    max_out: u32,
    out: &mut Loaded,
    keep: &dyn Fn(&mut Loaded, Entry),
) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("{path}: not an IPEX prompt.json: {e}"))?;
    fn walk(v: &serde_json::Value, at: &str, f: &mut dyn FnMut(&str, &serde_json::Value)) {
        match v.as_object() {
            Some(o) => o.iter().for_each(|(k, v)| walk(v, &format!("{at}/{k}"), f)),
            None => f(at, v),
        }
    }
    let output = DEFAULT_OUTPUT.min(max_out);
    walk(&v, "", &mut |at, leaf| match leaf.as_str() {
        Some(text) if !text.is_empty() => {
            keep(out, Entry::single(Prompt::Text(text.into()), counter.count(text), output));
        }
        _ => {
            out.broken += 1;
            out.first_broken.get_or_insert_with(|| format!("{path}: {at}: not a prompt text"));
        }
    });
    Ok(())
}

#[derive(Deserialize)]
struct Conversation {
    #[serde(default)]
    conversations: Vec<RawMessage>,
}

/// A message in either spelling: `role`/`content` or ShareGPT's `from`/`value`.
#[derive(Deserialize)]
struct RawMessage {
    #[serde(alias = "from", default)]
    role: String,
    #[serde(alias = "value", default)]
    content: String,
}

fn role(r: &str) -> &'static str {
    match r {
        "system" => "system",
        "assistant" | "gpt" | "bot" | "model" => "assistant",
        _ => "user",
    }
}

/// Loads a conversations file: single requests (`multi_turn` false) or conversations replayed
/// turn by turn.
pub(super) fn conversations(
    path: &str,
    bytes: &[u8],
    counter: &Counter<'_>,
    max_out: u32,
    multi_turn: bool,
    out: &mut Loaded,
    keep: &dyn Fn(&mut Loaded, Entry),
) -> Result<(), String> {
    let items: Vec<Conversation> = serde_json::from_slice(bytes)
        .map_err(|e| format!("{path}: not a JSON array of {{\"conversations\": [{{\"role\", \"content\"}}]}}: {e}"))?;
    for (i, c) in items.into_iter().enumerate() {
        let messages: Vec<Message> =
            c.conversations.into_iter().map(|m| Message { role: role(&m.role).into(), content: m.content }).collect();
        let entry = if multi_turn { replay(&messages, counter, max_out) } else { single(&messages, counter, max_out) };
        match entry {
            Some(e) => keep(out, e),
            None => {
                out.broken += 1;
                out.first_broken.get_or_insert_with(|| format!("{path}: conversation {i}: has no user message"));
            }
        }
    }
    Ok(())
}

/// Output tokens for the answer `a` (its length), else the default; never above `max_out`.
fn answer_len(a: Option<&Message>, counter: &Counter<'_>, max_out: u32) -> u32 {
    a.filter(|m| m.role == "assistant").map_or(DEFAULT_OUTPUT, |m| counter.count(&m.content)).min(max_out)
}

fn tokens(messages: &[Message], counter: &Counter<'_>) -> u32 {
    messages.iter().map(|m| counter.count(&m.content)).sum()
}

/// Everything up to the last user message, as one request.
fn single(messages: &[Message], counter: &Counter<'_>, max_out: u32) -> Option<Entry> {
    let last_user = messages.iter().rposition(|m| m.role == "user")?;
    let prompt = messages[..=last_user].to_vec();
    let output = answer_len(messages.get(last_user + 1), counter, max_out);
    Some(Entry::single(Prompt::Chat(prompt.clone()), tokens(&prompt, counter), output))
}

/// The system messages and the first user message as the first request; each later user message
/// a turn (the recorded answers are replaced by the model's own at run time).
fn replay(messages: &[Message], counter: &Counter<'_>, max_out: u32) -> Option<Entry> {
    let first_user = messages.iter().position(|m| m.role == "user")?;
    let prompt: Vec<Message> = messages[..=first_user].iter().filter(|m| m.role != "assistant").cloned().collect();
    let output = answer_len(messages.get(first_user + 1), counter, max_out);
    let turns: Vec<Turn> = messages
        .iter()
        .enumerate()
        .skip(first_user + 1)
        .filter(|(_, m)| m.role == "user")
        .map(|(j, m)| Turn { user: m.content.clone(), max_tokens: answer_len(messages.get(j + 1), counter, max_out) })
        .collect();
    Some(Entry {
        input_tokens: tokens(&prompt, counter),
        prompt: Prompt::Chat(prompt),
        output_tokens: output,
        turns: turns.into(),
    })
}

/// Synthetic conversations: `turns` user messages each, lengths from the distributions.
pub(super) fn synthetic_multi_turn(
    m: &MultiTurn,
    seed: u64,
    filler: &Filler<'_>,
    out: &mut Loaded,
) -> Result<(), String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (input, output) = (m.input.unwrap_or_default(), m.output.unwrap_or_default());
    let n_turns = m.turns.unwrap_or(3).clamp(1, 100);
    for _ in 0..SYNTHETIC_ENTRIES {
        let n = draw(&input, 128, &mut rng)?;
        let o = draw(&output, 128, &mut rng)?;
        let mut turns = Vec::with_capacity(n_turns as usize - 1);
        for _ in 1..n_turns {
            let (n, o) = (draw(&input, 128, &mut rng)?, draw(&output, 128, &mut rng)?);
            turns.push(Turn { user: filler.text(n, &mut rng).0, max_tokens: o });
        }
        let (content, n) = filler.text(n, &mut rng);
        let first = Message { role: "user".into(), content };
        out.entries.push(Entry {
            prompt: Prompt::Chat(vec![first]),
            input_tokens: n,
            output_tokens: o,
            turns: Arc::from(turns),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferbench_schema::{Dataset, LengthDistribution, dataset::Source};

    fn load(source: Source, file: Option<&str>) -> Result<Loaded, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.json");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        let p = path.to_str().unwrap().to_owned();
        let source = match source {
            Source::Ipex(_) => Source::Ipex(p),
            Source::Conversations(_) => Source::Conversations(p),
            Source::MultiTurn(m) if m.path.is_some() => Source::MultiTurn(MultiTurn { path: Some(p), ..m }),
            other => other,
        };
        super::super::load(&Dataset { source: Some(source), ..Default::default() }, None, 7).map_err(|e| e.to_string())
    }

    fn chat(e: &Entry) -> Vec<(String, String)> {
        match &e.prompt {
            Prompt::Chat(m) => m.iter().map(|m| (m.role.clone(), m.content.clone())).collect(),
            Prompt::Text(t) => panic!("text prompt {t}"),
        }
    }

    #[test]
    fn ipex_prompts_at_any_depth_become_entries() {
        let text = r#"{"llama": {"32": "a prompt of some thirty two characters ok", "64": ""}, "gpt-j": {"32": {"x": "another prompt here"}}}"#;
        let l = load(Source::Ipex(String::new()), Some(text)).unwrap();
        assert_eq!(l.entries.len(), 2);
        assert_eq!(l.broken, 1, "the empty one");
        assert!(l.first_broken.as_deref().unwrap().contains("/llama/64"));
        assert!(l.entries.iter().all(|e| e.output_tokens == DEFAULT_OUTPUT && e.turns.is_empty()));
        assert!(load(Source::Ipex(String::new()), Some("[1, 2")).unwrap_err().contains("not an IPEX prompt.json"));
    }

    #[test]
    fn conversations_keep_their_messages_and_answers_set_output_lengths() {
        let text = r#"[
          {"conversations": [{"role": "system", "content": "You are a helpful assistant."},
                             {"role": "user", "content": "rewrite that entire paragraph in the same style"}]},
          {"conversations": [{"from": "human", "value": "what is the capital of france, please"},
                             {"from": "gpt", "value": "Paris is the capital of France, and its largest city."}]},
          {"conversations": [{"role": "assistant", "content": "no question here"}]}
        ]"#;
        let l = load(Source::Conversations(String::new()), Some(text)).unwrap();
        assert_eq!(l.entries.len(), 2);
        assert_eq!((l.broken, l.first_broken.as_deref().map(|b| b.contains("conversation 2"))), (1, Some(true)));
        assert_eq!(chat(&l.entries[0])[0], ("system".into(), "You are a helpful assistant.".into()), "not flattened");
        assert_eq!(l.entries[0].output_tokens, DEFAULT_OUTPUT, "no answer: the default");
        assert_eq!(chat(&l.entries[1]), [("user".to_owned(), "what is the capital of france, please".to_owned())]);
        // The answer's length, by the estimate (4 characters a token) as no tokenizer is given.
        assert_eq!(l.entries[1].output_tokens, 53u32.div_ceil(4));
    }

    #[test]
    fn multi_turn_files_replay_user_turns_and_synthetic_ones_draw_lengths() {
        let text = r#"[{"conversations": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first question, rather long"},
            {"role": "assistant", "content": "first answer that is recorded"},
            {"role": "user", "content": "second question"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": "third question"}]}]"#;
        let m = MultiTurn { path: Some(String::new()), ..Default::default() };
        let l = load(Source::MultiTurn(m), Some(text)).unwrap();
        assert_eq!(l.entries.len(), 1);
        let e = &l.entries[0];
        assert_eq!(
            chat(e),
            [("system".into(), "Be brief.".into()), ("user".into(), "first question, rather long".into())]
        );
        assert_eq!(e.output_tokens, "first answer that is recorded".len().div_ceil(4) as u32);
        let turns: Vec<(&str, u32)> = e.turns.iter().map(|t| (t.user.as_str(), t.max_tokens)).collect();
        assert_eq!(turns, [("second question", 1), ("third question", DEFAULT_OUTPUT)]);

        let fixed = |n| LengthDistribution { mean: Some(n), ..Default::default() };
        let m = MultiTurn { turns: Some(4), input: Some(fixed(20)), output: Some(fixed(30)), ..Default::default() };
        let l = load(Source::MultiTurn(m), None).unwrap();
        assert_eq!(l.entries.len(), SYNTHETIC_ENTRIES);
        let e = &l.entries[0];
        assert_eq!((e.input_tokens, e.output_tokens, e.turns.len()), (20, 30, 3));
        assert!(e.turns.iter().all(|t| t.max_tokens == 30 && t.user.split_whitespace().count() == 20));
    }
}
