//! Text format → `DynamicMessage`, with parse errors turned into file:line:col diagnostics.

use prost_reflect::{DynamicMessage, MessageDescriptor};

use super::{diag::Diagnostic, source::SourceFile};

/// Parses a whole file as a message of type `desc`. The error is never swallowed (the original
/// tool dropped it and ran on with an empty catalog).
pub fn parse(file: &SourceFile, desc: MessageDescriptor) -> Result<DynamicMessage, Diagnostic> {
    let name = desc.name().to_owned();
    DynamicMessage::parse_text_format(desc, &file.text).map_err(|e| {
        use miette::Diagnostic as _;
        // Every kind but "unexpected end of input" carries a span; that one points at the end.
        let offset = e.labels().and_then(|mut l| l.next()).map_or(file.text.len(), |l| l.offset());
        Diagnostic::new(format!("not a valid {name} text-format message: {e}")).at(Some(file.location(offset)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate as schema;

    fn err(text: &str) -> String {
        let f = SourceFile::new("c.pbtxt".into(), text.into());
        parse(&f, schema::message("Benchmarks")).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_file_line_and_column() {
        assert_eq!(
            err("benchmarks {\n  name: \"a\"\n  replicas: 2\n}"),
            "c.pbtxt:3:3: not a valid Benchmarks text-format message: field 'replicas' not found for message 'benchmark.proto.Benchmark'"
        );
        assert_eq!(
            err("benchmarks {\n  name: \"a\"\n"),
            "c.pbtxt:3:1: not a valid Benchmarks text-format message: expected '}' or a field name, but reached end of input"
        );
        assert!(err("benchmarks { config { model_server { replicas: \"two\" } } }").starts_with("c.pbtxt:1:48: "));
    }

    #[test]
    fn the_seed_string_numbers_parse() {
        let f = SourceFile::new(
            "c".into(),
            "benchmarks { config { model_server { vllm { tensor_parallelism: \"1\" } } benchmark_tool { lpg { port: \"8081\" } } } }".into(),
        );
        assert!(parse(&f, schema::message("Benchmarks")).is_ok());
    }
}
