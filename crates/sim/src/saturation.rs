//! The throughput a profile saturates at, found by simulation: many identical requests submitted
//! at once, served on tokio's paused clock (so it takes milliseconds of real time), completed
//! requests ÷ simulated time. The hardware table's `saturation_qps` of every profile with a
//! latency model is checked against this (tests), so the planner's generated rates and the
//! simulator agree on where saturation is.

use tokio::time::Instant;

use super::{
    engine::{Engine, EngineConfig, Finish, Submission},
    profile::Profile,
};

/// The request shape saturation is quoted for: ShareGPT as the latency-profile-generator samples
/// it (inputs and outputs ≤ 1024 tokens) averages about 230 prompt and 200 output tokens.
pub const REFERENCE_INPUT: u32 = 230;
/// See [`REFERENCE_INPUT`].
pub const REFERENCE_OUTPUT: u32 = 200;

/// Requests per second one engine completes when always busy, with `max_num_seqs` sequences at
/// most (prefix caching off: every prompt distinct).
pub fn saturation_qps(profile: &Profile, max_num_seqs: u32, requests: u32) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().expect("runtime");
    rt.block_on(async {
        let cfg = EngineConfig {
            max_num_seqs,
            kv_blocks: (profile.kv_cache_tokens / 16) as u32,
            block_size: 16,
            prefix_caching: false,
            step: profile.step,
            ..EngineConfig::default()
        };
        let (engine, handle) = Engine::new(cfg, None);
        tokio::spawn(engine.run());
        let t0 = Instant::now();
        let rxs: Vec<_> = (0..requests)
            .map(|i| {
                let prompt = (0..REFERENCE_INPUT).map(|t| t ^ (i << 12)).collect();
                let sub = Submission {
                    prompt,
                    block_hashes: vec![],
                    output_len: REFERENCE_OUTPUT,
                    finish: Finish::Length,
                    max_tokens: REFERENCE_OUTPUT,
                };
                handle.submit(sub).expect("unbounded queue")
            })
            .collect();
        for mut rx in rxs {
            while let Some(e) = rx.recv().await {
                if e.done.is_some() {
                    break;
                }
            }
        }
        f64::from(requests) / t0.elapsed().as_secs_f64()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferbench_schema::hardware::HardwareTable;

    /// The table's saturation figures and the simulator agree (see catalog/hardware.pbtxt).
    #[test]
    fn table_saturation_matches_the_simulated_one() {
        let t = HardwareTable::builtin();
        let mut report = vec![];
        for row in t.profiles() {
            let tp = row.tensor_parallelism.unwrap_or(1) as u32;
            let p = Profile::from_row(row, tp).unwrap();
            let sim = saturation_qps(&p, 256, 1500);
            let table = row.saturation_qps.unwrap_or(f64::NAN);
            report.push(format!("{}: table {table} simulated {sim:.1}", p.name));
            // Rows whose rates were measured on real servers (GIE) may differ from the latency
            // model by the workload they were measured with; the simulated ones must match.
            let (lo, hi) = if row.source().starts_with("GIE") && !row.source().contains("simulated") {
                (0.25, 4.0)
            } else {
                (0.85, 1.15)
            };
            if row.saturation_qps.is_some() {
                assert!((lo..=hi).contains(&(table / sim)), "{}", report.join("\n"));
            }
        }
        eprintln!("{}", report.join("\n"));
    }
}
