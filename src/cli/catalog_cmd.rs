//! `inferbench catalog validate | list | show`.

use std::process::ExitCode;

use super::{CatalogArgs, CommandResult, Failure, ShowArgs};
use crate::{
    catalog::{Catalog, Diagnostics, select::split_by_name, validate},
    generate,
    schema::hardware::HardwareTable,
};

fn fail(d: &Diagnostics) -> CommandResult {
    Err(Failure::diagnostics(d))
}

/// Parses, resolves and validates; prints every error, or a one-line summary.
pub fn validate(a: &CatalogArgs) -> CommandResult {
    let sel = a.selection.files();
    let files = match sel.files() {
        Ok(f) => f,
        Err(d) => return fail(&d.into()),
    };
    let catalog = match Catalog::load(&files) {
        Ok(c) => c,
        Err(d) => return fail(&d),
    };
    let hardware = match a.selection.hardware.as_deref() {
        Some(p) => HardwareTable::load(p),
        None => HardwareTable::for_catalog(&sel.catalog_dir),
    };
    let hardware = match hardware {
        Ok(h) => h,
        Err(d) => return fail(&d),
    };
    // Broken chains and the other benchmarks' errors, all at once.
    let (resolved, mut diags) = catalog.resolve_lenient();
    let resolved = match split_by_name(resolved, a.benchmark_name_regex.as_deref()) {
        Ok((kept, _)) => kept,
        Err(d) => return fail(&d.into()),
    };
    diags.0.extend(validate::validate_all(&catalog, &resolved, &hardware, validate::RUN_ID_LEN).0);
    if let Err(d) = diags.into_result(()) {
        return fail(&d);
    }
    let abstracts = resolved.iter().filter(|r| r.is_abstract()).count();
    println!(
        "ok: {} benchmarks ({} abstract) in {} files: {}",
        resolved.len(),
        abstracts,
        catalog.files.len(),
        catalog.files.iter().map(|f| f.path.display().to_string()).collect::<Vec<_>>().join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// One line per benchmark.
pub fn list(a: &CatalogArgs) -> CommandResult {
    let loaded = match generate::read_catalogs(&a.selection.files(), a.selection.hardware.as_deref()) {
        Ok(l) => l,
        Err(d) => return fail(&d),
    };
    let selected = match split_by_name(loaded.resolved.clone(), a.benchmark_name_regex.as_deref()) {
        Ok((kept, _)) => kept,
        Err(d) => return fail(&d.into()),
    };
    let rows: Vec<[String; 4]> = selected
        .iter()
        .map(|r| {
            let chain: Vec<_> =
                loaded.catalog.ancestry(r.entry).map(|i| loaded.catalog.entries[i].name.as_str()).collect();
            let e = &loaded.catalog.entries[r.entry];
            let loc = e.location("").map(|l| format!("{}:{}", l.file.display(), l.line)).unwrap_or_default();
            let ms = r.benchmark.config.as_ref().and_then(|c| c.model_server.clone()).unwrap_or_default();
            let server = format!(
                "{} {} {}×{}{}",
                ms.kind_name().unwrap_or("-"),
                ms.model().unwrap_or("-"),
                ms.accelerator.as_deref().unwrap_or("-"),
                ms.replica_count(),
                if r.is_abstract() { " (abstract)" } else { "" }
            );
            [chain.join(" ← "), loc, server, r.benchmark.description.clone().unwrap_or_default()]
        })
        .collect();
    let headers = ["BENCHMARK ← BASES", "DEFINED AT", "SERVER", "DESCRIPTION"];
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([headers[i].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: [&str; 4]| {
        let s: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(headers);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3]]);
    }
    Ok(ExitCode::SUCCESS)
}

/// Text format of one benchmark.
pub fn show(a: &ShowArgs) -> CommandResult {
    let loaded = match generate::read_catalogs(&a.selection.files(), a.selection.hardware.as_deref()) {
        Ok(l) => l,
        Err(d) => return fail(&d),
    };
    let Some(entry) = loaded.catalog.entry(&a.name) else {
        let names: Vec<_> = loaded.catalog.names().collect();
        return Err(Failure::new(format!("no benchmark named \"{}\"; known: {}", a.name, names.join(", "))));
    };
    if a.resolved {
        let r = loaded.resolved.iter().find(|r| r.name == a.name).expect("every named entry resolves");
        print!("{}", crate::schema::text::to_text(&r.message));
    } else {
        if let Some(l) = entry.location("") {
            println!("# {l}");
        }
        print!("{}", crate::schema::text::to_text(&entry.raw));
    }
    Ok(ExitCode::SUCCESS)
}
