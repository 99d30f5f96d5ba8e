//! `report/index.html`: one self-contained page — styles inline, plots inline as SVG, no script,
//! no font, nothing fetched (a Content-Security-Policy of `default-src 'none'` makes a browser
//! refuse anything else, so a page that needs the network shows errors instead of silently
//! depending on it). It holds the summary table, the comparison when asked, the plots, and per
//! benchmark its state, resolved config, the diff against its base, and links to its raw files.

use std::{fmt::Write as _, path::Path};

use super::{
    compare::{self, Comparison, Verdict},
    config_diff::{self, DiffLine},
    model::{BaseOrigin, Bench, ResultsKind, Run},
    plots::Rendered,
    stats,
    table::{self, ms, num},
};
use crate::schema::{Distribution, StageResult};

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d232a; background: #fafbfc; }
header, main, footer { max-width: 1400px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 20px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 8px; border-bottom: 1px solid #d8dee4; padding-bottom: 4px; }
h3 { font-size: 16px; margin: 20px 0 6px; }
nav a { margin-right: 14px; } a { color: #0969da; }
.meta { color: #57606a; } .meta span { margin-right: 18px; }
table { border-collapse: collapse; background: #fff; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d8dee4; padding: 3px 7px; white-space: nowrap; }
th { background: #f1f3f5; position: sticky; top: 0; }
td.n { text-align: right; }
.wrap { overflow-x: auto; max-width: 100%; }
tr.nores td { color: #57606a; font-style: italic; }
.state-done { color: #1a7f37; } .state-failed, .state-unreadable { color: #cf222e; font-weight: 600; } .state-pending, .state-running, .state-skipped { color: #9a6700; }
figure { background: #fff; border: 1px solid #d8dee4; margin: 14px 0; padding: 10px; }
figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: #57606a; margin-top: 6px; }
pre { background: #fff; border: 1px solid #d8dee4; padding: 8px; overflow-x: auto; font-size: 12.5px; }
.diff .add { background: #dafbe1; } .diff .del { background: #ffebe9; } .diff .gap { color: #8c959f; }
.undelivered { background: #ffebe9; color: #cf222e; font-weight: 600; }
.worse { background: #ffebe9; font-weight: 600; } .better { background: #dafbe1; font-weight: 600; } .noise { color: #57606a; }
.note { background: #fff8c5; border: 1px solid #d4a72c66; padding: 6px 10px; }
footer { color: #57606a; padding-bottom: 40px; }
"#;

/// `s` as HTML text or attribute value. (Not tera's escaper: it also escapes `/`, which makes
/// every path and link in the page's source unreadable.)
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Everything the page shows.
pub struct Page<'a> {
    /// The run.
    pub run: &'a Run,
    /// The plots, drawn.
    pub plots: &'a [Rendered],
    /// The comparison, when asked for.
    pub comparison: Option<&'a Comparison>,
    /// A link (relative to the page) to a file of the run.
    pub link: &'a dyn Fn(&Path) -> String,
}

/// The page's HTML.
pub fn page(p: &Page<'_>) -> String {
    let run = p.run;
    let mut h = String::with_capacity(1 << 20);
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\"><title>inferbench report: run {}</title><style>{STYLE}</style></head><body>",
        esc(&run.id)
    );
    header(&mut h, run, p.comparison.is_some());
    let _ = writeln!(h, "<main>\n<h2 id=\"summary\">Summary</h2>");
    summary(&mut h, run);
    if let Some(c) = p.comparison {
        comparison(&mut h, c);
    }
    let (history, plots): (Vec<&Rendered>, Vec<&Rendered>) =
        p.plots.iter().partition(|r| r.figure.name.starts_with(super::plots::HISTORY_PREFIX));
    let _ = writeln!(h, "<h2 id=\"plots\">Plots</h2>");
    if plots.is_empty() {
        h.push_str("<p class=\"note\">No stage has results to plot.</p>\n");
    }
    figures(&mut h, &plots);
    if !history.is_empty() {
        let _ = writeln!(
            h,
            "<h2 id=\"history\">History</h2>\n<p class=\"note\">Each benchmark of this run that the results history holds earlier runs of (<code>inferbench history</code>).</p>"
        );
        figures(&mut h, &history);
    }
    let _ = writeln!(h, "<h2 id=\"benchmarks\">Benchmarks</h2>");
    for b in &run.benchmarks {
        benchmark(&mut h, b, p.link);
    }
    footer(&mut h);
    h
}

/// Figures with their captions and links.
fn figures(h: &mut String, rendered: &[&Rendered]) {
    for r in rendered {
        let f = &r.figure;
        let _ = writeln!(
            h,
            "<figure id=\"plot-{name}\" class=\"plot\">{svg}<figcaption><b>{title}.</b> {caption} \
             <a href=\"plots/{name}.svg\">SVG</a> · <a href=\"plots/{name}.png\">PNG</a></figcaption></figure>",
            name = esc(&f.name),
            svg = inline_svg(&r.svg),
            title = esc(&f.title),
            caption = esc(&f.caption),
        );
    }
}

/// How to read the page.
fn footer(h: &mut String) {
    let _ = writeln!(
        h,
        "</main><footer><h2>How to read this</h2><p>Latencies are defined in <code>proto/results.proto</code>: TTFT = first \
         content token − sent; TPOT = (last token − first token) / (output tokens − 1); ITL per token; e2e = end − sent. \
         QPS is requests sent per second of the stage's window; out tok/s counts successful requests' output tokens. \
         Goodput is the share of requests meeting every SLO threshold set (\"-\": none set).</p>\
         <p>Also in this folder: <a href=\"summary.csv\">summary.csv</a> (every figure, for spreadsheets) and \
         <a href=\"plots/\">plots/</a> (SVG and PNG).</p></footer>\n</body></html>"
    );
}

/// An SVG document as an element of the page (no XML declaration).
fn inline_svg(svg: &str) -> &str {
    let s = svg.trim_start();
    match (s.starts_with("<?xml"), s.find("?>")) {
        (true, Some(end)) => s[end + 2..].trim_start(),
        _ => s,
    }
}

fn header(h: &mut String, run: &Run, compared: bool) {
    let mut states: std::collections::BTreeMap<&str, usize> = Default::default();
    for b in &run.benchmarks {
        *states.entry(b.state_label()).or_default() += 1;
    }
    let states: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let _ = writeln!(
        h,
        "<header><h1>Run {id}</h1><p class=\"meta\"><span>folder: {dir}</span>{created}{version}<span>benchmarks: {states}</span>{catalogs}</p>\
         <nav><a href=\"#summary\">Summary</a>{cmp}<a href=\"#plots\">Plots</a><a href=\"#benchmarks\">Benchmarks</a></nav></header>",
        id = esc(&run.id),
        dir = esc(&run.dir.display().to_string()),
        created = run.created_at.as_deref().map(|c| format!("<span>created: {}</span>", esc(c))).unwrap_or_default(),
        version =
            run.tool_version.as_deref().map(|v| format!("<span>inferbench {}</span>", esc(v))).unwrap_or_default(),
        states = esc(&states.join(", ")),
        catalogs = if run.catalogs.is_empty() {
            String::new()
        } else {
            format!("<span>catalogs: {}</span>", esc(&run.catalogs.join(", ")))
        },
        cmp = if compared { "<a href=\"#compare\">Comparison</a>" } else { "" },
    );
}

fn summary(h: &mut String, run: &Run) {
    h.push_str(
        "<div class=\"wrap\"><table id=\"summary-table\"><thead><tr><th rowspan=\"2\">benchmark</th><th rowspan=\"2\">stage</th>\
         <th rowspan=\"2\">state</th><th rowspan=\"2\">offered</th><th rowspan=\"2\">QPS</th>\
         <th colspan=\"3\">TTFT ms</th><th colspan=\"3\">TPOT ms</th><th colspan=\"3\">ITL ms</th><th colspan=\"3\">e2e ms</th>\
         <th rowspan=\"2\">out tok/s</th><th rowspan=\"2\">goodput</th><th rowspan=\"2\">errors</th>\
         <th rowspan=\"2\" title=\"schedule lag p99 (send time minus intended time), the client's CPU and the host's steal: a latency is trusted only when the client kept up\">client</th>\
         <th rowspan=\"2\" title=\"did the client deliver the configured load (rate, arrival process, lag, CPU, Little's law, users: see LoadVerdict in proto/results.proto)\">load delivered</th></tr><tr>",
    );
    for _ in 0..4 {
        h.push_str("<th>p50</th><th>p90</th><th>p99</th>");
    }
    h.push_str("</tr></thead><tbody>\n");
    for b in &run.benchmarks {
        let state = b.state_label();
        if b.stages().is_empty() {
            let _ = writeln!(
                h,
                "<tr class=\"nores\" data-benchmark=\"{n}\"><td><a href=\"#bench-{n}\">{n}</a></td><td>-</td><td class=\"state-{state}\">{state}</td><td colspan=\"19\">{why}</td></tr>",
                n = esc(&b.name),
                why = esc(&b.why().unwrap_or_else(|| "no results".into())),
            );
            continue;
        }
        for s in b.stages() {
            let _ = write!(
                h,
                "<tr data-benchmark=\"{n}\" data-stage=\"{st}\"><td><a href=\"#bench-{n}\">{n}</a></td><td>{st}</td><td class=\"state-{state}\">{state}</td><td>{off}</td><td class=\"n\">{qps}</td>",
                n = esc(&b.name),
                st = esc(&s.name),
                off = esc(&table::offered(s)),
                qps = num(table::achieved_qps(s), 2),
            );
            for d in [s.ttft_ms, s.tpot_ms, s.itl_ms, s.e2e_ms] {
                match d.filter(|d| d.count > 0) {
                    Some(d) => {
                        let _ = write!(
                            h,
                            "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
                            ms(d.p50),
                            ms(d.p90),
                            ms(d.p99)
                        );
                    }
                    None => h.push_str("<td class=\"n\">-</td><td class=\"n\">-</td><td class=\"n\">-</td>"),
                }
            }
            let _ = writeln!(
                h,
                "<td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td>{}</tr>",
                num(s.throughput.map_or(f64::NAN, |t| t.output_tokens_per_second), 0),
                esc(&table::goodput(s)),
                esc(&table::errors(s.counts.as_ref())),
                esc(&table::client(s)),
                delivered_cell(s),
            );
        }
    }
    h.push_str("</tbody></table></div>\n");
}

/// The load verdict's cell: red when the client did not deliver the configured load, its reasons
/// in the tooltip.
fn delivered_cell(s: &StageResult) -> String {
    let text = esc(&table::delivered(s));
    match &s.verdict {
        Some(v) if !v.delivered => {
            format!("<td class=\"undelivered\" title=\"{}\">{text}</td>", esc(&v.reasons.join("\n")))
        }
        _ => format!("<td>{text}</td>"),
    }
}

fn comparison(h: &mut String, c: &Comparison) {
    let _ = writeln!(
        h,
        "<h2 id=\"compare\">Comparison with run {id}</h2>\
         <p>This run against the baseline run <b>{id}</b> ({dir}), for benchmarks and stages of the same name. Each figure is \
         shown with its 95&nbsp;% confidence interval in brackets; a change is <b>flagged</b> (better / WORSE) only when the two \
         intervals do not overlap, i.e. when it exceeds run-to-run noise. Latency percentiles: the distribution-free interval \
         of a quantile from the order statistics of every request's latency (<code>requests.jsonl.zst</code>): the whole \
         distribution, not a mean. Throughputs: Poisson noise of the number of requests completed. Errors: the Wilson interval \
         of the failure rate. Non-overlap is a conservative test (about the 0.5&nbsp;% level): a flag means a real change; \
         &ldquo;within noise&rdquo; does not prove there is none. The intervals take requests as independent; near \
         saturation a queue correlates neighbouring requests, so a flagged change of a few percent at a saturated stage \
         deserves a second run. A percentile that too few requests cannot bound (a p99 of \
         fewer than {few} requests) and stages without per-request records are not assessed.</p>",
        id = esc(&c.baseline_id),
        dir = esc(&c.baseline_dir.display().to_string()),
        few = stats::min_sample_bounding(0.99, stats::Z95),
    );
    let flagged = c.stages.iter().flat_map(|s| &s.metrics).filter(|m| m.verdict.flagged()).count();
    let _ = writeln!(h, "<p><b>{flagged}</b> difference(s) beyond noise in {} stage(s) compared.</p>", c.stages.len());
    h.push_str(
        "<div class=\"wrap\"><table id=\"compare-table\"><thead><tr><th>benchmark</th><th>stage</th><th>metric</th>\
         <th>baseline [95% CI]</th><th>this run [95% CI]</th><th>change</th><th>verdict</th></tr></thead><tbody>\n",
    );
    for s in &c.stages {
        for m in &s.metrics {
            let class = match m.verdict {
                Verdict::Worse => "worse",
                Verdict::Better => "better",
                _ => "noise",
            };
            let _ = writeln!(
                h,
                "<tr class=\"{class}\" data-benchmark=\"{b}\" data-stage=\"{st}\" data-metric=\"{m}\"><td>{b}</td><td>{st}</td><td>{m} ({u})</td>\
                 <td class=\"n\">{base}</td><td class=\"n\">{this}</td><td class=\"n\">{chg}</td><td>{v}</td></tr>",
                b = esc(&s.benchmark),
                st = esc(&s.stage),
                m = esc(m.metric),
                u = esc(m.unit),
                base = esc(&compare::with_interval(&m.baseline, m.unit)),
                this = esc(&compare::with_interval(&m.this, m.unit)),
                chg = esc(&compare::change(m)),
                v = esc(m.verdict.label()),
            );
        }
    }
    h.push_str("</tbody></table></div>\n");
    let list = |names: &[String]| esc(&names.join(", "));
    if !c.only_here.is_empty() {
        let _ = writeln!(h, "<p>Only in this run: {}.</p>", list(&c.only_here));
    }
    if !c.only_baseline.is_empty() {
        let _ = writeln!(h, "<p>Only in the baseline: {}.</p>", list(&c.only_baseline));
    }
    for (b, s, side) in &c.unmatched_stages {
        let _ = writeln!(h, "<p>{}: stage {} only in the {}.</p>", esc(b), esc(s), esc(side));
    }
}

/// The model server's own figures per stage (from its `/metrics`, over each stage's window) beside
/// the client's: the server's clock starts when it has the request and stops when its engine has
/// the token, so the client's means are at least its own, by the network and framing cost.
fn server_view(h: &mut String, stages: &[StageResult]) {
    if stages.iter().all(|s| s.server_metrics.is_empty()) {
        return;
    }
    let m = |s: &StageResult, names: &[&str], scale: f64| {
        names.iter().find_map(|n| s.server_metrics.get(*n)).map_or(f64::NAN, |x| x.mean * scale)
    };
    let total = |s: &StageResult, name: &str| s.server_metrics.get(name).and_then(|x| x.total).unwrap_or(f64::NAN);
    let client = |d: Option<Distribution>| d.filter(|d| d.count > 0).map_or(f64::NAN, |d| d.mean);
    h.push_str(
        "<div class=\"wrap\"><table class=\"server-view\"><caption>The server's own figures (its /metrics over each stage) beside the client's means</caption>\
         <thead><tr><th>stage</th><th>TTFT ms server</th><th>TTFT ms client</th><th>e2e ms server</th><th>e2e ms client</th>\
         <th>queue ms</th><th>running (mean)</th><th>waiting (mean)</th><th>KV cache %</th><th title=\"DCGM_FI_DEV_GPU_UTIL, the mean of the GPUs\">GPU util %</th><th title=\"DCGM_FI_DEV_POWER_USAGE, all GPUs\">GPU power W</th><th>requests</th><th>output tokens</th>\
         <th title=\"the client's means within the server's own plus the allowance, and equal totals (ServerAgreement in proto/results.proto)\">agrees</th></tr></thead><tbody>\n",
    );
    for s in stages {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>{}</tr>",
            esc(&s.name),
            ms(m(s, &["vllm:time_to_first_token_seconds", "sglang:time_to_first_token_seconds"], 1e3)),
            ms(client(s.ttft_ms)),
            ms(m(s, &["vllm:e2e_request_latency_seconds"], 1e3)),
            ms(client(s.e2e_ms)),
            ms(m(s, &["vllm:request_queue_time_seconds"], 1e3)),
            num(m(s, &["vllm:num_requests_running", "sglang:num_running_reqs", "tgi_batch_current_size"], 1.0), 1),
            num(m(s, &["vllm:num_requests_waiting", "sglang:num_queue_reqs", "tgi_queue_size"], 1.0), 1),
            num(m(s, &["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage"], 100.0), 1),
            num(m(s, &["DCGM_FI_DEV_GPU_UTIL"], 1.0), 1),
            num(m(s, &["DCGM_FI_DEV_POWER_USAGE"], 1.0), 0),
            num(total(s, "vllm:e2e_request_latency_seconds"), 0),
            num(total(s, "vllm:generation_tokens_total"), 0),
            match &s.server_agreement {
                None => "<td>-</td>".to_owned(),
                Some(a) if a.agrees => "<td>yes</td>".to_owned(),
                Some(a) => format!("<td class=\"undelivered\" title=\"{}\">no</td>", esc(&a.disagreements.join("\n"))),
            },
        );
    }
    h.push_str("</tbody></table></div>\n");
}

/// The load workers of stages shared by several (`LoadSpec.workers`): each one's part, the start
/// skew, and a partial stage's reason. Nothing for one process.
fn workers_view(h: &mut String, stages: &[StageResult]) {
    if stages.iter().all(|s| s.workers.is_empty()) {
        return;
    }
    h.push_str(
        "<div class=\"wrap\"><table class=\"workers\"><caption>Load workers: each one's part of the merged figures \
         (arrival k went to worker k mod N; start is how long after the common instant it began)</caption>\
         <thead><tr><th>stage</th><th>worker</th><th>sent</th><th>failed</th><th>req/s</th><th>lag p99 ms</th>\
         <th>client CPU s</th><th>dropped</th><th>start ms</th><th>load</th></tr></thead><tbody>\n",
    );
    for s in stages {
        for w in &s.workers {
            if w.missing {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td class=\"n\">{}</td><td colspan=\"8\" class=\"undelivered\">missing: did not report this stage</td></tr>",
                    esc(&s.name),
                    w.index
                );
                continue;
            }
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.2}</td><td class=\"n\">{}</td><td class=\"n\">{:.2}</td>{}</tr>",
                esc(&s.name),
                w.index,
                w.sent,
                w.failed,
                num(w.achieved_rate.unwrap_or(f64::NAN), 2),
                ms(w.schedule_lag_p99_ms.unwrap_or(f64::NAN)),
                w.client_cpu_seconds,
                w.dropped,
                w.start_offset_ms,
                if w.delivered { "<td>delivered</td>" } else { "<td class=\"undelivered\">not delivered</td>" },
            );
        }
    }
    h.push_str("</tbody></table></div>\n");
    for s in stages {
        if let Some(k) = crate::report::table::worker_start_skew_ms(s) {
            let _ = writeln!(h, "<p class=\"note\">{}: start skew between workers {k:.2} ms.</p>", esc(&s.name));
        }
        if let Some(p) = &s.partial {
            let _ = writeln!(h, "<p class=\"note undelivered\">{}: {}</p>", esc(&s.name), esc(&p.reason));
        }
    }
}

fn benchmark(h: &mut String, b: &Bench, link: &dyn Fn(&Path) -> String) {
    let state = b.state_label();
    let _ = writeln!(
        h,
        "<section class=\"benchmark\" id=\"bench-{n}\"><h3>{n} <span class=\"state-{state}\">({state})</span></h3>",
        n = esc(&b.name)
    );
    if let Some(r) = b.why() {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(&r));
    }
    if let Some(s) = b.seconds {
        let _ = writeln!(h, "<p>Last attempt took {s:.1} s.</p>");
    }
    match &b.results {
        None => h.push_str("<p>No results.</p>\n"),
        Some(r) => {
            let what = match r.kind {
                ResultsKind::Complete => "complete results",
                ResultsKind::Failed => "the results of a failed attempt (every request failed)",
                ResultsKind::Lpg => {
                    "latency-profile-generator result files of an older run (no per-request records; p95 and lower percentiles unknown)"
                }
            };
            let _ = write!(
                h,
                "<p>From {what} in <a href=\"{}\">{}</a>",
                esc(&link(&r.dir)),
                esc(&r.dir.display().to_string())
            );
            if let Some(info) = &r.info {
                if !info.url.is_empty() {
                    let _ = write!(h, "; target {} ({})", esc(&info.url), esc(&info.api));
                }
                if !info.models.is_empty() {
                    let _ = write!(h, "; model {}", esc(&info.models.join(", ")));
                }
            }
            h.push_str(".</p>\n");
            if let Some(s) = &r.server
                && s.failed_scrapes > 0
            {
                let _ = writeln!(
                    h,
                    "<p class=\"note\">{} scrape(s) of the server's metrics failed{}.</p>",
                    s.failed_scrapes,
                    s.first_error.as_deref().map(|e| format!(": {}", esc(e))).unwrap_or_default()
                );
            }
            server_view(h, b.stages());
            workers_view(h, b.stages());
            h.push_str("<details><summary>Raw files</summary><ul>");
            for f in &r.files {
                let shown = f.strip_prefix(&b.dir).unwrap_or(f).display().to_string();
                let _ = write!(h, "<li><a href=\"{}\">{}</a></li>", esc(&link(f)), esc(&shown));
            }
            h.push_str("</ul></details>\n");
        }
    }
    if let Some(cfg) = &b.config {
        let _ = writeln!(
            h,
            "<details class=\"config\"><summary>Resolved config (<a href=\"{}\">benchmark.pbtxt</a>)</summary><pre>{}</pre></details>",
            esc(&link(&b.dir.join(crate::snapshot::BENCHMARK_PBTXT))),
            esc(cfg)
        );
    }
    if let (Some(base), Some(cfg)) = (&b.base, &b.config) {
        match (&base.config, base.origin) {
            (Some(base_cfg), origin) => {
                let from = if origin == BaseOrigin::Snapshot {
                    "as resolved when this benchmark's snapshot was taken"
                } else {
                    "from its snapshot in this run"
                };
                let _ = write!(
                    h,
                    "<details class=\"diff\" open><summary>Changes from its base <b>{}</b> ({from})</summary><pre>",
                    esc(&base.name)
                );
                let lines = config_diff::diff(&config_diff::config_only(base_cfg), &config_diff::config_only(cfg), 3);
                if lines.is_empty() {
                    h.push_str("(the same config: only its name differs)");
                }
                for l in lines {
                    let (class, mark, text) = match &l {
                        DiffLine::Same(t) => ("same", ' ', t.as_str()),
                        DiffLine::Removed(t) => ("del", '-', t.as_str()),
                        DiffLine::Added(t) => ("add", '+', t.as_str()),
                        DiffLine::Gap => ("gap", ' ', "…"),
                    };
                    let _ = writeln!(h, "<span class=\"{class}\">{mark} {}</span>", esc(text));
                }
                h.push_str("</pre></details>\n");
            }
            (None, _) => {
                let _ = writeln!(
                    h,
                    "<p>Its base <b>{}</b>: not found (a snapshot taken before bases were kept, and the base is not in this run).</p>",
                    esc(&base.name)
                );
            }
        }
    }
    h.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_elements_and_attributes_and_paths_stay_readable() {
        assert_eq!(esc("a<b>&\"c\" 'd' ../x/y"), "a&lt;b&gt;&amp;&quot;c&quot; &#39;d&#39; ../x/y");
    }

    #[test]
    fn an_xml_declaration_is_dropped_from_inline_svg() {
        assert_eq!(inline_svg("<?xml version=\"1.0\"?>\n<svg/>"), "<svg/>");
        assert_eq!(inline_svg("<svg/>"), "<svg/>");
    }
}
