//! Text format out: what a snapshot's `benchmark.pbtxt` and `load.pbtxt`, and `catalog show`,
//! are written as. The other side of [`parse`](super::parse).

use prost_reflect::DynamicMessage;

/// `message` as canonical, pretty text format, fields in declaration order (name first, as
/// people write them; not field-number order), ending with a newline.
pub fn to_text(message: &DynamicMessage) -> String {
    let opts = prost_reflect::text_format::FormatOptions::new().pretty(true).print_message_fields_in_index_order(true);
    let mut s = message.to_text_format_with_options(&opts);
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}
