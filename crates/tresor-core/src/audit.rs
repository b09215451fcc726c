//! Audit devices and the broker that fans every request and response out to them.
//!
//! Each entry is one JSON line in Vault's shape. String values in request and response data,
//! tokens and (unless `hmac_accessor=false`) accessors are replaced by
//! `hmac-sha256:<hex>` under a per-device salt, so logs never hold a secret but an operator
//! can still match a known value with `sys/audit-hash`.
//!
//! **Fail closed:** when at least one device is enabled and none can record an entry, the
//! broker returns an error and the request is refused — an unaudited request must not happen.
//! The one exception is the way out of that state: a `DELETE sys/audit/:path` by a token with
//! sudo there (see [`AuditBroker::log`] and docs/SECURITY.md), logged to the server log instead.
//! A device is enabled only after a test entry was written to it, so a device that cannot write
//! is refused instead of stored; one that fails later (disk full, listener gone, a file that
//! cannot be opened at unseal) stays enabled and failing until it works again or is disabled.
//!
//! **Off the runtime's workers.** A file on a stalled disk or a socket whose peer stopped
//! reading blocks the thread that writes to it, so no runtime worker ever writes. Each enabled
//! device has one writer thread (a named `std::thread`, `audit-N`) that alone owns its file,
//! connection or syslog socket and takes entries from a bounded queue ([`QUEUE_DEPTH`]). A
//! request encodes its line for every device on its own task, queues it (waiting
//! asynchronously when a queue is full: back-pressure, never a blocked worker) and awaits every
//! device's answer, each bounded by that device's `write_timeout` ([`SOCKET_WRITE_TIMEOUT`],
//! [`LOCAL_WRITE_TIMEOUT`]). A device that does not answer in time counts as not having
//! recorded the entry, so it delays a request by at most its own timeout, and fail closed
//! decides from the answers. A TCP write that times out drops its connection; the next entry
//! connects again. A writer thread ends once its device is dropped (disabled, replaced by a
//! table reload, or the broker shut down when the server seals) and its queue is drained.
//! A file sink is reopened on SIGHUP (`reload`) so logrotate works.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aws_lc_rs::hmac;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use tresor_physical::Op;

use crate::barrier::{Barrier, Key};
use crate::error::CoreError;

pub const AUDIT_TABLE_PATH: &str = "core/audit";
const SALT_PREFIX: &str = "core/audit-salt/";
pub const REQUEST_HEADERS_PATH: &str = "core/audit-request-headers";
/// Length of `hmac-sha256:` plus 64 hex digits.
pub const HASH_LEN: usize = 12 + 64;

/// Entries one device's queue holds; a request that finds it full waits (asynchronously,
/// within the device's timeout) for room. Every request waits for its own entry's answer, so
/// the queue rarely holds more than one entry per request in flight.
pub const QUEUE_DEPTH: usize = 512;
/// Entries a writer thread takes from its queue for one write to a file or TCP stream.
const MAX_BATCH: usize = 64;
/// The `write_timeout` of a socket device when none is given: Vault's default.
pub const SOCKET_WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// The `write_timeout` of file and syslog devices when none is given (Vault has no such
/// option for them; Tresor accepts it on every device). A local file or `/dev/log` answers in
/// microseconds; five seconds means a stalled disk, a hung network filesystem or a syslog
/// daemon that stopped reading, and is long enough not to fail a request over a slow fsync
/// elsewhere on the machine.
pub const LOCAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A persisted audit device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub local: bool,
}

impl AuditEntry {
    pub fn info(&self) -> Value {
        json!({"type": self.kind, "description": self.description, "options": self.options, "local": self.local, "path": self.path})
    }
}

/// Where a device's lines go. Owned by the device's writer thread alone.
enum Sink {
    File {
        path: std::path::PathBuf,
        mode: u32,
        file: Option<std::fs::File>,
    },
    Stdout,
    Discard,
    Socket {
        address: String,
        udp: bool,
        timeout: Duration,
        conn: Option<SocketConn>,
    },
    Syslog {
        facility: u8,
        tag: String,
        timeout: Duration,
        sock: Option<std::os::unix::net::UnixDatagram>,
    },
}

enum SocketConn {
    Tcp(std::net::TcpStream),
    Udp(std::net::UdpSocket),
}

