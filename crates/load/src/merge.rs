//! Merges the results of workers that shared a load into the one result the rest of the tool
//! reads (`summary.json`, `requests.jsonl.zst`, `server_metrics.json`), as if one process had sent
//! it all: each stage's [`shard`]s added (histograms bucket for bucket: exact percentiles), its
//! counts summed, its rates over the union of the workers' windows (they share one start), its
//! per-request records concatenated, the peers' files (`compat`) written from the merged
//! figures, and a `workers` table of each one's part. A worker that did
//! not report a stage (it died, or was stopped before) makes the stage *partial*, saying which
//! worker and how many arrivals it never sent: never silently merged as whole.

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
};

use inferbench_schema::{
    LoadSpec, LoadVerdict, Partial, Results, StageResult, WorkerShare,
    result_files::{self, FileError, REQUESTS, SERVER_METRICS, SUMMARY},
};

use super::{
    agreement, compat,
    recorder::Slo,
    runner::Share,
    shard::{SHARDS, StageShard},
};
use crate::LoadError;

/// One worker's results.
#[derive(Debug, Clone)]
pub struct Worker {
    /// Its index.
    pub index: u32,
    /// Its output folder.
    pub dir: PathBuf,
    /// How it ended, when it ended badly (killed, failed): named in a partial stage's reason.
    pub failure: Option<String>,
}

/// What a worker left.
struct Reported {
    summary: Option<Results>,
    shards: Vec<StageShard>,
}

fn read(w: &Worker) -> Result<Reported, LoadError> {
    let text = |name: &str| -> Result<Option<String>, FileError> {
        let path = w.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FileError { path, message: e.to_string() }),
        }
    };
    let summary = text(SUMMARY)?
        .map(|t| result_files::parse_summary(&t))
        .transpose()
        .map_err(|e| LoadError::Spec(format!("{}: {e}", w.dir.join(SUMMARY).display())))?;
    let shards = text(SHARDS)?
        .map(|t| serde_json::from_str::<Vec<StageShard>>(&t))
        .transpose()
        .map_err(|e| LoadError::Spec(format!("{}: not a worker's shards: {e}", w.dir.join(SHARDS).display())))?
        .unwrap_or_default();
    Ok(Reported { summary, shards })
}

/// Merges `workers` (all of the spec's, in index order) into `out`: see the module doc.
pub fn merge(spec: &LoadSpec, workers: &[Worker], out: &Path) -> Result<Results, LoadError> {
    let reported: Vec<Reported> = workers.iter().map(read).collect::<Result<_, _>>()?;
    let of = spec.workers.unwrap_or(1).max(1);
    let slo =
        spec.slo.as_ref().map_or(Slo::default(), |s| Slo { ttft_ms: s.ttft_ms, tpot_ms: s.tpot_ms, e2e_ms: s.e2e_ms });
    // Stages in the order run, as any worker ran them.
    let mut names: Vec<String> = vec![];
    for r in &reported {
        for s in &r.shards {
            if !names.contains(&s.name) {
                names.push(s.name.clone());
            }
        }
    }
    let mut results =
        Results { run: reported.iter().find_map(|r| r.summary.as_ref().and_then(|s| s.run.clone())), stages: vec![] };
    for name in &names {
        results.stages.push(merge_stage(spec, slo, of, workers, &reported, name)?);
    }
    std::fs::create_dir_all(out).map_err(|e| FileError { path: out.to_path_buf(), message: e.to_string() })?;
    concat_records(workers, &out.join(REQUESTS))?;
    if let Some(w) = workers.iter().find(|w| w.dir.join(SERVER_METRICS).exists()) {
        let path = w.dir.join(SERVER_METRICS);
        let bytes = std::fs::read(&path).map_err(|e| FileError { path, message: e.to_string() })?;
        result_files::atomic_write(&out.join(SERVER_METRICS), &bytes)?;
    }
    result_files::atomic_write(&out.join(SUMMARY), result_files::summary_json(&results).as_bytes())?;
    for i in 0..results.stages.len() {
        compat::write(spec, Some(out), None, &results, i)?;
    }
    Ok(results)
}

