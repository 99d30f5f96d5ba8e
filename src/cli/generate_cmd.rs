//! `inferbench generate` and `inferbench run --dry-run`: plan, render, snapshot.

use std::process::ExitCode;

use super::{CommandResult, Failure, GenerateArgs};
use crate::{
    generate::{self, SnapshotReport},
    plan::{Plan, PlanOptions},
    render::{RenderOptions, Renderer},
    snapshot::Outcome,
};

/// Prints the plan, writes every snapshot, records `run.json`, prints what happened.
pub fn generate(a: &GenerateArgs, command: &str) -> CommandResult {
    let (plan, reports) = snapshots(a, command)?;
    let failed = reports.iter().filter(|r| r.outcome.is_err()).count();
    if failed > 0 {
        return Err(Failure::summary(format!("{failed} of {} benchmarks failed", reports.len())));
    }
    println!("run {}: {} snapshots under {}/", plan.run_id, reports.len(), plan.run_dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Plans, prints the plan, writes (or verifies and reuses) every snapshot, records `run.json` and
/// prints each snapshot's outcome. `Err` is an input error that stops everything; a single
/// benchmark's failure is in its report (and printed here, as it happens).
pub fn snapshots(a: &GenerateArgs, command: &str) -> Result<(Plan, Vec<SnapshotReport>), Failure> {
    let loaded = generate::read_catalogs(&a.selection.files(), a.selection.hardware.as_deref())
        .map_err(|d| Failure::diagnostics(&d))?;
    let opts = PlanOptions {
        run_id: a.run_id.clone().filter(|r| !r.is_empty()),
        output_root: a.output.clone(),
        name_regex: a.benchmark_name_regex.clone().filter(|r| !r.is_empty()),
        overwrite_snapshot: a.overwrite_snapshot,
        workers: a.workers,
    };
    let plan = generate::plan(&loaded, &opts).map_err(|d| Failure::diagnostics(&d))?;
    print!("{plan}");
    let ropts = RenderOptions { image: a.image.clone() };
    let renderer = match &a.templates {
        Some(dir) => Renderer::from_dir(dir, ropts),
        None => Renderer::builtin(ropts),
    };
    let renderer = renderer.map_err(Failure::new)?;
    let reports = generate::generate(&plan, &renderer, a.overwrite_snapshot);
    let args: Vec<String> = std::env::args().skip(1).collect();
    generate::record(&plan, &reports, command, args).map_err(Failure::new)?;
    println!("snapshots:");
    for r in &reports {
        match &r.outcome {
            Ok(Outcome::Created) => println!("  {}: written to {}/", r.name, r.dir.display()),
            Ok(Outcome::Reused { differs: false }) => {
                println!("  {}: exists, verified, reused ({}/)", r.name, r.dir.display())
            }
            Ok(Outcome::Reused { differs: true }) => println!(
                "  {}: exists, verified, reused — the catalog now renders differently; the snapshot is kept (--overwrite-snapshot re-renders) ({}/)",
                r.name,
                r.dir.display()
            ),
            Ok(Outcome::Replaced) => println!("  {}: replaced ({}/)", r.name, r.dir.display()),
            Err(e) => eprintln!("error: {}: {e}", r.name),
        }
    }
    Ok((plan, reports))
}