impl Sink {
    /// Whether lines can go out back to back in one write (a byte stream, not datagrams).
    fn streams(&self) -> bool {
        matches!(
            self,
            Sink::File { .. } | Sink::Stdout | Sink::Discard | Sink::Socket { udp: false, .. }
        )
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Discard => Ok(()),
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
            Sink::File { path, mode, file } => {
                if file.is_none() {
                    *file = Some(open_file(path, *mode)?);
                }
                file.as_mut().expect("just opened").write_all(bytes)
            }
            Sink::Socket {
                address,
                udp,
                timeout,
                conn,
            } => {
                for attempt in 0..2 {
                    if conn.is_none() {
                        *conn = Some(open_socket(address, *udp, *timeout)?);
                    }
                    let r = match conn.as_mut().expect("connected") {
                        SocketConn::Tcp(s) => write_all_within(s, bytes, *timeout),
                        SocketConn::Udp(s) => s.send(bytes).map(|_| ()),
                    };
                    match r {
                        Ok(()) => return Ok(()),
                        Err(e) => {
                            // This connection is done either way; a timed-out write may have
                            // left half an entry in it. A peer that went away gets one fresh
                            // connection now; one that stopped reading gets it next time.
                            *conn = None;
                            if attempt == 1 || e.kind() == std::io::ErrorKind::TimedOut {
                                return Err(context(format!("error writing to {address}"), e));
                            }
                        }
                    }
                }
                Ok(())
            }
            Sink::Syslog {
                facility,
                tag,
                timeout,
                sock,
            } => {
                let pri = (*facility as u32) * 8 + 6; // severity: info
                let mut msg = format!("<{pri}>{tag}: ").into_bytes();
                msg.extend_from_slice(bytes.strip_suffix(b"\n").unwrap_or(bytes));
                for attempt in 0..2 {
                    if sock.is_none() {
                        *sock = Some(open_syslog(*timeout)?);
                    }
                    match sock.as_ref().expect("connected").send(&msg) {
                        Ok(_) => return Ok(()),
                        Err(e) => {
                            *sock = None;
                            if attempt == 1
                                || matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                )
                            {
                                return Err(e);
                            }
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Opens the file or connection if it is not open yet; writes open it too.
    fn open(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Discard | Sink::Stdout => {}
            Sink::File { path, mode, file } => {
                if file.is_none() {
                    *file = Some(open_file(path, *mode)?);
                }
            }
            Sink::Socket {
                address,
                udp,
                timeout,
                conn,
            } => {
                if conn.is_none() {
                    *conn = Some(open_socket(address, *udp, *timeout)?);
                }
            }
            Sink::Syslog { timeout, sock, .. } => {
                if sock.is_none() {
                    *sock = Some(open_syslog(*timeout)?);
                }
            }
        }
        Ok(())
    }

    /// Closes a file so that the next write opens the (rotated) path again.
    fn reopen(&mut self) {
        if let Sink::File { file, .. } = self {
            *file = None;
        }
    }
}

/// What a writer thread answers for one entry: written, or why not.
type Answer = Result<(), String>;

/// One line for a writer thread, and where its answer goes.
struct Job {
    line: Vec<u8>,
    done: oneshot::Sender<Answer>,
}

/// The sending side of a device's writer thread. Dropping it (with the device) closes the
/// queue: the thread writes what is queued, then ends.
struct Writer {
    queue: mpsc::Sender<Job>,
    /// Set by [`AuditBroker::reload`] (SIGHUP); the thread reopens its file before the next write.
    reopen: Arc<AtomicBool>,
    /// The thread's name (`audit-N`), as the OS shows it.
    thread: String,
}

/// Numbers writer threads, so each has its own name.
static WRITERS: AtomicU64 = AtomicU64::new(0);

impl Writer {
    /// Starts the writer thread of device `path`. With `open_now` it opens the sink at once
    /// and logs when it cannot (at unseal: the device stays enabled and failing).
    fn start(mut sink: Sink, path: &str, open_now: bool) -> std::io::Result<Writer> {
        let (queue, mut rx) = mpsc::channel::<Job>(QUEUE_DEPTH);
        let reopen = Arc::new(AtomicBool::new(false));
        let thread = format!("audit-{}", WRITERS.fetch_add(1, Ordering::Relaxed));
        let (flag, device) = (reopen.clone(), path.to_owned());
        std::thread::Builder::new()
            .name(thread.clone())
            .spawn(move || {
                if open_now && let Err(err) = sink.open() {
                    tracing::error!(
                        path = %device,
                        error = %err,
                        "audit device cannot write; requests will be refused until it can or it is disabled"
                    );
                }
                let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
                let mut joined = Vec::new();
                while let Some(job) = rx.blocking_recv() {
                    batch.push(job);
                    if sink.streams() {
                        while batch.len() < MAX_BATCH {
                            match rx.try_recv() {
                                Ok(job) => batch.push(job),
                                Err(_) => break,
                            }
                        }
                    }
                    if flag.swap(false, Ordering::SeqCst) {
                        sink.reopen();
                    }
                    // Only stream sinks take more than one job (datagrams are one entry each).
                    let written = match batch.as_slice() {
                        [one] => sink.write(&one.line),
                        many => {
                            many.iter().for_each(|j| joined.extend_from_slice(&j.line));
                            let r = sink.write(&joined);
                            joined.clear();
                            if joined.capacity() > 1 << 20 {
                                joined = Vec::new();
                            }
                            r
                        }
                    };
                    answer_all(&mut batch, written.map_err(|e| e.to_string()));
                }
                tracing::debug!(path = %device, "audit writer stopped");
            })?;
        Ok(Writer {
            queue,
            reopen,
            thread,
        })
    }
}

/// Answers every job of a batch (a requester that gave up has dropped its receiver).
fn answer_all(batch: &mut Vec<Job>, answer: Answer) {
    for job in batch.drain(..) {
        let _ = job.done.send(answer.clone());
    }
}

/// One enabled device.
pub struct Device {
    pub entry: AuditEntry,
    salt: hmac::Key,
    writer: Writer,
    timeout: Duration,
    log_raw: bool,
    hmac_accessor: bool,
    jsonx: bool,
    prefix: String,
    elide_list_responses: bool,
}

fn opt_bool(o: &BTreeMap<String, String>, k: &str, default: bool) -> Result<bool, CoreError> {
    match o.get(k).map(String::as_str) {
        None | Some("") => Ok(default),
        Some("true" | "1" | "t") => Ok(true),
        Some("false" | "0" | "f") => Ok(false),
        Some(v) => Err(CoreError::InvalidRequest(format!(
            "invalid value {v:?} for option {k:?}: expected true or false"
        ))),
    }
}

/// The `write_timeout` option (Vault's duration syntax), or `default`. Zero is refused: a
/// device without a bound could hold every request for as long as its peer stalls.
fn opt_timeout(o: &BTreeMap<String, String>, default: Duration) -> Result<Duration, CoreError> {
    let Some(v) = o.get("write_timeout").filter(|v| !v.trim().is_empty()) else {
        return Ok(default);
    };
    let d = tresor_sdk::duration::parse(v)
        .map_err(|e| CoreError::InvalidRequest(format!("write_timeout: {e}")))?;
    if d.is_zero() {
        return Err(CoreError::InvalidRequest(
            "write_timeout must be more than zero".into(),
        ));
    }
    Ok(d)
}

fn syslog_facility(name: &str) -> Result<u8, CoreError> {
    let f = match name.to_uppercase().as_str() {
        "KERN" => 0,
        "USER" => 1,
        "MAIL" => 2,
        "DAEMON" => 3,
        "AUTH" | "" => 4,
        "SYSLOG" => 5,
        "AUTHPRIV" => 10,
        "LOCAL0" => 16,
        "LOCAL1" => 17,
        "LOCAL2" => 18,
        "LOCAL3" => 19,
        "LOCAL4" => 20,
        "LOCAL5" => 21,
        "LOCAL6" => 22,
        "LOCAL7" => 23,
        other => {
            return Err(CoreError::InvalidRequest(format!(
                "unknown syslog facility {other:?}"
            )));
        }
    };
    Ok(f)
}

impl Device {
    /// Builds a device from its options and starts its writer thread, without touching its
    /// sink: the file is opened, the socket connected, on the first write
    /// ([`AuditBroker::enable`] makes a test write).
    pub fn new(entry: AuditEntry, salt: &[u8]) -> Result<Device, CoreError> {
        Self::build(entry, salt, false)
    }

    fn build(entry: AuditEntry, salt: &[u8], open_now: bool) -> Result<Device, CoreError> {
        let o = &entry.options;
        let format = o.get("format").cloned().unwrap_or_else(|| "json".into());
        if format != "json" && format != "jsonx" {
            return Err(CoreError::InvalidRequest(format!(
                "unknown format type {format:?}"
            )));
        }
        let (sink, timeout) = match entry.kind.as_str() {
            "file" => {
                let p = o
                    .get("file_path")
                    .or_else(|| o.get("path"))
                    .cloned()
                    .ok_or_else(|| CoreError::InvalidRequest("file_path is required".into()))?;
                let sink = match p.as_str() {
                    "stdout" => Sink::Stdout,
                    "discard" => Sink::Discard,
                    _ => {
                        let mode = match o.get("mode") {
                            None => 0o600,
                            Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8).map_err(
                                |_| CoreError::InvalidRequest(format!("invalid mode {m:?}")),
                            )?,
                        };
                        Sink::File {
                            path: std::path::PathBuf::from(&p),
                            mode,
                            file: None,
                        }
                    }
                };
                (sink, opt_timeout(o, LOCAL_WRITE_TIMEOUT)?)
            }
            "socket" => {
                let address = o
                    .get("address")
                    .cloned()
                    .ok_or_else(|| CoreError::InvalidRequest("address is required".into()))?;
                let udp = match o.get("socket_type").map(String::as_str) {
                    None | Some("tcp") => false,
                    Some("udp") => true,
                    Some(t) => {
                        return Err(CoreError::InvalidRequest(format!(
                            "unsupported socket_type {t:?}"
                        )));
                    }
                };
                let timeout = opt_timeout(o, SOCKET_WRITE_TIMEOUT)?;
                let sink = Sink::Socket {
                    address,
                    udp,
                    timeout,
                    conn: None,
                };
                (sink, timeout)
            }
            "syslog" => {
                let facility =
                    syslog_facility(o.get("facility").map(String::as_str).unwrap_or("AUTH"))?;
                let tag = o.get("tag").cloned().unwrap_or_else(|| "tresor".into());
                let timeout = opt_timeout(o, LOCAL_WRITE_TIMEOUT)?;
                let sink = Sink::Syslog {
                    facility,
                    tag,
                    timeout,
                    sock: None,
                };
                (sink, timeout)
            }
            other => {
                return Err(CoreError::InvalidRequest(format!(
                    "unknown backend type {other:?}: supported audit devices are file, socket and syslog"
                )));
            }
        };
        let log_raw = opt_bool(o, "log_raw", false)?;
        let hmac_accessor = opt_bool(o, "hmac_accessor", true)?;
        let elide_list_responses = opt_bool(o, "elide_list_responses", false)?;
        let prefix = o.get("prefix").cloned().unwrap_or_default();
        // Last, once every option is valid: nothing to stop if the options are refused.
        let writer = Writer::start(sink, &entry.path, open_now).map_err(|e| {
            CoreError::Internal(format!(
                "starting the writer of audit device {}: {e}",
                entry.path
            ))
        })?;
        Ok(Device {
            log_raw,
            hmac_accessor,
            elide_list_responses,
            jsonx: format == "jsonx",
            prefix,
            salt: hmac::Key::new(hmac::HMAC_SHA256, salt),
            writer,
            timeout,
            entry,
        })
    }

    /// `hmac-sha256:<hex>` of a value under this device's salt.
    pub fn hash(&self, v: &str) -> String {
        format!(
            "hmac-sha256:{}",
            hex::encode(hmac::sign(&self.salt, v.as_bytes()).as_ref())
        )
    }

    /// Writes `hmac-sha256:<hex>` of `v` into `buf` and returns it, without allocating.
    pub fn hash_into<'b>(&self, v: &str, buf: &'b mut [u8; HASH_LEN]) -> &'b str {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let tag = hmac::sign(&self.salt, v.as_bytes());
        buf[..12].copy_from_slice(b"hmac-sha256:");
        for (i, b) in tag.as_ref().iter().enumerate() {
            buf[12 + 2 * i] = HEX[(b >> 4) as usize];
            buf[13 + 2 * i] = HEX[(b & 15) as usize];
        }
        std::str::from_utf8(&buf[..]).expect("ascii")
    }

