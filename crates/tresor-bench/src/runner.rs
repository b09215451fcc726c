//! Running a benchmark: preflight, setup, the measured phase, cleanup.
//!
//! Workers are tokio tasks, each with its own connection, picker over the weighted mix and
//! per-workload statistics, so the hot loop shares nothing but a few atomics (the stop,
//! recording and closed flags, the request budget, the rate pacer, a progress counter).
//!
//! What counts depends on how the run stops. A run of `-duration=D` counts the requests that
//! complete inside the measured window (from the end of the warm-up to the deadline) and divides
//! by exactly `D`: in a steady state the work a window inherits from requests begun during the
//! warm-up equals the work it leaves to requests still in flight at the deadline, so the rate is
//! unbiased however long one request takes. (Counting the requests that *start* in the window
//! instead, and waiting for the last of them, misses the work of the requests begun during the
//! warm-up, about half the concurrency's worth: with 32 RSA-2048 issues in flight at about 20
//! per second, some 16 of a 10 s window's 200 requests, 7% of the rate.) A run of
//! `-requests=N` makes exactly N requests after the warm-up, counts each one, and measures until
//! the last of them returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{Method, Uri};

use crate::client::{Api, Conn, Target, Token, describe_failure};
use crate::error::BenchError;
use crate::histogram::Histogram;
use crate::mix::Mix;
use crate::options::{Options, Stop};
use crate::report::Report;
use crate::workloads::{SetupContext, Workload};

/// How many distinct error messages each worker keeps per workload (the count is exact
/// regardless).
const MAX_DISTINCT_ERRORS: usize = 5;

/// Results of one workload (one worker's, or all merged).
#[derive(Debug, Default, Clone)]
pub struct WorkloadStats {
    /// Latencies of successful requests, in nanoseconds.
    pub hist: Histogram,
    /// Requests made, successful or not.
    pub requests: u64,
    /// Requests that failed.
    pub errors: u64,
    /// The first distinct error messages, with how often each occurred.
    pub distinct_errors: Vec<(String, u64)>,
}

impl WorkloadStats {
    fn ok(&mut self, nanos: u64) {
        self.requests += 1;
        self.hist.record(nanos);
    }

    fn fail(&mut self, message: String) {
        self.requests += 1;
        self.errors += 1;
        self.note_error(message, 1);
    }

    fn note_error(&mut self, message: String, count: u64) {
        if let Some(e) = self.distinct_errors.iter_mut().find(|(m, _)| *m == message) {
            e.1 += count;
        } else if self.distinct_errors.len() < MAX_DISTINCT_ERRORS {
            self.distinct_errors.push((message, count));
        }
    }

    /// Adds another worker's results.
    pub fn merge(&mut self, other: &WorkloadStats) {
        self.hist.merge(&other.hist);
        self.requests += other.requests;
        self.errors += other.errors;
        for (m, c) in &other.distinct_errors {
            self.note_error(m.clone(), *c);
        }
    }
}

/// What the measured phase produced.
#[derive(Debug)]
pub struct Measured {
    /// Per workload, in mix order.
    pub stats: Vec<WorkloadStats>,
    /// From the end of the warm-up until the last worker finished.
    pub elapsed: Duration,
    /// CPU time (user + system) the load generator used over `elapsed`, where known.
    pub client_cpu: Option<Duration>,
    /// Whether Ctrl-C cut the run short.
    pub interrupted: bool,
}

/// Shares a request rate cap between workers: each request takes the next free slot on a
/// timeline spaced `1/rate` apart. A slot is never taken in the past, so a stall is not
/// followed by a burst above the cap.
struct Pacer {
    origin: Instant,
    interval_ns: u64,
    next_ns: AtomicU64,
}

impl Pacer {
    fn new(rate: f64) -> Self {
        Pacer {
            origin: Instant::now(),
            interval_ns: (1e9 / rate).max(1.0) as u64,
            next_ns: AtomicU64::new(0),
        }
    }

