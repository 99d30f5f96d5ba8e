//! A benchmark's resolved config against its base's: what the derived benchmark changes, which is
//! usually what a comparison of the two is about. A line diff (`similar`) of the two canonical
//! text-format files, with a few lines of context around each change.

use similar::{ChangeTag, TextDiff};

/// Top-level fields that describe a benchmark itself and are never inherited (see
/// [`crate::catalog::inherit`]): they always differ from the base's, so a diff leaves them out.
const OWN_FIELDS: &[&str] = &["name:", "base_benchmark_name:", "abstract:", "description:"];

/// A resolved config without its own (never inherited) top-level fields.
pub fn config_only(pbtxt: &str) -> String {
    pbtxt.lines().filter(|l| !OWN_FIELDS.iter().any(|f| l.starts_with(f))).map(|l| format!("{l}\n")).collect()
}

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffLine {
    /// In both.
    Same(String),
    /// Only in the base.
    Removed(String),
    /// Only in the benchmark.
    Added(String),
    /// Unchanged lines left out.
    Gap,
}

/// The diff from `base` to `this`, with `context` unchanged lines around each change; empty when
/// they are the same.
pub fn diff(base: &str, this: &str, context: usize) -> Vec<DiffLine> {
    let d = TextDiff::from_lines(base, this);
    let mut out = vec![];
    for (i, group) in d.grouped_ops(context).iter().enumerate() {
        if i > 0 {
            out.push(DiffLine::Gap);
        }
        for op in group {
            for change in d.iter_changes(op) {
                let text = change.value().trim_end_matches('\n').to_owned();
                out.push(match change.tag() {
                    ChangeTag::Equal => DiffLine::Same(text),
                    ChangeTag::Delete => DiffLine::Removed(text),
                    ChangeTag::Insert => DiffLine::Added(text),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_come_with_context_and_gaps() {
        let base: String = (0..20).map(|i| format!("line {i}\n")).collect();
        let this = base.replace("line 2\n", "line two\n").replace("line 17\n", "");
        let d = diff(&base, &this, 1);
        assert_eq!(
            d,
            [
                DiffLine::Same("line 1".into()),
                DiffLine::Removed("line 2".into()),
                DiffLine::Added("line two".into()),
                DiffLine::Same("line 3".into()),
                DiffLine::Gap,
                DiffLine::Same("line 16".into()),
                DiffLine::Removed("line 17".into()),
                DiffLine::Same("line 18".into()),
            ]
        );
        assert!(diff(&base, &base, 3).is_empty());
    }

    #[test]
    fn identity_fields_are_left_out_nested_ones_kept() {
        let text = "name: \"b\"\nbase_benchmark_name: \"a\"\ndescription: \"d\"\nconfig {\n  name: \"x\"\n}\n";
        assert_eq!(config_only(text), "config {\n  name: \"x\"\n}\n");
    }
}