    pub fn log_raw(&self) -> bool {
        self.log_raw
    }

    pub fn hmac_accessor(&self) -> bool {
        self.hmac_accessor
    }

    pub fn elide_list_responses(&self) -> bool {
        self.elide_list_responses
    }

    /// How long a request waits for this device to confirm an entry (`write_timeout`).
    pub fn write_timeout(&self) -> Duration {
        self.timeout
    }

    /// The name of this device's writer thread (`audit-N`), as `/proc/self/task/*/comm`
    /// shows it.
    pub fn writer_thread(&self) -> &str {
        &self.writer.thread
    }

    /// Queues one line for the writer thread and waits for its answer, the whole within this
    /// device's timeout. Never blocks the calling worker.
    async fn record(&self, line: Vec<u8>) -> Answer {
        let (done, answer) = oneshot::channel();
        let queued_and_written = async {
            let stopped = |_| "the device's writer thread has stopped".to_owned();
            self.writer
                .queue
                .send(Job { line, done })
                .await
                .map_err(stopped)?;
            answer
                .await
                .map_err(|_| "the device's writer thread has stopped".to_owned())?
        };
        match tokio::time::timeout(self.timeout, queued_and_written).await {
            Ok(answer) => answer,
            Err(_) => Err(format!(
                "no answer within the device's write_timeout ({})",
                tresor_sdk::duration::format_go(self.timeout)
            )),
        }
    }