    /// Reserves a slot and returns when it starts.
    fn reserve(&self) -> Instant {
        let now = self.origin.elapsed().as_nanos() as u64;
        let mut cur = self.next_ns.load(Ordering::Relaxed);
        loop {
            let slot = cur.max(now);
            match self.next_ns.compare_exchange_weak(
                cur,
                slot + self.interval_ns,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return self.origin + Duration::from_nanos(slot),
                Err(actual) => cur = actual,
            }
        }
    }
}

struct Shared {
    target: Arc<Target>,
    workloads: Vec<Arc<dyn Workload>>,
    weights: Vec<u64>,
    stop: AtomicBool,
    /// Woken when `stop` is set, for workers waiting on the pacer.
    stopped: tokio::sync::Notify,
    /// Set when the warm-up ends.
    recording: AtomicBool,
    /// Set when the measured window of a `-duration` run ends: later completions do not count.
    closed: AtomicBool,
    /// Requests left to make, in `-requests` mode.
    budget: Option<AtomicU64>,
    pacer: Option<Pacer>,
    /// Measured requests finished so far, for the progress bar.
    done: AtomicU64,
}

/// Whether a request that has just finished counts: in a `-requests` run, whether it started
/// after the warm-up (`recording_at_start`, which also drew on the budget); in a `-duration`
/// run, whether it finished inside the measured window.
fn counts(shared: &Shared, recording_at_start: bool) -> bool {
    if shared.budget.is_some() {
        recording_at_start
    } else {
        shared.recording.load(Ordering::Acquire) && !shared.closed.load(Ordering::Acquire)
    }
}