/// One stage of every worker that reported it, merged.
fn merge_stage(
    spec: &LoadSpec,
    slo: Slo,
    of: u32,
    workers: &[Worker],
    reported: &[Reported],
    name: &str,
) -> Result<StageResult, LoadError> {
    let mut parts: Vec<(u32, &StageShard, Option<&StageResult>)> = vec![];
    for (w, r) in workers.iter().zip(reported) {
        if let Some(s) = r.shards.iter().find(|s| s.name == name) {
            let own = r.summary.as_ref().and_then(|x| x.stages.iter().find(|st| st.name == name));
            parts.push((w.index, s, own));
        }
    }
    let mut aggregate = None;
    for (index, shard, _) in &parts {
        let a = shard.aggregate.aggregate(slo).map_err(|e| {
            LoadError::Spec(format!("{}: stage {name}: {e}", workers[*index as usize].dir.join(SHARDS).display()))
        })?;
        match &mut aggregate {
            None => aggregate = Some(a),
            Some(m) => crate::recorder::StageAggregate::merge(m, &a),
        }
    }
    let aggregate = aggregate.expect("a stage named by a shard has one");
    let own: Vec<&StageResult> = parts.iter().filter_map(|p| p.2).collect();
    let mut offered = own.first().and_then(|s| s.offered.clone()).unwrap_or_default();
    offered.users = own.iter().filter_map(|s| s.offered.as_ref()).map(|o| o.users).sum();
    offered.users_ran = own.iter().filter_map(|s| s.offered.as_ref()).map(|o| o.users_ran).sum();
    offered.dropped = own.iter().filter_map(|s| s.offered.as_ref()).map(|o| o.dropped).sum();
    offered.client_cpu_seconds = own.iter().filter_map(|s| s.offered.as_ref()).map(|o| o.client_cpu_seconds).sum();
    offered.client_cores = own.iter().filter_map(|s| s.offered.as_ref()).map(|o| o.client_cores).sum();
    offered.host_steal_seconds =
        own.iter().filter_map(|s| s.offered.as_ref()).map(|o| o.host_steal_seconds).fold(0.0, f64::max);
    let mut result = aggregate.finish(name, offered);
    if let Some(c) = result.counts.as_mut() {
        c.warmup = parts.iter().map(|p| p.1.warmup).sum();
    }
    // The server is scraped by one worker (the lowest still reporting), at the stage's end once
    // every worker's answers are in (see `gate`): its series, and the agreement of the merged
    // figures with them.
    if let Some(s) = own.iter().find(|s| !s.server_metrics.is_empty()) {
        result.server_metrics = s.server_metrics.clone();
        let allowance = spec
            .server_metrics
            .as_ref()
            .and_then(|m| m.agreement_allowance_ms)
            .unwrap_or(agreement::DEFAULT_ALLOWANCE_MS);
        result.server_agreement = agreement::agreement(&result, spec.warmup_seconds.unwrap_or(0.0) <= 0.0, allowance);
    }
    let planned = parts.iter().find_map(|p| p.1.planned_arrivals);
    let mut verdict = LoadVerdict { delivered: true, ..Default::default() };
    for (index, shard, own) in &parts {
        let v = own.and_then(|s| s.verdict.as_ref());
        if let Some(v) = v {
            verdict.delivered &= v.delivered;
            verdict.reasons.extend(v.reasons.iter().map(|r| format!("worker {index}: {r}")));
            verdict.checks.extend(v.checks.iter().cloned());
        }
        let o = own.and_then(|s| s.offered.as_ref());
        result.workers.push(WorkerShare {
            index: *index,
            sent: own.and_then(|s| s.counts.as_ref()).map_or(0, |c| c.sent),
            failed: own.and_then(|s| s.counts.as_ref()).map_or(0, |c| c.failed),
            achieved_rate: o.and_then(|o| o.achieved_rate),
            schedule_lag_p99_ms: own.and_then(|s| s.schedule_lag_ms.as_ref()).map(|d| d.p99),
            client_cpu_seconds: o.map_or(0.0, |o| o.client_cpu_seconds),
            dropped: o.map_or(0, |o| o.dropped),
            start_offset_ms: shard.start_offset_us as f64 / 1e3,
            delivered: v.is_none_or(|v| v.delivered),
            missing: false,
        });
    }
    let missing: Vec<u32> = (0..of).filter(|i| !parts.iter().any(|p| p.0 == *i)).collect();
    if !missing.is_empty() {
        let unsent: u64 = missing.iter().map(|i| planned.map_or(0, |p| Share { index: *i, of }.arrivals(p))).sum();
        let why: Vec<String> = missing
            .iter()
            .map(|i| match workers.get(*i as usize).and_then(|w| w.failure.as_deref()) {
                Some(f) => format!("worker {i} ({f})"),
                None => format!("worker {i}"),
            })
            .collect();
        let lost = match planned {
            Some(_) => {
                format!("{unsent} arrivals of its share are not in the figures (never sent, or sent and lost with it)")
            }
            None => "its users' requests are not in the figures".to_owned(),
        };
        let reason = format!(
            "partial: {} of {of} workers did not report this stage ({}); {lost}: the figures cover the other workers only",
            missing.len(),
            why.join(", ")
        );
        verdict.delivered = false;
        verdict.reasons.insert(0, reason.clone());
        // The server saw the missing worker's requests: its counts cannot agree with the rest.
        result.server_agreement = None;
        result.partial = Some(Partial { reason, missing_workers: missing.clone(), unsent_arrivals: unsent });
        for i in missing {
            result.workers.push(WorkerShare { index: i, missing: true, ..Default::default() });
        }
        result.workers.sort_by_key(|w| w.index);
    }
    result.verdict = Some(verdict);
    Ok(result)
}

/// Every worker's `requests.jsonl.zst`, one after the other, into `to`: zstd frames concatenated
/// are one stream, so the records are copied, never parsed (16 × 10⁶ records in seconds, in
/// constant memory).
fn concat_records(workers: &[Worker], to: &Path) -> Result<(), FileError> {
    let err = |path: &Path, e: std::io::Error| FileError { path: path.to_path_buf(), message: e.to_string() };
    let tmp = to.with_file_name(format!(".{}.merging", REQUESTS));
    let mut file = std::fs::File::create(&tmp).map_err(|e| err(&tmp, e))?;
    let mut copied = BTreeMap::new();
    for w in workers {
        let path = w.dir.join(REQUESTS);
        match std::fs::File::open(&path) {
            Ok(mut f) => {
                copied.insert(w.index, std::io::copy(&mut f, &mut file).map_err(|e| err(&path, e))?);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(&path, e)),
        }
    }
    if copied.is_empty() {
        // No worker wrote records: an empty stream, as one process with none writes.
        file.write_all(&zstd::encode_all(&b""[..], 3).map_err(|e| err(&tmp, e))?).map_err(|e| err(&tmp, e))?;
    }
    file.sync_all().map_err(|e| err(&tmp, e))?;
    std::fs::rename(&tmp, to).map_err(|e| err(to, e))
}
