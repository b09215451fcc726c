//! End to end: crash safety of the embedded store. Writers put KV v2 secrets as fast as the
//! server acknowledges them; the server is killed with SIGKILL in the middle of that load and
//! restarted on the same data directory. It must come back sealed, unseal with the same keys,
//! and hold every write it acknowledged, with the acknowledged value.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, free_port, plain_config, strings};
use serde_json::{Value, json};

const WRITERS: usize = 4;
/// Kill once this many writes are acknowledged (or the deadline passes).
const TARGET_ACKS: usize = 400;

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

#[test]
fn acknowledged_writes_survive_kill_dash_nine() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut s = Server::start(tmp.path(), port, &plain_config(port, ""));

    let init = s
        .bao(&[
            "operator",
            "init",
            "-key-shares=3",
            "-key-threshold=2",
            "-format=json",
        ])
        .expect(0, "operator init")
        .json();
    let keys = strings(&init["unseal_keys_b64"]);
    let root = init["root_token"].as_str().unwrap().to_owned();
    for k in &keys[..2] {
        s.bao(&["operator", "unseal", k]).expect(0, "unseal");
    }
    s.bao_as(
        &root,
        &["secrets", "enable", "-version=2", "-path=secret", "kv"],
    )
    .expect(0, "enable kv v2 at secret/");

    // Writers record a write only once the server has answered 200 for it.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (acked, stop, root) = (acked.clone(), stop.clone(), root.clone());
            let url = format!("{}/v1/secret/data", s.addr);
            std::thread::spawn(move || {
                let c = client();
                let mut failures = 0;
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let path = format!("w{w}/k{i}");
                    let value = format!("{run_id}-{w}-{i}");
                    let r = c
                        .put(format!("{url}/{path}"))
                        .header("X-Vault-Token", &root)
                        .json(&json!({"data": {"v": value}}))
                        .send();
                    match r {
                        Ok(resp) if resp.status().as_u16() == 200 => {
                            acked.lock().unwrap().push((path, value));
                        }
                        Ok(resp) => panic!("write {path} got {}", resp.status()),
                        // The server is gone: a couple of retries, then stop.
                        Err(_) => {
                            failures += 1;
                            if failures > 2 {
                                break;
                            }
                        }
                    }
                }
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(15);
    while acked.lock().unwrap().len() < TARGET_ACKS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGKILL mid-load: the writers are still sending.
    s.kill9();
    let killed_at = acked.lock().unwrap().len();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer thread");
    }
    let acked = Arc::try_unwrap(acked).unwrap().into_inner().unwrap();
    eprintln!(
        "{} writes acknowledged ({killed_at} when SIGKILL was sent)",
        acked.len()
    );
    assert!(
        killed_at >= 50,
        "too few writes acknowledged before the kill ({killed_at}) to test anything"
    );

    // Restart on the same data directory: sealed, initialized, same seal config.
    let port2 = free_port();
    let s2 = Server::start(tmp.path(), port2, &plain_config(port2, ""));
    let o = s2.bao(&["status", "-format=json"]);
    let st = o.json();
    assert_eq!(o.code, 2, "status after restart must say sealed\n{o}");
    assert_eq!(
        (&st["initialized"], &st["sealed"]),
        (&Value::Bool(true), &Value::Bool(true))
    );
    assert_eq!((&st["t"], &st["n"]), (&2.into(), &3.into()), "{st}");
    for k in &keys[1..] {
        s2.bao(&["operator", "unseal", k])
            .expect(0, "unseal after restart");
    }
    s2.bao(&["status"]).expect(0, "unsealed after restart");

    // Every acknowledged write is there with its value.
    let chunks: Vec<Vec<(String, String)>> = acked
        .chunks(acked.len().div_ceil(WRITERS))
        .map(<[_]>::to_vec)
        .collect();
    let readers: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let url = format!("{}/v1/secret/data", s2.addr);
            let root = root.clone();
            std::thread::spawn(move || {
                let c = client();
                let mut missing = Vec::new();
                for (path, value) in chunk {
                    let r = c
                        .get(format!("{url}/{path}"))
                        .header("X-Vault-Token", &root)
                        .send()
                        .expect("read back");
                    let status = r.status().as_u16();
                    let body: Value = r.json().unwrap_or(Value::Null);
                    if status != 200 || body["data"]["data"]["v"] != value.as_str() {
                        missing.push(format!("{path}: {status} {body}"));
                    }
                }
                missing
            })
        })
        .collect();
    let missing: Vec<String> = readers
        .into_iter()
        .flat_map(|r| r.join().expect("reader thread"))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost after kill -9, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
}
