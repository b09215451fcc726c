//! What an operator inspects a running server with (issue 20): the requests in flight, the
//! host, the loggers and their levels, the log stream (`sys/monitor`), the sanitized
//! configuration. The binary installs what only it knows (the log subscriber, the config)
//! through [`install`]; the core and the HTTP layer read it from here.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, OnceLock};

use parking_lot::Mutex;
use serde_json::{Value, json};

/// The log subscriber, as far as the API can change or read it.
pub trait LogControl: Send + Sync {
    /// The level of every named logger (`core`, `audit`, ...), and `""` for the base level.
    fn levels(&self) -> BTreeMap<String, String>;
    /// Sets a logger's level (`None`: every logger); `Err` names the problem.
    fn set_level(&self, logger: Option<&str>, level: &str) -> Result<(), String>;
    /// Back to the configured levels (`None`: every logger).
    fn reset(&self, logger: Option<&str>) -> Result<(), String>;
    /// A stream of formatted log lines at `level` or above (`json`: one JSON object a line).
    fn subscribe(
        &self,
        level: &str,
        json: bool,
    ) -> Result<tokio::sync::mpsc::Receiver<String>, String>;
}

/// What the binary provides.
pub struct Installed {
    pub logs: Box<dyn LogControl>,
    /// The configuration with secrets removed (`sys/config/state/sanitized`).
    pub sanitized_config: Value,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

pub fn install(i: Installed) {
    let _ = INSTALLED.set(i);
}

pub fn installed() -> Option<&'static Installed> {
    INSTALLED.get()
}

/// One request in flight (`sys/in-flight-req`).
#[derive(Debug, Clone)]
struct InFlight {
    start: String,
    remote: String,
    path: String,
    method: String,
}

const SHARDS: usize = 16;
static NEXT: AtomicU64 = AtomicU64::new(1);
static SALT: LazyLock<u64> = LazyLock::new(|| {
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut b);
    u64::from_le_bytes(b)
});
static IN_FLIGHT: LazyLock<[Mutex<HashMap<u64, InFlight>>; SHARDS]> =
    LazyLock::new(|| std::array::from_fn(|_| Mutex::new(HashMap::new())));

/// Registered while a request runs; removed when dropped. Also counts
/// `vault.core.in_flight_requests`.
pub struct InFlightGuard {
    id: u64,
    _level: crate::telemetry::LevelGuard,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        IN_FLIGHT[(self.id as usize) % SHARDS]
            .lock()
            .remove(&self.id);
    }
}

/// Registers a request (each shard's lock is held for one insert; requests spread over 16).
pub fn begin(method: &str, path: &str, remote: Option<&str>) -> InFlightGuard {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let level = crate::telemetry::m::IN_FLIGHT.enter();
    IN_FLIGHT[(id as usize) % SHARDS].lock().insert(
        id,
        InFlight {
            start: rfc3339_now(),
            remote: remote.unwrap_or_default().to_owned(),
            path: path.to_owned(),
            method: method.to_owned(),
        },
    );
    InFlightGuard { id, _level: level }
}

fn rfc3339_now() -> String {
    let t = time::OffsetDateTime::now_utc();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn uuid_of(id: u64) -> String {
    let x = id ^ *SALT;
    let h = SALT.rotate_left(17);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        (h >> 32) as u32,
        (h >> 16) as u16,
        h as u16,
        (x >> 48) as u16,
        x & 0xffff_ffff_ffff
    )
}