    /// One entry as this device writes it: prefix, JSON (or jsonx) line, newline.
    fn encode(&self, facts: &crate::audit_entry::Facts<'_>) -> serde_json::Result<Vec<u8>> {
        let mut line = Vec::with_capacity(1024);
        line.extend_from_slice(self.prefix.as_bytes());
        let entry = crate::audit_entry::Line { f: facts, d: self };
        if self.jsonx {
            let v = serde_json::to_value(&entry)?;
            line.extend_from_slice(to_jsonx(&v).as_bytes());
        } else {
            serde_json::to_writer(&mut line, &entry)?;
        }
        line.push(b'\n');
        Ok(line)
    }

    /// Writes a test entry (a request for `sys/audit/test`, as Vault's probe), so a device that
    /// cannot open its file, reach its address or write is refused before it is stored.
    async fn test_write(&self) -> Answer {
        let time = now_rfc3339();
        let id = uuid::Uuid::new_v4().to_string();
        let data = serde_json::Map::new();
        let facts = crate::audit_entry::Facts {
            kind: "request",
            time: &time,
            id: &id,
            operation: "update",
            path: "sys/audit/test",
            mount_point: "sys/",
            mount_type: "system",
            mount_accessor: "",
            token: None,
            token_issue_time: "",
            data: &data,
            remote: "",
            headers: &[],
            error: "",
            response: None,
            non_hmac_req: &[],
            non_hmac_resp: &[],
        };
        let line = self.encode(&facts).map_err(|e| e.to_string())?;
        self.record(line).await
    }
}

