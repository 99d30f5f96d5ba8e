//! `inferbench generate` and `inferbench run --dry-run`: plan, render, snapshot.

use std::process::ExitCode;

use super::{EXIT_INPUT, GenerateArgs};
use crate::{
    generate::{self, SnapshotReport},
    plan::{Plan, PlanOptions},
    render::{RenderOptions, Renderer},
    snapshot::Outcome,
};

/// Prints the plan, writes every snapshot, records `run.json`, prints what happened.
pub fn generate(a: &GenerateArgs, command: &str) -> ExitCode {
    match snapshots(a, command) {
        Ok((plan, reports)) => {
            let failed = reports.iter().filter(|r| r.outcome.is_err()).count();
            if failed > 0 {
                eprintln!("{failed} of {} benchmarks failed", reports.len());
                return ExitCode::from(EXIT_INPUT);
            }
            println!("run {}: {} snapshots under {}/", plan.run_id, reports.len(), plan.run_dir.display());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Plans, prints the plan, writes (or verifies and reuses) every snapshot, records `run.json` and
/// prints each snapshot's outcome. `Err` is the exit code of an input error that stops everything;
/// a single benchmark's failure is in its report.
pub fn snapshots(a: &GenerateArgs, command: &str) -> Result<(Plan, Vec<SnapshotReport>), ExitCode> {
    let loaded = match generate::load(&a.selection.files(), a.selection.hardware.as_deref()) {
        Ok(l) => l,
        Err(d) => {
            eprintln!("{d}");
            return Err(ExitCode::from(EXIT_INPUT));
        }
    };
    let opts = PlanOptions {
        run_id: a.run_id.clone().filter(|r| !r.is_empty()),
        output_root: a.output.clone(),
        name_regex: a.benchmark_name_regex.clone().filter(|r| !r.is_empty()),
        overwrite_snapshot: a.overwrite_snapshot,
    };
    let plan = match generate::plan(&loaded, &opts) {
        Ok(p) => p,
        Err(d) => {
            eprintln!("{d}");
            return Err(ExitCode::from(EXIT_INPUT));
        }
    };
    print!("{plan}");
    let ropts = RenderOptions { image: a.image.clone() };
    let renderer = match &a.templates {
        Some(dir) => Renderer::from_dir(dir, ropts),
        None => Renderer::builtin(ropts),
    };
    let renderer = match renderer {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(EXIT_INPUT));
        }
    };
    let reports = generate::generate(&plan, &renderer, a.overwrite_snapshot);
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = generate::record(&plan, &reports, command, args) {
        eprintln!("error: {e}");
        return Err(ExitCode::from(EXIT_INPUT));
    }
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
