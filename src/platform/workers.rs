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
    /// How long to wait between looks at the workers while waiting for them: the first wait, and
    /// the longest, which the waits double up to. A look may cost the platform a call per worker
    /// (kube: an exec each): a stage of minutes is then looked at every few seconds, not 10 times
    /// a second.
    fn poll_between(&self) -> (Duration, Duration);
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
    let (mut wait, longest) = fleet.poll_between();
    loop {
        let states = fleet.look(phase, stage).await?;
        if !states.contains(&State::Busy) {
            return Ok(states);
        }
        if stop.is_cancelled() && !*stopping {
            *stopping = true;
            fleet.stop_all().await;
            // The workers answer a stop at once: look again soon.
            wait = fleet.poll_between().0;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => wait = (wait * 2).min(longest),
            // A stop is passed on now, not after the wait.
            _ = stop.cancelled(), if !*stopping => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    /// Workers on a script: worker k is ready for stage 1 `ready_after[k]` after the start, each
    /// stage takes 10 s from its answer, and all are over after stage 1.
    struct Scripted {
        began: Instant,
        ready_after: Vec<Duration>,
        started: Option<Instant>,
        ended: bool,
        looks: Vec<(Phase, Duration)>,
        answers: Vec<(u32, Phase, Start)>,
    }

    #[async_trait]
    impl Fleet for Scripted {
        async fn look(&mut self, phase: Phase, stage: usize) -> Result<Vec<State>, String> {
            let now = Instant::now();
            self.looks.push((phase, now - self.began));
            let state = |k: usize| match (phase, stage, self.started) {
                (Phase::Start, 1, _) if now - self.began >= self.ready_after[k] => State::Waiting,
                (Phase::End, 1, Some(at)) if now - at >= Duration::from_secs(10) => State::Waiting,
                (Phase::Start, 2, _) if self.ended => State::Over,
                _ => State::Busy,
            };
            Ok((0..self.ready_after.len()).map(state).collect())
        }

        async fn answer(&mut self, k: u32, phase: Phase, _stage: usize, answer: Start) -> Result<(), String> {
            match phase {
                Phase::Start => self.started = Some(Instant::now()),
                Phase::End => self.ended = true,
            }
            self.answers.push((k, phase, answer));
            Ok(())
        }

        async fn stop_all(&mut self) {}

        fn start_margin(&self) -> Duration {
            Duration::from_millis(500)
        }

        fn poll_between(&self) -> (Duration, Duration) {
            (Duration::from_millis(100), Duration::from_secs(1))
        }

        fn merge_so_far(&mut self) -> Option<Result<Results, String>> {
            None
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_worker_gets_one_start_and_waits_between_looks_double_up_to_the_longest() {
        let ready_after = vec![Duration::from_millis(250), Duration::ZERO, Duration::from_millis(50)];
        let mut fleet = Scripted {
            began: Instant::now(),
            ready_after,
            started: None,
            ended: false,
            looks: vec![],
            answers: vec![],
        };
        let conducted = conduct(&mut fleet, &CancellationToken::new(), &mut |_| {}).await.unwrap();
        assert!(conducted.failed.is_empty());
        // The start is given once all three are ready (at 300 ms: looks at 0, 100, 300), one
        // instant for all.
        let starts: Vec<&(u32, Phase, Start)> = fleet.answers.iter().filter(|a| a.1 == Phase::Start).collect();
        assert_eq!(starts.iter().map(|a| a.0).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(starts.iter().all(|a| a.2 == starts[0].2 && matches!(a.2, Start::At(_))), "{starts:?}");
        let ms = |phase| -> Vec<u128> {
            fleet.looks.iter().filter(|l| l.0 == phase).map(|l| l.1.as_millis()).collect::<Vec<_>>()
        };
        assert_eq!(ms(Phase::Start)[..3], [0, 100, 300]);
        // The 10 s stage is looked at after 0.1, 0.2, 0.4, 0.8 s, then every second.
        let end = ms(Phase::End);
        let gaps: Vec<u128> = end.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps[..6], [100, 200, 400, 800, 1000, 1000], "{end:?}");
        assert!(end.len() <= 15, "{} looks over a 10 s stage", end.len());
        assert_eq!(fleet.answers.iter().filter(|a| a.1 == Phase::End).count(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_during_a_long_wait_is_passed_on_at_once() {
        struct Never(Vec<Duration>, Instant, bool);
        #[async_trait]
        impl Fleet for Never {
            async fn look(&mut self, _: Phase, _: usize) -> Result<Vec<State>, String> {
                self.0.push(self.1.elapsed());
                Ok(vec![if self.2 { State::Ended("stopped".into()) } else { State::Busy }])
            }
            async fn answer(&mut self, _: u32, _: Phase, _: usize, _: Start) -> Result<(), String> {
                Ok(())
            }
            async fn stop_all(&mut self) {
                self.2 = true;
            }
            fn start_margin(&self) -> Duration {
                Duration::ZERO
            }
            fn poll_between(&self) -> (Duration, Duration) {
                (Duration::from_millis(100), Duration::from_secs(5))
            }
            fn merge_so_far(&mut self) -> Option<Result<Results, String>> {
                None
            }
        }
        let stop = CancellationToken::new();
        let mut fleet = Never(vec![], Instant::now(), false);
        let stopper = stop.clone();
        let mut on_stage = |_: &StageResult| {};
        let stopping = async move {
            tokio::time::sleep(Duration::from_millis(12_345)).await;
            stopper.cancel();
        };
        let (conducted, ()) = tokio::join!(conduct(&mut fleet, &stop, &mut on_stage), stopping);
        let conducted = conducted.unwrap();
        assert_eq!(conducted.failed, [(0, "stopped".to_owned())]);
        // Looked at when the stop came (not at the end of a 5 s wait), stopped, and looked at once more.
        let last: Vec<u128> = fleet.0.iter().rev().take(2).map(|d| d.as_millis()).collect();
        assert_eq!(last, [12_445, 12_345], "{:?}", fleet.0);
    }
}
