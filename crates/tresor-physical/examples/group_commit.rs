//! Measures the embedded store's write path: C concurrent writers each put N small values
//! (every put acknowledged only after its fsync'd commit), then one `delete_prefix` removes
//! them all. Prints one JSON line: wall time and writes per second, and the range delete's
//! time and revision step (1: one commit). Group commit is what keeps the writes from being C
//! times slower than one writer. Usage:
//! `cargo run -p tresor-physical --example group_commit -- [N] [C]` (defaults 200 and 64).

use std::sync::Arc;
use std::time::Instant;

use tresor_physical::{Backend, EmbeddedBackend};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map_or(200, |a| a.parse().expect("N is a number"));
    let c: usize = args
        .next()
        .map_or(64, |a| a.parse().expect("C is a number"));
    let dir = tempfile::tempdir().expect("temporary directory");
    let b = Arc::new(EmbeddedBackend::open(dir.path()).expect("open store"));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..c {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..n {
                b.put(&format!("bench/{w:03}/{i:06}"), vec![7u8; 100])
                    .await
                    .expect("put");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    let secs = start.elapsed().as_secs_f64();
    let writes = n * c;
    let before = b.revision().await.expect("revision");
    let start = Instant::now();
    let after = b.delete_prefix("bench/").await.expect("delete_prefix");
    let delete_secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"writes\":{writes},\"writers\":{c},\"seconds\":{secs:.3},\"writes_per_second\":{:.0},\"delete_prefix_seconds\":{delete_secs:.3},\"delete_prefix_revisions\":{}}}",
        writes as f64 / secs,
        after - before
    );
}
