//! The cost of merging load workers' results (issue 23's figure): W worker folders of R records
//! each (summary.json, shards.json with the worker's histograms, requests.jsonl.zst), made once
//! under DIR, then merged by a child process whose wall time and peak RSS are printed as one JSON
//! line.
//!
//! `cargo bench --bench merge -- DIR [WORKERS, default 16] [RECORDS, default 1000000]`
//! (`scripts/bench-merge` runs it). The records are synthetic but of a real run's shape (streamed
//! answers of 1–300 tokens, a few errors), written and merged by the engine's own code.

use std::{path::Path, time::Instant};

use inferbench::{
    load::{
        gate::Gate,
        merge::{Worker, merge},
        output,
        recorder::{ErrorKind, Outcome, RequestRecord, Slo, StageAggregate, TokenSource},
        records::Records,
        shard::{AggregateState, SHARDS, StageShard},
    },
    schema::{LoadSpec, Offered, Results, RunInfo, result_files},
};

fn outcome(i: u64) -> Outcome {
    let tokens = 1 + (i % 300) as u32;
    let first_token_us = 1_000 + (i * 104_729 % 20_000) as u32;
    let last_token_us = first_token_us + 4_000 + (i * 7919 % 90_000) as u32;
    let record = RequestRecord {
        intended_us: i * 50,
        sent_us: i * 50 + i % 97,
        first_byte_us: 900 + (i % 1000) as u32,
        first_token_us,
        last_token_us,
        end_us: last_token_us + 100,
        input_tokens: 256,
        dataset_input_tokens: 256,
        output_tokens: tokens,
        cached_tokens: 0,
        chunks: tokens,
        model: 0,
        status: 200,
        error: (i % 1000 == 7).then_some(ErrorKind::Http5xx),
        token_source: TokenSource::Usage,
        prompt_mismatch: false,
        length_mismatch: false,
        streamed: true,
        waited_for_slot: false,
        later_turn: false,
    };
    let step = (record.last_token_us - record.first_token_us) / tokens.max(1);
    let chunks = (0..tokens.min(8)).map(|k| (record.first_token_us + k * step, 1)).collect();
    Outcome { record, chunks }
}

fn make(dir: &Path, workers: u32, records: u64) {
    for k in 0..workers {
        let wdir = dir.join(k.to_string());
        if wdir.join(result_files::SUMMARY).exists() {
            continue;
        }
        let mut agg = StageAggregate::new(Slo::default());
        let mut recs = Records::new();
        for j in 0..records {
            let o = outcome(j * u64::from(workers) + u64::from(k));
            agg.record(&o);
            recs.push(o.record);
        }
        let result = agg.finish("rate-1000", Offered { requested_rate: 1000.0, ..Default::default() });
        let results = Results { run: Some(RunInfo::default()), stages: vec![result] };
        output::write(&wdir, &results, &[("rate-1000".into(), recs)]).unwrap();
        let shard = StageShard {
            name: "rate-1000".into(),
            worker: k,
            workers,
            start_given_ns: None,
            start_offset_us: 0,
            planned_arrivals: Some(records * u64::from(workers)),
            warmup: 0,
            aggregate: AggregateState::of(&agg),
        };
        result_files::write_json(&wdir, SHARDS, &vec![shard]).unwrap();
        eprintln!("worker {k}: {records} records written");
    }
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if a.first().is_some_and(|x| x == "--merge-only") {
        // The child: merge and nothing else, so its peak RSS is the merge's.
        let (dir, workers) = (Path::new(&a[1]), a[2].parse::<u32>().unwrap());
        let spec = LoadSpec { workers: Some(workers), ..Default::default() };
        let ws: Vec<Worker> =
            (0..workers).map(|k| Worker { index: k, dir: dir.join(k.to_string()), failure: None }).collect();
        let t = Instant::now();
        let r = merge(&spec, &ws, &dir.join("merged")).unwrap();
        let s = t.elapsed().as_secs_f64();
        let sent = r.stages[0].counts.as_ref().unwrap().sent;
        println!("{{\"merge_seconds\": {s:.3}, \"sent\": {sent}}}");
        return;
    }
    let dir = Path::new(a.first().expect("usage: merge DIR [WORKERS] [RECORDS]"));
    let workers: u32 = a.get(1).map_or(16, |x| x.parse().unwrap());
    let records: u64 = a.get(2).map_or(1_000_000, |x| x.parse().unwrap());
    let _ = Gate::new(dir); // the folder
    make(dir, workers, records);
    let me = std::env::current_exe().unwrap();
    let t = Instant::now();
    let child = std::process::Command::new(me)
        .args(["--merge-only", dir.to_str().unwrap(), &workers.to_string()])
        .output()
        .unwrap();
    let wall = t.elapsed().as_secs_f64();
    assert!(child.status.success(), "{}", String::from_utf8_lossy(&child.stderr));
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr());
        usage.assume_init()
    };
    let merged = std::fs::metadata(dir.join("merged").join(result_files::REQUESTS)).map(|m| m.len()).unwrap_or(0);
    println!(
        "{{\"workers\": {workers}, \"records_each\": {records}, \"child\": {}, \"child_wall_seconds\": {wall:.3}, \"peak_rss_mib\": {:.1}, \"merged_requests_bytes\": {merged}}}",
        String::from_utf8_lossy(&child.stdout).trim(),
        usage.ru_maxrss as f64 / 1024.0
    );
}
