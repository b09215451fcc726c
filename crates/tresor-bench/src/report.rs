//! The benchmark report: per workload rate, latency percentiles and errors, as an aligned
//! text table or JSON, plus the progress bar shown while a run is under way.

use serde::Serialize;

use crate::options::{Options, Stop};
use crate::runner::{Measured, WorkloadStats};

/// Latency percentiles of successful requests, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// An error message and how often it occurred.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorCount {
    pub message: String,
    pub count: u64,
}

/// One workload's results.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadReport {
    /// The entry's name in the mix.
    pub name: String,
    /// The workload type.
    pub workload: String,
    /// Its weight in the mix.
    pub weight: u64,
    /// Requests made (successful or not).
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Successful requests per second over the measured time.
    pub ok_per_second: f64,
    /// Latency of successful requests.
    pub latency_ms: Latency,
    /// The first distinct errors, with counts.
    pub first_errors: Vec<ErrorCount>,
    /// Figures the workload adds (`userpass-login`: the bcrypt bound it measured).
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub notes: serde_json::Map<String, serde_json::Value>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The server benchmarked.
    pub address: String,
    /// Concurrent workers.
    pub concurrency: usize,
    /// Load generator threads.
    pub threads: usize,
    /// The rate cap, if any (requests per second).
    pub rate_cap: Option<f64>,
    /// Warm-up before measuring, in seconds.
    pub warmup_seconds: f64,
    /// The measured time, in seconds.
    pub elapsed_seconds: f64,
    /// Whether the run was interrupted with Ctrl-C.
    pub interrupted: bool,
    /// CPU seconds the load generator itself used during the measured time.
    pub client_cpu_seconds: Option<f64>,
    /// Per workload, in mix order.
    pub workloads: Vec<WorkloadReport>,
    /// All workloads together (present when there is more than one).
    pub total: Option<WorkloadReport>,
    /// Problems removing what setup created.
    pub cleanup_errors: Vec<String>,
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

fn workload_report(
    name: &str,
    kind: &str,
    weight: u64,
    s: &WorkloadStats,
    secs: f64,
) -> WorkloadReport {
    let ok = s.requests - s.errors;
    WorkloadReport {
        name: name.to_owned(),
        workload: kind.to_owned(),
        weight,
        requests: s.requests,
        errors: s.errors,
        ok_per_second: if secs > 0.0 { ok as f64 / secs } else { 0.0 },
        latency_ms: Latency {
            mean: s.hist.mean() / 1e6,
            p50: ms(s.hist.percentile(50.0)),
            p90: ms(s.hist.percentile(90.0)),
            p99: ms(s.hist.percentile(99.0)),
            max: ms(s.hist.max()),
        },
        first_errors: s
            .distinct_errors
            .iter()
            .map(|(m, c)| ErrorCount {
                message: m.clone(),
                count: *c,
            })
            .collect(),
        notes: serde_json::Map::new(),
    }
}

impl Report {
    /// Builds the report from a finished run.
    pub fn new(opts: &Options, address: &str, m: Measured, cleanup_errors: Vec<String>) -> Report {
        let secs = m.elapsed.as_secs_f64();
        let workloads: Vec<WorkloadReport> = opts
            .mix
            .iter()
            .zip(&m.stats)
            .map(|(e, s)| workload_report(&e.name, e.kind.name, e.weight, s, secs))
            .collect();
        let total = (m.stats.len() > 1).then(|| {
            let mut all = WorkloadStats::default();
            for s in &m.stats {
                all.merge(s);
            }
            workload_report(
                "total",
                "mix",
                opts.mix.iter().map(|e| e.weight).sum(),
                &all,
                secs,
            )
        });
        Report {
            address: address.to_owned(),
            concurrency: opts.concurrency,
            threads: opts.threads,
            rate_cap: opts.rate,
            warmup_seconds: opts.warmup.as_secs_f64(),
            elapsed_seconds: secs,
            interrupted: m.interrupted,
            client_cpu_seconds: m.client_cpu.map(|d| d.as_secs_f64()),
            workloads,
            total,
            cleanup_errors,
        }
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }

