//! Conducting load workers (`LoadSpec.workers` > 1), whatever runs them: the local platform's
//! processes ([`super::local::workers`]) or the kube platform's pods ([`super::kube::workers`]).
//! Each worker sends its share ([`crate::load::runner::Share`]); before each stage every worker
//! still running says it is ready at its start [`gate`] and all are given one instant to start on;
//! after it, they meet again so that the end-of-stage scrape sees every answer. A worker that ends
//! (killed, evicted) is left out from then on, and the merge ([`crate::load::merge`]) says so.
//! Nothing of this is on the request path.

use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::{
    load::gate::{self, Phase, Start},
    schema::{Results, StageResult},
};

/// Where one worker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Running, not at the meeting asked about.
    Busy,
    /// At the meeting asked about, waiting for its answer.
    Waiting,
    /// It has run every stage and written its results.
    Over,
    /// It ended before that: how.
    Ended(String),
}

/// Load workers, as a platform runs them.
#[async_trait]
pub trait Fleet: Send {
    /// Where each worker is, in index order, with respect to `phase` of `stage`.
    async fn look(&mut self, phase: Phase, stage: usize) -> Result<Vec<State>, String>;
    /// Gives worker `k` its answer at `phase` of `stage`.
    async fn answer(&mut self, k: u32, phase: Phase, stage: usize, answer: Start) -> Result<(), String>;
    /// Asks every worker still running to stop (as Ctrl-C would: it writes what it measured).
    async fn stop_all(&mut self);
    /// How long ahead of now a start instant must be for every worker to have it in time.
    fn start_margin(&self) -> Duration;
    /// How often the workers are looked at while waiting for them.
    fn poll_every(&self) -> Duration;
    /// The stages every worker has finished so far, merged and on disk, when the platform can
    /// merge while the workers run (their results are on this machine); None otherwise.
    fn merge_so_far(&mut self) -> Option<Result<Results, String>>;
}

/// How the workers ended.
pub struct Conducted {
    /// Workers that ended before their last stage, and how.
    pub failed: Vec<(u32, String)>,
}

/// Runs the workers' meetings stage by stage until every worker is over or has ended; `on_stage`
/// gets each stage merged so far when the fleet can merge while running.
pub async fn conduct(
    fleet: &mut dyn Fleet,
    stop: &CancellationToken,
    on_stage: &mut (dyn FnMut(&StageResult) + Send),
) -> Result<Conducted, String> {
    let mut reported = 0;
    let mut stopping = false;
    let mut stage = 1;
    loop {
        let states = meet(fleet, Phase::Start, stage, stop, &mut stopping).await?;
        if stage > 1
            && let Some(merged) = fleet.merge_so_far()
        {
            let results = merged?;
            for s in results.stages.iter().skip(reported) {
                on_stage(s);
            }
            reported = results.stages.len();
        }
        let waiting: Vec<u32> = indexes(&states, |s| *s == State::Waiting);
        if waiting.is_empty() {
            let failed = states
                .iter()
                .enumerate()
                .filter_map(|(k, s)| match s {
                    State::Ended(how) => Some((k as u32, how.clone())),
                    _ => None,
                })
                .collect();
            return Ok(Conducted { failed });
        }
        let answer = if stop.is_cancelled() {
            Start::Stop
        } else {
            Start::At(gate::now_ns() + fleet.start_margin().as_nanos() as i128)
        };
        for k in &waiting {
            fleet.answer(*k, Phase::Start, stage, answer).await?;
        }
        if answer != Start::Stop {
            let states = meet(fleet, Phase::End, stage, stop, &mut stopping).await?;
            for k in indexes(&states, |s| *s == State::Waiting) {
                fleet.answer(k, Phase::End, stage, Start::At(gate::now_ns())).await?;
            }
        }
        stage += 1;
    }
}

fn indexes(states: &[State], f: impl Fn(&State) -> bool) -> Vec<u32> {
    states.iter().enumerate().filter(|(_, s)| f(s)).map(|(k, _)| k as u32).collect()
}

/// Waits until no worker is busy with respect to `phase` of `stage`; on a stop, asks them all to
/// stop (once) and goes on waiting for them to say so.
async fn meet(
    fleet: &mut dyn Fleet,
    phase: Phase,
    stage: usize,
    stop: &CancellationToken,
    stopping: &mut bool,
) -> Result<Vec<State>, String> {
    loop {
        let states = fleet.look(phase, stage).await?;
        if !states.contains(&State::Busy) {
            return Ok(states);
        }
        if stop.is_cancelled() && !*stopping {
            *stopping = true;
            fleet.stop_all().await;
        }
        tokio::time::sleep(fleet.poll_every()).await;
    }
}
