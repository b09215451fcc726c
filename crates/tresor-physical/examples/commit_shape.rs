//! How key placement prices a commit on the embedded store: 32 concurrent writers each commit
//! token-like transactions of five keys (one 700-byte value, four 200-byte ones), of which R
//! scatter over their range like hashes and the rest append in order. Each scattered key
//! dirties its own B-tree page; ordered keys share the last one. Prints transactions per
//! second. Usage: `cargo run --release -p tresor-physical --example commit_shape -- [R] [SECS]`
//! (defaults 4 and 5). Figures: docs/bench/ISSUE_11_core_rows.md.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tresor_physical::{Backend, EmbeddedBackend, Op};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let random: usize = args.next().map_or(4, |a| a.parse().unwrap());
    let secs: u64 = args.next().map_or(5, |a| a.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let b = Arc::new(EmbeddedBackend::open(dir.path()).unwrap());
    let seq = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (b, seq, done) = (b.clone(), seq.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < stop {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let mut ops = Vec::new();
                for k in 0..5 {
                    let key = if k < random {
                        // A cheap mixer: keys scatter over the key space like hashes do.
                        let h = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (k as u64) << 59)
                            .wrapping_mul(0xBF58_476D_1CE4_E5B9);
                        format!("t{k}/{h:016x}{:016x}", h.rotate_left(17))
                    } else {
                        format!("t{k}/{n:016}")
                    };
                    ops.push(Op::Put(key, vec![9u8; if k == 0 { 700 } else { 200 }]));
                }
                b.transaction(ops).await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "random={random} txns/s={:.0}",
        done.load(Ordering::Relaxed) as f64 / secs as f64
    );
}