async fn worker(shared: Arc<Shared>, id: usize) -> Vec<WorkloadStats> {
    let n = shared.workloads.len();
    let mut stats: Vec<WorkloadStats> = vec![WorkloadStats::default(); n];
    let mut seqs = vec![0u64; n];
    let mut mix = Mix::with_offset(&shared.weights, id);
    let mut conn: Option<Conn> = None;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        if let Some(p) = &shared.pacer {
            // Slots can lie a while ahead (concurrency / rate); wake at once when the run
            // stops rather than at the slot, so the measured time does not run over.
            let stopped = shared.stopped.notified();
            tokio::pin!(stopped);
            stopped.as_mut().enable();
            if shared.stop.load(Ordering::Acquire) {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(p.reserve().into()) => {}
                _ = stopped => break,
            }
        }
        // Whether this request counts is decided when it is about to go out, after any wait
        // for a rate slot.
        let recording = shared.recording.load(Ordering::Acquire);
        if let (true, Some(b)) = (recording, &shared.budget) {
            match b.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)) {
                // The last request of the budget: nobody else needs a rate slot.
                Ok(1) => {
                    shared.stop.store(true, Ordering::Release);
                    shared.stopped.notify_waiters();
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let i = mix.next_index();
        let seq = seqs[i];
        seqs[i] += 1;
        if conn.as_ref().is_none_or(|c| !c.is_open()) {
            match shared.target.connect().await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    if counts(&shared, recording) {
                        stats[i].fail(format!("connect: {e}"));
                        shared.done.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        let req = shared.workloads[i].request(&shared.target, id, seq);
        let start = Instant::now();
        let res = tokio::time::timeout(shared.target.timeout(), c.send(req)).await;
        let nanos = start.elapsed().as_nanos() as u64;
        let counted = counts(&shared, recording);
        let outcome = match res {
            Err(_) => {
                conn = None;
                Err("request timed out".to_owned())
            }
            Ok(Err(e)) => {
                conn = None;
                Err(e)
            }
            Ok(Ok(r)) if shared.workloads[i].accepts(r.status) => Ok(()),
            Ok(Ok(r)) => Err(describe_failure(r.status, &r.body)),
        };
        if counted {
            match outcome {
                Ok(()) => stats[i].ok(nanos),
                Err(m) => stats[i].fail(m),
            }
            shared.done.fetch_add(1, Ordering::Relaxed);
        }
    }
    stats
}

/// The CPU time (user + system) this process has used, from `/proc/self/stat`.
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux architecture Tresor targets (it is fixed in the kernel's
    // ABI, independent of CONFIG_HZ).
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Checks that the server answers and is unsealed.
async fn preflight(target: &Target) -> Result<(), BenchError> {
    let unreachable = |reason: String| BenchError::Unreachable {
        address: target.address().to_owned(),
        reason,
    };
    let mut conn = target.connect().await.map_err(unreachable)?;
    let req = target.request(
        Method::GET,
        Uri::from_static("/v1/sys/health"),
        None,
        bytes::Bytes::new(),
    );
    let resp = tokio::time::timeout(target.timeout(), conn.send(req))
        .await
        .map_err(|_| unreachable("sys/health timed out".into()))?
        .map_err(unreachable)?;
    let state = match resp.status.as_u16() {
        200 | 429 | 472 | 473 => return Ok(()),
        501 => "not initialized",
        503 => "sealed",
        _ => {
            return Err(BenchError::Server {
                context: "checking sys/health".into(),
                message: describe_failure(resp.status, &resp.body),
            });
        }
    };
    Err(BenchError::NotReady {
        address: target.address().to_owned(),
        state: state.into(),
    })
}

async fn cleanup_all(api: &Api, ready: &[(String, Arc<dyn Workload>)]) -> Vec<String> {
    let mut errors = Vec::new();
    for (name, w) in ready.iter().rev() {
        if let Err(e) = w.cleanup(api).await {
            errors.push(format!("cleanup of {name}: {e}"));
        }
    }
    errors
}

/// Runs the whole benchmark that `opts` describes and returns the report.
pub async fn execute(
    opts: &Options,
    token: Option<Token>,
    progress: bool,
) -> Result<Report, BenchError> {
    let target = Arc::new(Target::new(&opts.address, &opts.tls, opts.timeout)?);
    if let (Some(m), None) = (opts.mix.iter().find(|m| m.kind.needs_token), &token) {
        return Err(BenchError::NoToken(m.name.clone()));
    }
    preflight(&target).await?;
    let api = Arc::new(Api::new(target.clone(), token.clone()));
    if token.is_some() && opts.mix.iter().any(|m| m.kind.needs_token) {
        api.expect_ok(
            "checking the token (auth/token/lookup-self)",
            Method::GET,
            "auth/token/lookup-self",
            None,
            None,
        )
        .await?;
    }

    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut ready: Vec<(String, Arc<dyn Workload>)> = Vec::new();
    for (i, m) in opts.mix.iter().enumerate() {
        let ctx = SetupContext {
            api: api.clone(),
            unique: format!("tresor-bench-{run_id}-{i}"),
            name: m.name.clone(),
            config: m.config.clone(),
        };
        match (m.kind.setup)(ctx).await {
            Ok(w) => ready.push((m.name.clone(), Arc::from(w))),
            Err(e) => {
                cleanup_all(&api, &ready).await;
                return Err(e);
            }
        }
    }

    let measured = measure(opts, &target, &ready, progress).await;
    let cleanup_errors = if opts.cleanup {
        cleanup_all(&api, &ready).await
    } else {
        Vec::new()
    };
    let mut report = Report::new(opts, target.address(), measured, cleanup_errors);
    for (row, (_, w)) in report.workloads.iter_mut().zip(&ready) {
        row.notes = w.notes(row.ok_per_second);
    }
    Ok(report)
}

async fn measure(
    opts: &Options,
    target: &Arc<Target>,
    ready: &[(String, Arc<dyn Workload>)],
    progress: bool,
) -> Measured {
    let shared = Arc::new(Shared {
        target: target.clone(),
        workloads: ready.iter().map(|(_, w)| w.clone()).collect(),
        weights: opts.mix.iter().map(|m| m.weight).collect(),
        stop: AtomicBool::new(false),
        stopped: tokio::sync::Notify::new(),
        // Without a warm-up, the very first requests count (and draw on a `-requests` budget):
        // workers start sending as soon as they are spawned.
        recording: AtomicBool::new(opts.warmup.is_zero()),
        closed: AtomicBool::new(false),
        budget: match opts.stop {
            Stop::Requests(n) => Some(AtomicU64::new(n)),
            Stop::Duration(_) => None,
        },
        pacer: opts.rate.map(Pacer::new),
        done: AtomicU64::new(0),
    });

    // Ctrl-C once stops the run (results and cleanup still happen); twice exits at once.
    let interrupted = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (shared, interrupted) = (shared.clone(), interrupted.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, Ordering::SeqCst);
                shared.stop.store(true, Ordering::SeqCst);
                shared.stopped.notify_waiters();
                eprintln!("\ninterrupted: finishing in-flight requests, then cleaning up");
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        })
    };

    let mut started = Instant::now();
    let mut cpu_start = process_cpu_time();
    let workers: Vec<_> = (0..opts.concurrency)
        .map(|id| tokio::spawn(worker(shared.clone(), id)))
        .collect();

    let bar = progress.then(|| crate::report::progress_bar(opts));
    let ticker = bar.clone().map(|bar| {
        let shared = shared.clone();
        let stop = opts.stop;
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            let mut measuring_since: Option<Instant> = None;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if !shared.recording.load(Ordering::Acquire) {
                    bar.set_message("warming up");
                    continue;
                }
                let since = *measuring_since.get_or_insert_with(Instant::now);
                let done = shared.done.load(Ordering::Relaxed);
                let now = Instant::now();
                let rate = (done - last.1) as f64 / (now - last.0).as_secs_f64().max(1e-3);
                last = (now, done);
                bar.set_message(format!("{done} requests, {rate:.0}/s"));
                match stop {
                    Stop::Duration(_) => bar.set_position(since.elapsed().as_millis() as u64),
                    Stop::Requests(_) => bar.set_position(done),
                }
            }
        })
    });

    if !opts.warmup.is_zero() {
        sleep_unless_stopped(&shared, opts.warmup).await;
        shared.recording.store(true, Ordering::Release);
        started = Instant::now();
        cpu_start = process_cpu_time();
    }
    // The end of a duration run's window, and the generator's CPU time then.
    let mut window = None;
    if let Stop::Duration(d) = opts.stop {
        sleep_unless_stopped(&shared, d).await;
        shared.closed.store(true, Ordering::Release);
        window = Some((started.elapsed(), process_cpu_time()));
        shared.stop.store(true, Ordering::Release);
        shared.stopped.notify_waiters();
    }
    let mut stats = vec![WorkloadStats::default(); ready.len()];
    for w in workers {
        if let Ok(per) = w.await {
            for (total, s) in stats.iter_mut().zip(&per) {
                total.merge(s);
            }
        }
    }
    let (elapsed, cpu_end) = window.unwrap_or_else(|| (started.elapsed(), process_cpu_time()));
    let client_cpu = match (cpu_start, cpu_end) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    if let Some(t) = ticker {
        t.abort();
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    watcher.abort();
    Measured {
        stats,
        elapsed,
        client_cpu,
        interrupted: interrupted.load(Ordering::SeqCst),
    }
}