/// `sys/in-flight-req`: Vault's shape, keyed by request id.
pub fn in_flight() -> Value {
    let mut out = serde_json::Map::new();
    for shard in IN_FLIGHT.iter() {
        for (id, r) in shard.lock().iter() {
            out.insert(
                uuid_of(*id),
                json!({
                    "start_time": r.start,
                    "client_remote_address": r.remote,
                    "request_path": r.path,
                    "request_method": r.method,
                    "client_id": "",
                }),
            );
        }
    }
    Value::Object(out)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `sys/host-info`, from `/proc` and `statvfs`: CPUs, CPU times, disks, host, memory.
pub fn host_info() -> Value {
    let cpuinfo = read("/proc/cpuinfo");
    let mut cpus = Vec::new();
    for block in cpuinfo.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let f = |k: &str| {
            block
                .lines()
                .find_map(|l| {
                    let (a, b) = l.split_once(':')?;
                    (a.trim() == k).then(|| b.trim().to_owned())
                })
                .unwrap_or_default()
        };
        cpus.push(json!({
            "cpu": f("processor").parse::<u64>().unwrap_or(0),
            "vendorId": f("vendor_id"),
            "family": f("cpu family"),
            "model": f("model"),
            "modelName": f("model name"),
            "mhz": f("cpu MHz").parse::<f64>().unwrap_or(0.0),
            "cacheSize": f("cache size").trim_end_matches(" KB").parse::<u64>().unwrap_or(0),
            "cores": f("cpu cores").parse::<u64>().unwrap_or(1),
            "flags": f("flags").split_whitespace().collect::<Vec<_>>(),
        }));
    }
    let ticks = 100.0; // USER_HZ on Linux
    let cpu_times: Vec<Value> = read("/proc/stat")
        .lines()
        .filter(|l| l.starts_with("cpu"))
        .map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next().unwrap_or_default().to_owned();
            let v: Vec<f64> = it
                .map(|x| x.parse::<f64>().unwrap_or(0.0) / ticks)
                .collect();
            let g = |i: usize| v.get(i).copied().unwrap_or(0.0);
            json!({"cpu": name, "user": g(0), "nice": g(1), "system": g(2), "idle": g(3),
                   "iowait": g(4), "irq": g(5), "softirq": g(6), "steal": g(7),
                   "guest": g(8), "guestNice": g(9)})
        })
        .collect();
    let meminfo = read("/proc/meminfo");
    let mem = |k: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let (total, available, free) = (mem("MemTotal:"), mem("MemAvailable:"), mem("MemFree:"));
    let used = total.saturating_sub(available);
    let uptime = read("/proc/uptime")
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(0.0) as u64;
    let now = crate::tokens::now() as u64;
    let os = read("/etc/os-release");
    let osf = |k: &str| {
        os.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_default()
    };
    let procs = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count()
        })
        .unwrap_or(0);
    json!({
        "cpu": cpus,
        "cpu_times": cpu_times,
        "disk": disks(),
        "host": {
            "hostname": crate::telemetry::hostname(),
            "uptime": uptime,
            "bootTime": now.saturating_sub(uptime),
            "procs": procs,
            "os": "linux",
            "platform": osf("ID"),
            "platformFamily": osf("ID_LIKE"),
            "platformVersion": osf("VERSION_ID"),
            "kernelVersion": read("/proc/sys/kernel/osrelease").trim(),
            "kernelArch": std::env::consts::ARCH,
            "hostid": read("/etc/machine-id").trim(),
        },
        "memory": {
            "total": total,
            "available": available,
            "used": used,
            "usedPercent": if total > 0 { used as f64 * 100.0 / total as f64 } else { 0.0 },
            "free": free,
            "buffers": mem("Buffers:"),
            "cached": mem("Cached:"),
            "swapTotal": mem("SwapTotal:"),
            "swapFree": mem("SwapFree:"),
        },
        "timestamp": rfc3339_now(),
    })
}

/// The mounted file systems backed by a device, with their usage (`df`).
fn disks() -> Vec<Value> {
    let mut out = Vec::new();
    for line in read("/proc/self/mounts").lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 || !f[0].starts_with('/') {
            continue;
        }
        if let Some((total, free, avail)) = statvfs(f[1]) {
            let used = total.saturating_sub(free);
            out.push(json!({
                "path": f[1], "fstype": f[2], "total": total, "free": avail, "used": used,
                "usedPercent": if total > 0 { used as f64 * 100.0 / total as f64 } else { 0.0 },
            }));
        }
    }
    out
}

/// Total, free and available bytes of a file system, through `df` (the core forbids
/// `unsafe`, so no `statvfs` call of its own).
fn statvfs(path: &str) -> Option<(u64, u64, u64)> {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=size,used,avail", path])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1)?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let (size, used, avail) = (*v.first()?, *v.get(1)?, *v.get(2)?);
    Some((size, size.saturating_sub(used), avail))
}
