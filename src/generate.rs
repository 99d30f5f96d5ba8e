//! `generate`: the steps every command shares, in pipeline order: select and load catalogs →
//! resolve → plan → render → snapshot. Commands (`generate`, `run`) call these; they hold no logic of
//! their own beyond printing.

use std::path::{Path, PathBuf};

use crate::{
    catalog::{Catalog, Diagnostics, Resolved, select::FileSelection},
    plan::{self, Plan, PlanOptions},
    render::{RenderError, Renderer},
    schema::hardware::HardwareTable,
    snapshot::{
        self, Content, Outcome, SnapshotError,
        run_file::{self, BenchmarkRecord, Invocation, State},
    },
};

/// A catalog set, loaded and resolved.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The parsed files.
    pub catalog: Catalog,
    /// Every benchmark, resolved.
    pub resolved: Vec<Resolved>,
    /// The hardware table.
    pub hardware: HardwareTable,
}

/// Loads the selected files, resolves inheritance and reads the hardware table.
pub fn read_catalogs(sel: &FileSelection, hardware: Option<&Path>) -> Result<Loaded, Diagnostics> {
    let files = sel.files()?;
    let catalog = Catalog::load(&files)?;
    let resolved = catalog.resolve()?;
    let hardware = match hardware {
        Some(p) => HardwareTable::load(p)?,
        None => HardwareTable::for_catalog(&sel.catalog_dir)?,
    };
    Ok(Loaded { catalog, resolved, hardware })
}

/// Builds the plan of a loaded catalog set.
pub fn plan(loaded: &Loaded, opts: &PlanOptions) -> Result<Plan, Diagnostics> {
    plan::build(&loaded.catalog, loaded.resolved.clone(), &loaded.hardware, opts)
}

/// What happened to one benchmark's snapshot.
#[derive(Debug)]
pub struct SnapshotReport {
    /// Benchmark name.
    pub name: String,
    /// Its folder.
    pub dir: PathBuf,
    /// Written, reused or replaced — or why not.
    pub outcome: Result<Outcome, GenerateError>,
}

/// Why a snapshot could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Writing or verifying failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// Renders (in parallel) and snapshots every planned benchmark; one failure does not stop the
/// others.
pub fn generate(plan: &Plan, renderer: &Renderer, overwrite: bool) -> Vec<SnapshotReport> {
    use rayon::prelude::*;
    let rendered: Vec<Result<Content, GenerateError>> = plan
        .benchmarks
        .par_iter()
        .map(|p| {
            let manifests = renderer.render(p, &plan.run_id)?;
            Ok(Content {
                benchmark_pbtxt: crate::schema::text::to_text(&p.resolved.message),
                base_pbtxt: p.base.as_ref().map(|(_, text)| text.clone()),
                manifests: manifests.into_iter().map(|m| (m.file, m.text)).collect(),
            })
        })
        .collect();
    let to_write: Vec<(&Path, &Content)> = plan
        .benchmarks
        .iter()
        .zip(&rendered)
        .filter_map(|(p, r)| r.as_ref().ok().map(|c| (p.dir.as_path(), c)))
        .collect();
    let mut written = snapshot::write_all(to_write, overwrite, &|_| Ok(())).into_iter();
    plan.benchmarks
        .iter()
        .zip(rendered)
        .map(|(p, r)| {
            let outcome = match r {
                Ok(_) => written.next().expect("one result per written snapshot").map_err(GenerateError::from),
                Err(e) => Err(e),
            };
            SnapshotReport { name: p.name.clone(), dir: p.dir.clone(), outcome }
        })
        .collect()
}

/// Records the plan and the snapshot outcomes in `run.json`.
pub fn record(
    plan: &Plan,
    reports: &[SnapshotReport],
    command: &str,
    args: Vec<String>,
) -> Result<(), run_file::RunFileError> {
    run_file::update(&plan.run_dir, &plan.run_id, |run| {
        for c in &plan.catalogs {
            let c = c.display().to_string();
            if !run.catalogs.contains(&c) {
                run.catalogs.push(c);
            }
        }
        run.invocations.push(Invocation { at: crate::schema::clock::now(), command: command.into(), args });
        // A `running` left by a process that is gone (SIGKILL, a second Ctrl-C, a crash) was
        // interrupted, whether or not this invocation selects the benchmark again.
        for rec in run.benchmarks.values_mut().filter(|r| r.is_stale_running()) {
            rec.state = State::Failed;
            rec.reason = Some(format!(
                "interrupted: the process running it{} is gone; it runs again when selected",
                rec.owner.map(|p| format!(" (pid {p})")).unwrap_or_default()
            ));
            rec.owner = None;
            rec.updated_at = crate::schema::clock::now();
        }
        for (p, r) in plan.benchmarks.iter().zip(reports) {
            let (state, reason) = match &r.outcome {
                Ok(_) => (State::Pending, None),
                Err(e) => (State::Failed, Some(e.to_string())),
            };
            let rec = run.benchmarks.entry(p.name.clone()).or_insert_with(|| {
                let source = p.source.as_ref().map(ToString::to_string).unwrap_or_default();
                BenchmarkRecord::new(p.namespace.clone(), source, state, reason.clone())
            });
            // Never downgrade a finished benchmark, nor one another process is running.
            if rec.state != State::Done && rec.state != State::Running {
                rec.state = state;
                rec.reason = reason;
                rec.updated_at = crate::schema::clock::now();
            }
        }
        // Templates are never runs of their own: not recorded.
        for s in plan.skipped.iter().filter(|s| s.reason != crate::plan::ABSTRACT) {
            // Left out of this invocation: recorded as such unless it has a state of its own
            // (done, failed, running) from an earlier invocation of the run.
            let rec = run.benchmarks.entry(s.name.clone()).or_insert_with(|| {
                BenchmarkRecord::new(format!("{}-{}", s.name, plan.run_id), String::new(), State::Skipped, None)
            });
            if matches!(rec.state, State::Pending | State::Skipped) {
                rec.state = State::Skipped;
                rec.reason = Some(s.reason.clone());
                rec.updated_at = crate::schema::clock::now();
            }
        }
    })
}
