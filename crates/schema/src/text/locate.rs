//! Where each field of a text-format file is written.
//!
//! prost-reflect parses text format into messages but keeps no positions, and a user needs to hear
//! `catalog/x.pbtxt:42:7: benchmarks[3].config.model_server.replicas: ...`. This walks the same
//! tokens once more, guided by the message descriptors (to know which fields are repeated), and
//! records the offset of every field name under its path. It runs only on files that already
//! parsed, but must never panic on anything (it is fuzzed).

use std::collections::HashMap;

use prost_reflect::{Kind, MessageDescriptor};

/// Field path → byte offset of the field's name, e.g. `benchmarks[0].config.model_server` → 42.
#[derive(Debug, Default, Clone)]
pub struct Positions {
    map: HashMap<String, usize>,
}

impl Positions {
    /// Indexes `text`, a message of type `desc` in text format.
    pub fn index(desc: &MessageDescriptor, text: &str) -> Self {
        let mut walker = Walker { toks: Tokens { s: text.as_bytes(), i: 0 }, out: HashMap::new() };
        walker.fields(Some(desc), "", None, 0);
        Self { map: walker.out }
    }

    /// The offset of exactly this path, if it is written in the file.
    pub fn get(&self, path: &str) -> Option<usize> {
        self.map.get(path).copied()
    }

    /// The offset of this path or, failing that, of its longest written prefix (a missing field
    /// is reported at the message that should have held it).
    pub fn nearest(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(o) = self.get(p) {
                return Some(o);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// Number of indexed paths.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing was indexed.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Ident,
    Str,
    Num,
    Punct(u8),
}

struct Tokens<'a> {
    s: &'a [u8],
    i: usize,
}

impl Tokens<'_> {
    /// Next token and its start offset; `None` at the end.
    fn next(&mut self) -> Option<(Tok, usize)> {
        let s = self.s;
        loop {
            while self.i < s.len() && s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
            if self.i < s.len() && s[self.i] == b'#' {
                while self.i < s.len() && s[self.i] != b'\n' {
                    self.i += 1;
                }
                continue;
            }
            break;
        }
        let start = self.i;
        let c = *s.get(start)?;
        self.i += 1;
        let tok = match c {
            b'"' | b'\'' => {
                while self.i < s.len() && s[self.i] != c && s[self.i] != b'\n' {
                    self.i += if s[self.i] == b'\\' { 2 } else { 1 };
                }
                self.i = (self.i + 1).min(s.len());
                Tok::Str
            }
            b'0'..=b'9' | b'.' => {
                while self.i < s.len() && (s[self.i].is_ascii_alphanumeric() || matches!(s[self.i], b'.' | b'_'))
                    || (self.i < s.len() && matches!(s[self.i], b'+' | b'-') && matches!(s[self.i - 1], b'e' | b'E'))
                {
                    self.i += 1;
                }
                Tok::Num
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while self.i < s.len() && (s[self.i].is_ascii_alphanumeric() || s[self.i] == b'_') {
                    self.i += 1;
                }
                Tok::Ident
            }
            // Multi-byte UTF-8 outside strings is invalid text format; skip it whole.
            c if c >= 0x80 => {
                while self.i < s.len() && (s[self.i] & 0xC0) == 0x80 {
                    self.i += 1;
                }
                Tok::Punct(b'?')
            }
            c => Tok::Punct(c),
        };
        Some((tok, start))
    }

    fn peek(&mut self) -> Option<(Tok, usize)> {
        let save = self.i;
        let t = self.next();
        self.i = save;
        t
    }
}

struct Walker<'a> {
    toks: Tokens<'a>,
    out: HashMap<String, usize>,
}

/// Nesting deeper than this is not indexed (the parser has rejected such input anyway).
const MAX_DEPTH: usize = 100;