/// Writes all of `bytes` to a TCP stream within `timeout` in total (a peer that reads a
/// little at a time cannot stretch it), or fails with `TimedOut`.
fn write_all_within(
    s: &mut std::net::TcpStream,
    mut bytes: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    let timed_out = || {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "the peer did not take the entry within write_timeout ({})",
                tresor_sdk::duration::format_go(timeout)
            ),
        )
    };
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        s.set_write_timeout(Some(left))?;
        match s.write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The error `e` with `what` in front, keeping its kind.
fn context(what: String, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn open_file(path: &std::path::Path, mode: u32) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(mode)
        .open(path)
        .map_err(|e| context(format!("failed to open audit file {}", path.display()), e))
}

fn open_socket(address: &str, udp: bool, timeout: Duration) -> std::io::Result<SocketConn> {
    connect(address, udp, timeout).map_err(|e| context(format!("error connecting to {address}"), e))
}

fn open_syslog(timeout: Duration) -> std::io::Result<std::os::unix::net::UnixDatagram> {
    let s = std::os::unix::net::UnixDatagram::unbound()?;
    s.connect("/dev/log")
        .map_err(|e| context("cannot reach syslog at /dev/log".into(), e))?;
    s.set_write_timeout(Some(timeout))?;
    Ok(s)
}

fn connect(address: &str, udp: bool, timeout: Duration) -> std::io::Result<SocketConn> {
    if udp {
        let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
        s.connect(address)?;
        s.set_write_timeout(Some(timeout))?;
        Ok(SocketConn::Udp(s))
    } else {
        let addr: std::net::SocketAddr = address
            .parse()
            .map_err(|e| std::io::Error::other(format!("{e}")))?;
        let s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        s.set_write_timeout(Some(timeout))?;
        Ok(SocketConn::Tcp(s))
    }
}

