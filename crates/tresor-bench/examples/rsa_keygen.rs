//! aws-lc-rs's own RSA key-generation rate on this machine: the ceiling for `pki-issue` with
//! RSA keys, which `bench/compare.sh` measures in the same run as the servers.
//!
//! `N` threads (default: every core) each generate keys with the very call Tresor's PKI engine
//! makes (`aws_lc_rs::rsa::KeyPair::generate`) until the time is up; a key in progress at the
//! deadline is finished and counted, and the rate is keys over the time until the last thread
//! stopped. Prints one JSON object.
//!
//! ```sh
//! cargo run --release -p tresor-bench --example rsa_keygen -- -threads=2 -duration=10s -bits=2048
//! ```

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use aws_lc_rs::rsa::{KeyPair, KeySize};

struct Args {
    threads: usize,
    duration: Duration,
    bits: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        duration: Duration::from_secs(5),
        bits: 2048,
    };
    for arg in std::env::args().skip(1) {
        let (name, value) = arg
            .trim_start_matches('-')
            .split_once('=')
            .ok_or_else(|| format!("expected -name=value, got {arg:?}"))?;
        match name {
            "threads" => {
                a.threads = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("invalid value {value:?} for -threads"))?;
            }
            "duration" => {
                a.duration = tresor_bench::options::parse_duration("-duration", value)
                    .map_err(|e| e.to_string())?;
                if a.duration.is_zero() {
                    return Err("-duration must be longer than zero".into());
                }
            }
            "bits" => {
                a.bits = value
                    .parse()
                    .map_err(|_| format!("invalid value {value:?} for -bits"))?;
            }
            other => return Err(format!("flag provided but not defined: -{other}")),
        }
    }
    Ok(a)
}

fn key_size(bits: u32) -> Result<KeySize, String> {
    match bits {
        2048 => Ok(KeySize::Rsa2048),
        3072 => Ok(KeySize::Rsa3072),
        4096 => Ok(KeySize::Rsa4096),
        8192 => Ok(KeySize::Rsa8192),
        b => Err(format!("-bits={b}: expected 2048, 3072, 4096 or 8192")),
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(1);
        }
    };
    let size = match key_size(args.bits) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(1);
        }
    };
    let start = Instant::now();
    let deadline = start + args.duration;
    let handles: Vec<_> = (0..args.threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut keys = 0u64;
                while Instant::now() < deadline {
                    // The key is dropped at once; its memory is cleared by aws-lc.
                    if KeyPair::generate(size).is_err() {
                        return Err("aws-lc-rs failed to generate a key".to_owned());
                    }
                    keys += 1;
                }
                Ok(keys)
            })
        })
        .collect();
    let mut keys = 0u64;
    for h in handles {
        match h.join() {
            Ok(Ok(k)) => keys += k,
            Ok(Err(e)) => {
                eprintln!("Error: {e}");
                std::process::exit(1);
            }
            Err(_) => {
                eprintln!("Error: a generator thread panicked");
                std::process::exit(1);
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{{\"bits\":{},\"threads\":{},\"seconds\":{:.3},\"keys\":{},\"keys_per_second\":{:.2}}}",
        args.bits,
        args.threads,
        seconds,
        keys,
        keys as f64 / seconds
    );
}