impl Walker<'_> {
    /// Fields of one message until `close` (or the end of input).
    fn fields(&mut self, desc: Option<&MessageDescriptor>, prefix: &str, close: Option<u8>, depth: usize) {
        let mut counts: HashMap<String, usize> = HashMap::new();
        while let Some((tok, start)) = self.toks.next() {
            match tok {
                Tok::Punct(c) if Some(c) == close => return,
                Tok::Punct(b'}' | b'>') => return,
                Tok::Punct(b'[') => {
                    // An extension or Any type name: `[type.googleapis.com/x]`; not indexed.
                    while let Some((t, _)) = self.toks.next() {
                        if t == Tok::Punct(b']') {
                            break;
                        }
                    }
                    self.value(None, "", depth);
                }
                Tok::Ident => {
                    let name = std::str::from_utf8(&self.toks.s[start..self.toks.i]).unwrap_or("");
                    let field = desc.and_then(|d| d.get_field_by_name(name));
                    let repeated = field.as_ref().is_some_and(|f| f.is_list());
                    let base = if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") };
                    let sub = field.as_ref().and_then(|f| match f.kind() {
                        Kind::Message(m) => Some(m),
                        _ => None,
                    });
                    if repeated {
                        let n = counts.entry(name.to_owned()).or_default();
                        let is_list = self.colon_then_bracket();
                        if is_list {
                            self.out.entry(base.clone()).or_insert(start);
                            self.list(sub.as_ref(), &base, n, depth);
                        } else {
                            let path = format!("{base}[{n}]");
                            self.out.entry(path.clone()).or_insert(start);
                            self.out.entry(base).or_insert(start);
                            *n += 1;
                            self.value(sub.as_ref(), &path, depth);
                        }
                    } else {
                        self.out.entry(base.clone()).or_insert(start);
                        self.value(sub.as_ref(), &base, depth);
                    }
                }
                _ => {} // stray separators (',' ';') and anything unexpected
            }
        }
    }

    /// Consumes an optional ':' and reports whether a '[' list follows (consuming it).
    fn colon_then_bracket(&mut self) -> bool {
        if let Some((Tok::Punct(b':'), _)) = self.toks.peek() {
            self.toks.next();
        }
        if let Some((Tok::Punct(b'['), _)) = self.toks.peek() {
            self.toks.next();
            return true;
        }
        false
    }

    /// Elements of a `[a, b, ...]` list, numbered from `*n`.
    fn list(&mut self, desc: Option<&MessageDescriptor>, base: &str, n: &mut usize, depth: usize) {
        loop {
            match self.toks.peek() {
                None => return,
                Some((Tok::Punct(b']'), _)) => {
                    self.toks.next();
                    return;
                }
                Some((Tok::Punct(b','), _)) => {
                    self.toks.next();
                }
                Some((_, start)) => {
                    let path = format!("{base}[{n}]");
                    self.out.entry(path.clone()).or_insert(start);
                    *n += 1;
                    let before = self.toks.i;
                    self.element(desc, &path, depth);
                    if self.toks.i == before {
                        self.toks.next(); // never loop on a token nothing consumes
                    }
                }
            }
        }
    }

    /// A field's value after its name: `: scalar`, `{...}`, `: {...}` or `<...>`.
    fn value(&mut self, desc: Option<&MessageDescriptor>, path: &str, depth: usize) {
        if let Some((Tok::Punct(b':'), _)) = self.toks.peek() {
            self.toks.next();
        }
        self.element(desc, path, depth);
    }

    fn element(&mut self, desc: Option<&MessageDescriptor>, path: &str, depth: usize) {
        match self.toks.peek() {
            Some((Tok::Punct(open @ (b'{' | b'<')), _)) => {
                self.toks.next();
                let close = if open == b'{' { b'}' } else { b'>' };
                if depth < MAX_DEPTH {
                    self.fields(desc, path, Some(close), depth + 1);
                } else {
                    self.skip_block(close);
                }
            }
            Some((Tok::Punct(b'-'), _)) => {
                self.toks.next();
                self.toks.next();
            }
            Some((Tok::Str, _)) => {
                while let Some((Tok::Str, _)) = self.toks.peek() {
                    self.toks.next(); // adjacent strings concatenate
                }
            }
            Some((Tok::Num | Tok::Ident, _)) => {
                self.toks.next();
            }
            _ => {}
        }
    }

    fn skip_block(&mut self, close: u8) {
        let mut depth = 1usize;
        while let Some((t, _)) = self.toks.next() {
            match t {
                Tok::Punct(b'{' | b'<') => depth += 1,
                Tok::Punct(c) if c == close || c == b'}' || c == b'>' => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate as schema;

    fn index(text: &str) -> Positions {
        Positions::index(&schema::message("Benchmarks"), text)
    }

    fn line_col(text: &str, off: usize) -> (usize, usize) {
        let before = &text[..off];
        (before.matches('\n').count() + 1, off - before.rfind('\n').map_or(0, |i| i + 1) + 1)
    }

    #[test]
    fn repeated_messages_and_nested_fields_are_indexed() {
        let text = "benchmarks {\n  name: \"a\"\n}\n# comment { not a block\nbenchmarks <\n  name: 'b'\n  config: {\n    model_server { replicas: 2 }\n  }\n>\n";
        let p = index(text);
        assert_eq!(line_col(text, p.get("benchmarks[0]").unwrap()), (1, 1));
        assert_eq!(line_col(text, p.get("benchmarks[0].name").unwrap()), (2, 3));
        assert_eq!(line_col(text, p.get("benchmarks[1]").unwrap()), (5, 1));
        assert_eq!(line_col(text, p.get("benchmarks[1].config.model_server.replicas").unwrap()), (8, 20));
        // A field not written is reported at the nearest written parent.
        assert_eq!(p.nearest("benchmarks[1].config.model_server.image"), p.get("benchmarks[1].config.model_server"));
        assert_eq!(p.get("benchmarks[2]"), None);
    }

    #[test]
    fn list_syntax_numbers_elements() {
        let text = "benchmarks { config { benchmark_tool { load { rates { request_rates: [1, 2.5,\n 4e1] } } } } }";
        let p = index(text);
        let base = "benchmarks[0].config.benchmark_tool.load.rates.request_rates";
        assert_eq!(line_col(text, p.get(&format!("{base}[2]")).unwrap()), (2, 2));
        assert!(p.get(&format!("{base}[0]")).is_some());
        assert!(p.get(&format!("{base}[3]")).is_none());
    }

    #[test]
    fn strings_with_braces_and_escapes_do_not_confuse_nesting() {
        let text = "benchmarks { name: \"x{\\\"}\" \"y\" description: 'it''s' }\nbenchmarks { name: \"z\" }";
        let p = index(text);
        assert!(p.get("benchmarks[0].description").is_some());
        assert_eq!(line_col(text, p.get("benchmarks[1].name").unwrap()), (2, 14));
    }

    #[test]
    fn garbage_never_panics() {
        for text in [
            "{{{{",
            "}}}",
            "benchmarks [",
            "benchmarks: [{,,]",
            "\"unterminated",
            "-",
            "é{[<",
            "benchmarks { [x.y/z] { a: 1 } }",
        ] {
            let _ = index(text);
        }
    }
}