    /// The report as an aligned text table, with the errors and load-generator CPU below.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "tresor bench: {}, {} worker{}, {} thread{}, {:.2} s measured",
            self.address,
            self.concurrency,
            if self.concurrency == 1 { "" } else { "s" },
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.elapsed_seconds
        );
        if self.warmup_seconds > 0.0 {
            out.push_str(&format!(" after {:.2} s warm-up", self.warmup_seconds));
        }
        if let Some(r) = self.rate_cap {
            out.push_str(&format!(", capped at {r} req/s"));
        }
        if self.interrupted {
            out.push_str(" (interrupted)");
        }
        out.push_str("\n\n");
        let header = [
            "workload", "requests", "errors", "ok/s", "p50 ms", "p90 ms", "p99 ms", "max ms",
        ];
        let mut rows: Vec<[String; 8]> = vec![header.map(str::to_owned)];
        for w in self.workloads.iter().chain(self.total.iter()) {
            rows.push([
                w.name.clone(),
                w.requests.to_string(),
                w.errors.to_string(),
                format!("{:.1}", w.ok_per_second),
                fmt_ms(w.latency_ms.p50),
                fmt_ms(w.latency_ms.p90),
                fmt_ms(w.latency_ms.p99),
                fmt_ms(w.latency_ms.max),
            ]);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        for r in &rows {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                if c == 0 {
                    line.push_str(&format!("{:<w$}", cell, w = widths[c]));
                } else {
                    line.push_str(&format!("  {:>w$}", cell, w = widths[c]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        for w in &self.workloads {
            if let Some(s) = w.notes.get("summary").and_then(|s| s.as_str()) {
                out.push_str(&format!("\n{}: {s}\n", w.name));
            }
        }
        for w in &self.workloads {
            if w.errors == 0 {
                continue;
            }
            out.push_str(&format!(
                "\nerrors in {} ({} in total):\n",
                w.name, w.errors
            ));
            for e in &w.first_errors {
                out.push_str(&format!("  {:>8} × {}\n", e.count, e.message));
            }
        }
        if let Some(cpu) = self.client_cpu_seconds {
            let total: u64 = self.workloads.iter().map(|w| w.requests).sum();
            out.push_str(&format!(
                "\nload generator: {:.2} CPU s over {:.2} s ({:.2} cores)",
                cpu,
                self.elapsed_seconds,
                if self.elapsed_seconds > 0.0 {
                    cpu / self.elapsed_seconds
                } else {
                    0.0
                }
            ));
            if total > 0 {
                out.push_str(&format!(
                    ", {:.1} µs CPU per request",
                    cpu * 1e6 / total as f64
                ));
            }
            out.push('\n');
        }
        for e in &self.cleanup_errors {
            out.push_str(&format!("\nwarning: {e}\n"));
        }
        out
    }
}

fn fmt_ms(v: f64) -> String {
    if v < 1.0 {
        format!("{v:.3}")
    } else if v < 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

/// The progress bar for a run, drawn on stderr.
pub fn progress_bar(opts: &Options) -> indicatif::ProgressBar {
    let (len, style) = match opts.stop {
        Stop::Duration(d) => (
            d.as_millis() as u64,
            "{spinner} {elapsed:>4} [{bar:30}] {msg}",
        ),
        Stop::Requests(n) => (n, "{spinner} {pos}/{len} [{bar:30}] {msg}"),
    };
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(s) = indicatif::ProgressStyle::with_template(style) {
        bar.set_style(s.progress_chars("=> "));
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::options::{Env, Parsed, parse};

    struct NoEnv;
    impl Env for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }

    fn sample() -> Report {
        let Parsed::Run(opts) = parse(
            &[
                "-workload=kv-read:3,kv-write".to_owned(),
                "-concurrency=4".to_owned(),
            ],
            &NoEnv,
        )
        .unwrap() else {
            panic!("help")
        };
        let mut read = WorkloadStats::default();
        for v in 1..=300u64 {
            read.hist.record(v * 10_000);
            read.requests += 1;
        }
        let mut write = WorkloadStats::default();
        write.hist.record(5_000_000);
        write.requests = 3;
        write.errors = 2;
        write.distinct_errors = vec![("403 Forbidden: permission denied".into(), 2)];
        let m = Measured {
            stats: vec![read, write],
            elapsed: Duration::from_secs(2),
            client_cpu: Some(Duration::from_millis(500)),
            interrupted: false,
        };
        Report::new(&opts, "http://127.0.0.1:8200", m, vec![])
    }

    #[test]
    fn rates_and_percentiles_per_workload() {
        let r = sample();
        assert_eq!(r.workloads.len(), 2);
        let read = &r.workloads[0];
        assert_eq!(
            (read.name.as_str(), read.weight, read.requests),
            ("kv-read", 3, 300)
        );
        assert_eq!(read.ok_per_second, 150.0);
        assert!(
            (read.latency_ms.p50 - 1.5).abs() < 0.01,
            "{}",
            read.latency_ms.p50
        );
        assert!((read.latency_ms.p99 - 2.97).abs() < 0.02);
        assert_eq!(read.latency_ms.max, 3.0);
        let write = &r.workloads[1];
        assert_eq!(write.ok_per_second, 0.5);
        let total = r.total.as_ref().unwrap();
        assert_eq!((total.requests, total.errors), (303, 2));
    }

    #[test]
    fn table_and_json_carry_the_same_figures() {
        let r = sample();
        let t = r.to_table();
        assert!(t.contains("workload  requests  errors"), "{t}");
        let read_line = t.lines().find(|l| l.starts_with("kv-read")).unwrap();
        assert!(
            read_line.contains("150.0") && read_line.contains("1.50"),
            "{read_line}"
        );
        assert!(t.contains("errors in kv-write (2 in total)"));
        assert!(t.contains("2 × 403 Forbidden: permission denied"));
        assert!(t.contains("0.50 CPU s over 2.00 s"));
        let j: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(j["workloads"][0]["ok_per_second"], 150.0);
        assert_eq!(j["workloads"][1]["first_errors"][0]["count"], 2);
        assert_eq!(j["total"]["requests"], 303);
        assert_eq!(j["concurrency"], 4);
    }
}
