//! Fuzzes the catalog front end: text-format parse, position index, inheritance, validation and
//! planning. Input may hold two files separated by a line "----" (to exercise bases in another
//! file). Nothing may panic, whatever the bytes.
//!
//!     RUSTC_BOOTSTRAP=1 cargo fuzz run catalog -- -max_total_time=600

#![no_main]

use std::sync::Arc;

use inferbench::{
    catalog::{Catalog, SourceFile, validate},
    plan::{self, PlanOptions},
    schema::{self, hardware::HardwareTable, text::locate::Positions},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The position index runs on parsed files only, but must survive anything.
    let _ = Positions::index(&schema::message("Benchmarks"), text);
    let files: Vec<_> = text
        .splitn(2, "\n----\n")
        .enumerate()
        .map(|(i, t)| Arc::new(SourceFile::new(format!("f{i}.pbtxt").into(), t.to_owned())))
        .collect();
    for f in &files {
        let _ = f.location(f.text.len() / 2);
    }
    let Ok(catalog) = Catalog::from_files(files) else { return };
    let Ok(resolved) = catalog.resolve() else { return };
    for r in &resolved {
        let _ = Catalog::to_text(&r.message);
    }
    let hw = HardwareTable::builtin();
    let diags = validate::validate_all(&catalog, &resolved, &hw, validate::RUN_ID_LEN);
    for d in &diags.0 {
        let _ = d.to_string();
    }
    let opts = PlanOptions { run_id: Some("fuzz0001".into()), output_root: "/nonexistent".into(), name_regex: None, overwrite_snapshot: false };
    let _ = plan::build(&catalog, resolved, &hw, &opts);
});