/// Sleeps for `d`, waking early if the run is stopped.
async fn sleep_unless_stopped(shared: &Shared, d: Duration) {
    let deadline = tokio::time::Instant::now() + d;
    while tokio::time::Instant::now() < deadline {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let left = deadline - tokio::time::Instant::now();
        tokio::time::sleep(left.min(Duration::from_millis(50))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_stats_keep_exact_counts_and_first_errors() {
        let mut a = WorkloadStats::default();
        let mut b = WorkloadStats::default();
        a.ok(1000);
        a.fail("403 Forbidden: permission denied".into());
        b.fail("403 Forbidden: permission denied".into());
        for i in 0..10 {
            b.fail(format!("error {i}"));
        }
        b.ok(3000);
        a.merge(&b);
        assert_eq!(a.requests, 14);
        assert_eq!(a.errors, 12);
        assert_eq!(a.hist.count(), 2);
        assert_eq!(a.distinct_errors.len(), MAX_DISTINCT_ERRORS);
        assert_eq!(
            a.distinct_errors[0],
            ("403 Forbidden: permission denied".to_owned(), 2)
        );
    }

    #[test]
    fn the_pacer_spaces_slots_and_does_not_bank_idle_time() {
        let p = Pacer::new(1000.0); // 1 ms apart
        let s1 = p.reserve();
        let s2 = p.reserve();
        let s3 = p.reserve();
        assert_eq!(s2 - s1, Duration::from_millis(1));
        assert_eq!(s3 - s2, Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(20));
        // After idling, the next slot is now, not 17 slots in the past.
        let s4 = p.reserve();
        assert!(s4 >= s3 + Duration::from_millis(15), "{:?}", s4 - s3);
        assert!(s4 + Duration::from_millis(5) >= Instant::now());
    }

    /// A server that answers every request after `delay`, over kept-alive HTTP/1.1, counting
    /// the requests it receives.
    async fn slow_server(delay: Duration) -> (std::net::SocketAddr, Arc<AtomicU64>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        // Requests carry no body: one ends at the blank line.
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        buf.drain(..end);
                        counter.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        let resp = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                        if sock.write_all(resp).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, received)
    }

    fn options(args: &[String]) -> Options {
        match crate::options::parse(args, &crate::options::SystemEnv).unwrap() {
            crate::options::Parsed::Run(o) => *o,
            crate::options::Parsed::Help => panic!("help"),
        }
    }

    #[test]
    fn a_request_run_without_warm_up_makes_exactly_n_requests() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (addr, received) = slow_server(Duration::from_millis(2)).await;
            let opts = options(&[
                format!("-address=http://{addr}"),
                "-workload=sys-health".into(),
                "-concurrency=64".into(),
                "-requests=100".into(),
            ]);
            let report = execute(&opts, None, false).await.unwrap();
            assert_eq!(report.workloads[0].requests, 100);
            assert_eq!(report.workloads[0].errors, 0);
            // The preflight's sys/health, then exactly the budget.
            assert_eq!(received.load(Ordering::SeqCst), 1 + 100);
        });
    }

    #[test]
    fn a_duration_run_counts_what_completes_inside_the_window() {
        // Requests take 500 ms and 4 are always in flight, so the server completes 8 per
        // second. Warm-up 750 ms, window 1 s: completions fall at about 1.0 s and 1.5 s after
        // the start (2 × 4 inside the window), with 250 ms to spare on either side. Counting
        // by start instead would give 8 requests over 1.25 s (6.4/s).
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (addr, _) = slow_server(Duration::from_millis(500)).await;
            let opts = options(&[
                format!("-address=http://{addr}"),
                "-workload=sys-health".into(),
                "-concurrency=4".into(),
                "-warmup=750ms".into(),
                "-duration=1s".into(),
            ]);
            let report = execute(&opts, None, false).await.unwrap();
            let w = &report.workloads[0];
            assert_eq!(w.requests, 8, "{report:?}");
            assert_eq!(w.errors, 0);
            assert!(
                (0.99..1.05).contains(&report.elapsed_seconds),
                "{}",
                report.elapsed_seconds
            );
            assert!((7.5..8.1).contains(&w.ok_per_second), "{}", w.ok_per_second);
        });
    }

    #[test]
    fn cpu_time_is_readable_here() {
        let t = process_cpu_time().expect("/proc/self/stat");
        // Burn a little CPU and see the clock move forward (or at least not backwards).
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(process_cpu_time().unwrap() >= t);
    }
}
