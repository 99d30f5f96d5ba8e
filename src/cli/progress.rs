//! What a person watching sees: a live progress bar of the running load stage (indicatif, on
//! stderr, only on a terminal) and a summary table of stages at the end (comfy-table).

use std::{
    sync::{Arc, Mutex, atomic::Ordering::Relaxed},
    time::Duration,
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::load::session::Running;

/// A live bar following whatever stage `current` names; stops when dropped.
pub struct StageBar {
    bar: ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StageBar {
    fn drop(&mut self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

impl StageBar {
    /// Starts the bar (call inside a runtime). Hidden when stderr is not a terminal.
    pub fn start(current: Arc<Mutex<Option<Running>>>) -> StageBar {
        let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr_with_hz(4));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>14} [{elapsed_precise}] {bar:30} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        let b = bar.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            let mut shown = String::new();
            loop {
                tick.tick().await;
                let Some(r) = current.lock().expect("current stage").clone() else { continue };
                if r.name != shown {
                    b.reset();
                    shown.clone_from(&r.name);
                }
                let (sent, done, failed) =
                    (r.live.sent.load(Relaxed), r.live.done.load(Relaxed), r.live.failed.load(Relaxed));
                let elapsed = r.started.elapsed();
                let fraction = match (r.duration, r.requests) {
                    (Some(d), _) if !d.is_zero() => elapsed.as_secs_f64() / d.as_secs_f64(),
                    (_, Some(n)) if n > 0 => done as f64 / n as f64,
                    _ => 0.0,
                };
                b.set_prefix(format!("{} {}/{}", r.name, r.index.0, r.index.1));
                b.set_position((fraction.clamp(0.0, 1.0) * 1000.0) as u64);
                b.set_message(format!(
                    "sent {sent}  {:.1}/s  in flight {}  errors {failed}  TTFT p50 {:.1} ms",
                    sent as f64 / elapsed.as_secs_f64().max(1e-3),
                    sent.saturating_sub(done),
                    r.live.ttft_p50_us.load(Relaxed) as f64 / 1000.0
                ));
            }
        });
        StageBar { bar, task }
    }

    /// Runs `f` (a line printed to stdout) with the bar out of the way.
    pub fn suspend<T>(&self, f: impl FnOnce() -> T) -> T {
        self.bar.suspend(f)
    }
}

/// One row of the summary table.
pub use crate::report::table::Row;

/// The summary table: one row per stage, what was offered and what came back (the brief table
/// of [`crate::report::table`], which `inferbench report` extends).
pub fn summary_table(rows: &[Row<'_>]) -> String {
    crate::report::table::brief(rows)
}
