//! The text format (`.pbtxt`) of our messages: files in memory with line:column ([`source`]),
//! parsing into `DynamicMessage`s ([`parse`]) and printing them ([`print`]), where each field is
//! written ([`locate`]), and what went wrong where ([`diag`]). The catalog, the hardware table and a snapshot's load spec are all
//! read through here, so every one of them reports errors the same way.

pub mod diag;
pub mod locate;
pub mod parse;
pub mod print;
pub mod source;

pub use diag::{Diagnostic, Diagnostics, Location};
pub use print::to_text;
pub use source::{FileKind, SourceFile};