/// Converts a JSON value to Vault's `jsonx` XML form.
fn to_jsonx(v: &Value) -> String {
    fn esc(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }
    fn walk(v: &Value, name: Option<&str>, out: &mut String) {
        let attr = name
            .map(|n| format!(" name=\"{}\"", esc(n)))
            .unwrap_or_default();
        match v {
            Value::Null => out.push_str(&format!("<json:null{attr}/>")),
            Value::Bool(b) => out.push_str(&format!("<json:boolean{attr}>{b}</json:boolean>")),
            Value::Number(n) => out.push_str(&format!("<json:number{attr}>{n}</json:number>")),
            Value::String(s) => {
                out.push_str(&format!("<json:string{attr}>{}</json:string>", esc(s)))
            }
            Value::Array(a) => {
                out.push_str(&format!("<json:array{attr}>"));
                a.iter().for_each(|x| walk(x, None, out));
                out.push_str("</json:array>");
            }
            Value::Object(m) => {
                out.push_str(&format!("<json:object{attr}>"));
                m.iter().for_each(|(k, x)| walk(x, Some(k), out));
                out.push_str("</json:object>");
            }
        }
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    walk(v, None, &mut out);
    out
}

/// The set of enabled devices.
#[derive(Default)]
pub struct AuditBroker {
    /// Swapped whole on enable, disable and reload, so a request takes a snapshot with one
    /// reference count and devices it snapshotted live until its entries are answered.
    devices: RwLock<Arc<Vec<Arc<Device>>>>,
    /// Set at seal once the requests in flight finished: the writers are stopped, and an entry
    /// that still arrived would be refused, never dropped unrecorded.
    shut: AtomicBool,
    /// Serialises enable and disable, so each stores the table it computed.
    changes: tokio::sync::Mutex<()>,
    /// Request headers to include in entries: lowercase name → hmac it?
    headers: RwLock<BTreeMap<String, bool>>,
}

/// Whether two table entries describe the same device (then a reload keeps it running).
fn same_device(a: &AuditEntry, b: &AuditEntry) -> bool {
    a.path == b.path && a.kind == b.kind && a.options == b.options
}

impl AuditBroker {
    /// Loads the devices enabled in the audit table (at unseal).
    pub async fn load(barrier: &Barrier) -> Result<AuditBroker, CoreError> {
        let b = AuditBroker::default();
        *b.devices.write() = Arc::new(Self::devices_from_table(barrier, &[]).await?);
        if let Some(v) = barrier.get(REQUEST_HEADERS_PATH).await? {
            *b.headers.write() = serde_json::from_slice(&v).unwrap_or_default();
        }
        Ok(b)
    }

    /// The devices the stored table lists: those in `running` that are unchanged are kept
    /// (with their writer and open file or socket), the others are started.
    async fn devices_from_table(
        barrier: &Barrier,
        running: &[Arc<Device>],
    ) -> Result<Vec<Arc<Device>>, CoreError> {
        let entries: Vec<AuditEntry> = match barrier.get(AUDIT_TABLE_PATH).await? {
            Some(v) => serde_json::from_slice(&v)
                .map_err(|e| CoreError::Internal(format!("decoding audit table: {e}")))?,
            None => Vec::new(),
        };
        let mut devices = Vec::with_capacity(entries.len());
        for e in entries {
            if let Some(d) = running.iter().find(|d| same_device(&d.entry, &e)) {
                devices.push(d.clone());
                continue;
            }
            let (salt, new) = salt_for(barrier, &e.path).await?;
            if let Some(op) = new {
                barrier.transaction(vec![op]).await?;
            }
            // A device that cannot open now (file unopenable, listener down) still counts as
            // enabled: unseal goes on, its writer logs the error, and requests are refused
            // until it works again or an operator disables it (fail closed, with the way out
            // described in docs/SECURITY.md).
            devices.push(Arc::new(Device::build(e, &salt, true)?));
        }
        Ok(devices)
    }

    /// Reloads the devices and request headers after another server changed the audit
    /// table: devices still enabled keep their writer and open file or socket; the writers
    /// of the others stop.
    pub async fn reload_table(&self, barrier: &Barrier) -> Result<(), CoreError> {
        let _g = self.changes.lock().await;
        let running = self.devices.read().clone();
        let devices = Self::devices_from_table(barrier, &running).await?;
        let headers = match barrier.get(REQUEST_HEADERS_PATH).await? {
            Some(v) => serde_json::from_slice(&v).unwrap_or_default(),
            None => BTreeMap::new(),
        };
        *self.devices.write() = Arc::new(devices);
        *self.headers.write() = headers;
        Ok(())
    }

    /// Whether a request must be audited (and refused if it cannot be). Cheap: the pipeline
    /// asks before it builds anything for an entry.
    pub fn enabled(&self) -> bool {
        self.shut.load(Ordering::Relaxed) || !self.devices.read().is_empty()
    }

    pub fn list(&self) -> Vec<AuditEntry> {
        self.devices
            .read()
            .iter()
            .map(|d| d.entry.clone())
            .collect()
    }

    pub fn device(&self, path: &str) -> Option<Arc<Device>> {
        self.devices
            .read()
            .iter()
            .find(|d| d.entry.path == path)
            .cloned()
    }

    fn table_op(list: &[AuditEntry]) -> Result<Op, CoreError> {
        Ok(Op::Put(
            AUDIT_TABLE_PATH.to_owned(),
            serde_json::to_vec(list).map_err(|e| CoreError::Internal(e.to_string()))?,
        ))
    }

    /// Enables a device (`PUT sys/audit/:path`). The device must take a test entry first;
    /// if it cannot, the answer names the device and the error and nothing is stored.
    pub async fn enable(&self, barrier: &Barrier, entry: AuditEntry) -> Result<(), CoreError> {
        let _changing = self.changes.lock().await;
        if self.device(&entry.path).is_some() {
            return Err(CoreError::InvalidRequest(format!(
                "path already in use: {}",
                entry.path
            )));
        }
        let (salt, new_salt) = salt_for(barrier, &entry.path).await?;
        let d = Device::new(entry, &salt)?;
        if let Err(e) = d.test_write().await {
            // Dropping `d` stops its writer.
            return Err(CoreError::InvalidRequest(format!(
                "audit device {} ({}) failed its test write, not enabled: {e}",
                d.entry.path, d.entry.kind
            )));
        }
        let mut list = self.list();
        list.push(d.entry.clone());
        let mut ops = vec![Self::table_op(&list)?];
        ops.extend(new_salt);
        barrier.transaction(ops).await?;
        let mut devices = self.devices.write();
        let mut next = Vec::clone(&devices);
        next.push(Arc::new(d));
        *devices = Arc::new(next);
        Ok(())
    }

    /// Disables a device (`DELETE sys/audit/:path`); a missing one is not an error. Its writer
    /// stops once the entries already queued (by requests in flight) are written.
    pub async fn disable(&self, barrier: &Barrier, path: &str) -> Result<(), CoreError> {
        let _changing = self.changes.lock().await;
        if self.device(path).is_none() {
            return Ok(());
        }
        let list: Vec<AuditEntry> = self.list().into_iter().filter(|e| e.path != path).collect();
        barrier
            .transaction(vec![
                Self::table_op(&list)?,
                Op::Delete(format!("{SALT_PREFIX}{}", path.trim_end_matches('/'))),
            ])
            .await?;
        let mut devices = self.devices.write();
        let next = devices
            .iter()
            .filter(|d| d.entry.path != path)
            .cloned()
            .collect();
        *devices = Arc::new(next);
        Ok(())
    }

    /// Stops every writer (at seal, after the requests in flight finished). From then on the
    /// broker refuses entries: nothing is audited through a sealed state.
    pub fn shutdown(&self) {
        self.shut.store(true, Ordering::SeqCst);
        *self.devices.write() = Arc::new(Vec::new());
    }

    /// Reopens file sinks (SIGHUP): each writer reopens its file before its next write, so an
    /// entry queued after this returns goes to the new file.
    pub fn reload(&self) {
        for d in self.devices.read().iter() {
            d.writer.reopen.store(true, Ordering::SeqCst);
        }
    }

    pub fn request_headers(&self) -> BTreeMap<String, bool> {
        self.headers.read().clone()
    }

    pub async fn set_request_header(
        &self,
        barrier: &Barrier,
        name: &str,
        hmac: Option<bool>,
    ) -> Result<(), CoreError> {
        {
            let mut h = self.headers.write();
            match hmac {
                Some(v) => h.insert(name.to_lowercase(), v),
                None => h.remove(&name.to_lowercase()),
            };
        }
        let bytes = serde_json::to_vec(&*self.headers.read())
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        barrier.put(REQUEST_HEADERS_PATH, &bytes).await
    }

    /// Writes one entry to every device and returns once each has answered or run out of its
    /// `write_timeout`. The lines are encoded here, on the caller's task; the writes happen on
    /// the devices' writer threads. Fails only if devices exist and none recorded the entry,
    /// unless the entry is [`operator_disable`]'s way out.
    pub async fn log(&self, facts: &crate::audit_entry::Facts<'_>) -> Result<(), CoreError> {
        if self.shut.load(Ordering::SeqCst) {
            return Err(CoreError::Sealed);
        }
        let devices = self.devices.read().clone();
        if devices.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let request = facts.kind == "request";
        let result = self.log_to(&devices, facts).await;
        use crate::telemetry::m;
        match (request, result.is_ok()) {
            (true, true) => m::AUDIT_LOG_REQUEST.since(started),
            (false, true) => m::AUDIT_LOG_RESPONSE.since(started),
            (true, false) => m::AUDIT_LOG_REQUEST_FAILURE.inc(),
            (false, false) => m::AUDIT_LOG_RESPONSE_FAILURE.inc(),
        }
        result
    }

    async fn log_to(
        &self,
        devices: &[Arc<Device>],
        facts: &crate::audit_entry::Facts<'_>,
    ) -> Result<(), CoreError> {
        let mut waits = Vec::with_capacity(devices.len());
        for d in devices.iter() {
            match d.encode(facts) {
                Ok(line) => waits.push((d, Box::pin(d.record(line)))),
                Err(e) => {
                    tracing::error!(device = %d.entry.path, error = %e, "audit entry could not be encoded")
                }
            }
        }
        let answers = crate::join::join_all(waits.iter_mut().map(|(_, w)| w)).await;
        let mut ok = 0;
        for ((d, _), answer) in waits.iter().zip(answers) {
            match answer {
                Ok(()) => ok += 1,
                Err(e) => {
                    tracing::error!(device = %d.entry.path, error = %e, "audit device failed to log")
                }
            }
        }
        if ok == 0 {
            if let Some(accessor) = operator_disable(facts) {
                tracing::warn!(
                    path = %facts.path,
                    accessor = %accessor,
                    entry = facts.kind,
                    "no audit device can record this entry; letting a sudo token's disable of an \
                     audit device proceed (the recovery from failed audit devices)"
                );
                return Ok(());
            }
            return Err(CoreError::Internal(
                "no audit device could record the request; refusing it".into(),
            ));
        }
        Ok(())
    }
}

/// The way out when every enabled device fails (disk full, listener gone): an entry for a
/// `DELETE sys/audit/:path` that the pipeline let through may proceed unrecorded. Returns the
/// caller's accessor when `facts` is such an entry.
///
/// `sys/audit/*` is a sudo path of the system backend, and the pipeline writes an error-free
/// request entry (and a response entry) only after `authorize` passed, sudo check included; so
/// the caller holds root or sudo there. A denied request's entry carries its error and is not
/// exempt. Everything else stays fail-closed.
fn operator_disable<'a>(facts: &crate::audit_entry::Facts<'a>) -> Option<&'a str> {
    let token = facts.token?;
    let authorized = match facts.kind {
        "request" => facts.error.is_empty(),
        "response" => true,
        _ => false,
    };
    let device = facts
        .path
        .strip_prefix(facts.mount_point)
        .and_then(|rel| rel.strip_prefix("audit/"))
        .unwrap_or_default();
    (authorized
        && facts.mount_type == "system"
        && facts.operation == "delete"
        && !device.trim_matches('/').is_empty())
    .then_some(token.accessor.as_str())
}

/// A device's salt, and the write that stores it when it is new (made with the table write).
async fn salt_for(barrier: &Barrier, path: &str) -> Result<(Vec<u8>, Option<Op>), CoreError> {
    let key = format!("{SALT_PREFIX}{}", path.trim_end_matches('/'));
    if let Some(s) = barrier.get(&key).await? {
        return Ok((s.to_vec(), None));
    }
    let k = Key::generate();
    Ok((k.0.to_vec(), Some(Op::Put(key, k.0.to_vec()))))
}

/// Now as RFC 3339 with nanoseconds, as audit `time` fields are.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
