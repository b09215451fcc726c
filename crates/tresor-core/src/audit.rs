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
//! Each device has its own lock held only for one write, so logging does not serialise the
//! server; a file sink is reopened on SIGHUP (`reload`) so logrotate works.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use aws_lc_rs::hmac;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use tresor_physical::Op;

use crate::barrier::{Barrier, Key};
use crate::error::CoreError;

pub const AUDIT_TABLE_PATH: &str = "core/audit";
const SALT_PREFIX: &str = "core/audit-salt/";
pub const REQUEST_HEADERS_PATH: &str = "core/audit-request-headers";
/// Length of `hmac-sha256:` plus 64 hex digits.
pub const HASH_LEN: usize = 12 + 64;

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

enum Sink {
    File {
        path: std::path::PathBuf,
        mode: u32,
        file: Mutex<Option<std::fs::File>>,
    },
    Stdout,
    Discard,
    Socket {
        address: String,
        udp: bool,
        conn: Mutex<Option<SocketConn>>,
    },
    Syslog {
        facility: u8,
        tag: String,
        sock: Mutex<Option<std::os::unix::net::UnixDatagram>>,
    },
}

enum SocketConn {
    Tcp(std::net::TcpStream),
    Udp(std::net::UdpSocket),
}

/// One enabled device.
pub struct Device {
    pub entry: AuditEntry,
    salt: hmac::Key,
    sink: Sink,
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
    /// Builds a device from its options without touching its sink: the file is opened, the
    /// socket connected, on the first write ([`AuditBroker::enable`] makes a test write).
    pub fn new(entry: AuditEntry, salt: &[u8]) -> Result<Device, CoreError> {
        let o = &entry.options;
        let format = o.get("format").cloned().unwrap_or_else(|| "json".into());
        if format != "json" && format != "jsonx" {
            return Err(CoreError::InvalidRequest(format!(
                "unknown format type {format:?}"
            )));
        }
        let sink = match entry.kind.as_str() {
            "file" => {
                let p = o
                    .get("file_path")
                    .or_else(|| o.get("path"))
                    .cloned()
                    .ok_or_else(|| CoreError::InvalidRequest("file_path is required".into()))?;
                match p.as_str() {
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
                            file: Mutex::new(None),
                        }
                    }
                }
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
                Sink::Socket {
                    address,
                    udp,
                    conn: Mutex::new(None),
                }
            }
            "syslog" => {
                let facility =
                    syslog_facility(o.get("facility").map(String::as_str).unwrap_or("AUTH"))?;
                let tag = o.get("tag").cloned().unwrap_or_else(|| "tresor".into());
                Sink::Syslog {
                    facility,
                    tag,
                    sock: Mutex::new(None),
                }
            }
            other => {
                return Err(CoreError::InvalidRequest(format!(
                    "unknown backend type {other:?}: supported audit devices are file, socket and syslog"
                )));
            }
        };
        Ok(Device {
            log_raw: opt_bool(o, "log_raw", false)?,
            hmac_accessor: opt_bool(o, "hmac_accessor", true)?,
            elide_list_responses: opt_bool(o, "elide_list_responses", false)?,
            jsonx: format == "jsonx",
            prefix: o.get("prefix").cloned().unwrap_or_default(),
            salt: hmac::Key::new(hmac::HMAC_SHA256, salt),
            sink,
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

    fn write(&self, line: &[u8]) -> std::io::Result<()> {
        match &self.sink {
            Sink::Discard => Ok(()),
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(line)?;
                out.flush()
            }
            Sink::File { path, mode, file } => {
                let mut g = file.lock();
                if g.is_none() {
                    *g = Some(open_file(path, *mode)?);
                }
                let f = g.as_mut().expect("just opened");
                f.write_all(line)
            }
            Sink::Socket { address, udp, conn } => {
                let mut g = conn.lock();
                for attempt in 0..2 {
                    if g.is_none() {
                        *g = Some(open_socket(address, *udp)?);
                    }
                    let r = match g.as_mut().expect("connected") {
                        SocketConn::Tcp(s) => s.write_all(line),
                        SocketConn::Udp(s) => s.send(line).map(|_| ()),
                    };
                    match r {
                        Ok(()) => return Ok(()),
                        Err(e) if attempt == 1 => return Err(e),
                        Err(_) => *g = None,
                    }
                }
                Ok(())
            }
            Sink::Syslog {
                facility,
                tag,
                sock,
            } => {
                let mut g = sock.lock();
                let pri = (*facility as u32) * 8 + 6; // severity: info
                let mut msg = format!("<{pri}>{tag}: ").into_bytes();
                msg.extend_from_slice(line.strip_suffix(b"\n").unwrap_or(line));
                for attempt in 0..2 {
                    if g.is_none() {
                        *g = Some(open_syslog()?);
                    }
                    match g.as_ref().expect("connected").send(&msg) {
                        Ok(_) => return Ok(()),
                        Err(e) if attempt == 1 => return Err(e),
                        Err(_) => *g = None,
                    }
                }
                Ok(())
            }
        }
    }

    /// Opens the sink (file, connection) if it is not open yet; writes open it too.
    fn open(&self) -> std::io::Result<()> {
        match &self.sink {
            Sink::Discard | Sink::Stdout => {}
            Sink::File { path, mode, file } => {
                let mut g = file.lock();
                if g.is_none() {
                    *g = Some(open_file(path, *mode)?);
                }
            }
            Sink::Socket { address, udp, conn } => {
                let mut g = conn.lock();
                if g.is_none() {
                    *g = Some(open_socket(address, *udp)?);
                }
            }
            Sink::Syslog { sock, .. } => {
                let mut g = sock.lock();
                if g.is_none() {
                    *g = Some(open_syslog()?);
                }
            }
        }
        Ok(())
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
    fn test_write(&self) -> std::io::Result<()> {
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
        let line = self.encode(&facts).map_err(std::io::Error::other)?;
        self.write(&line)
    }

    fn reopen(&self) {
        if let Sink::File { file, .. } = &self.sink {
            // Dropping the handle makes the next write open the (rotated) path again.
            *file.lock() = None;
        }
    }
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

fn open_socket(address: &str, udp: bool) -> std::io::Result<SocketConn> {
    connect(address, udp).map_err(|e| context(format!("error connecting to {address}"), e))
}

fn open_syslog() -> std::io::Result<std::os::unix::net::UnixDatagram> {
    let s = std::os::unix::net::UnixDatagram::unbound()?;
    s.connect("/dev/log")
        .map_err(|e| context("cannot reach syslog at /dev/log".into(), e))?;
    Ok(s)
}

fn connect(address: &str, udp: bool) -> std::io::Result<SocketConn> {
    if udp {
        let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
        s.connect(address)?;
        Ok(SocketConn::Udp(s))
    } else {
        let addr: std::net::SocketAddr = address
            .parse()
            .map_err(|e| std::io::Error::other(format!("{e}")))?;
        let s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))?;
        s.set_write_timeout(Some(std::time::Duration::from_secs(2)))?;
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
    devices: RwLock<Vec<Arc<Device>>>,
    /// Serialises enable and disable, so each stores the table it computed.
    changes: tokio::sync::Mutex<()>,
    /// Request headers to include in entries: lowercase name → hmac it?
    headers: RwLock<BTreeMap<String, bool>>,
}

impl AuditBroker {
    /// Loads the devices enabled in the audit table (at unseal).
    pub async fn load(barrier: &Barrier) -> Result<AuditBroker, CoreError> {
        let b = AuditBroker::default();
        let entries: Vec<AuditEntry> = match barrier.get(AUDIT_TABLE_PATH).await? {
            Some(v) => serde_json::from_slice(&v)
                .map_err(|e| CoreError::Internal(format!("decoding audit table: {e}")))?,
            None => Vec::new(),
        };
        for e in entries {
            let (salt, new) = salt_for(barrier, &e.path).await?;
            if let Some(op) = new {
                barrier.transaction(vec![op]).await?;
            }
            let d = Device::new(e, &salt)?;
            // A device that cannot open now (file unopenable, listener down) still counts as
            // enabled: unseal goes on, requests are refused until it works again or an operator
            // disables it (fail closed, with the way out described in docs/SECURITY.md).
            if let Err(err) = d.open() {
                tracing::error!(
                    path = %d.entry.path,
                    error = %err,
                    "audit device cannot write; requests will be refused until it can or it is disabled"
                );
            }
            b.devices.write().push(Arc::new(d));
        }
        if let Some(v) = barrier.get(REQUEST_HEADERS_PATH).await? {
            *b.headers.write() = serde_json::from_slice(&v).unwrap_or_default();
        }
        Ok(b)
    }

    /// Reloads the devices and request headers after another server changed the audit
    /// table: devices still enabled keep their open file or socket.
    pub async fn reload_table(&self, barrier: &Barrier) -> Result<(), CoreError> {
        let _g = self.changes.lock().await;
        let fresh = AuditBroker::load(barrier).await?;
        let fresh_devices = fresh.devices.into_inner();
        let mut devices = self.devices.write();
        let kept: Vec<Arc<Device>> = fresh_devices
            .into_iter()
            .map(|d| {
                devices
                    .iter()
                    .find(|old| {
                        old.entry.path == d.entry.path
                            && old.entry.kind == d.entry.kind
                            && old.entry.options == d.entry.options
                    })
                    .cloned()
                    .unwrap_or(d)
            })
            .collect();
        *devices = kept;
        *self.headers.write() = fresh.headers.into_inner();
        Ok(())
    }

    pub fn enabled(&self) -> bool {
        !self.devices.read().is_empty()
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
        if let Err(e) = d.test_write() {
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
        self.devices.write().push(Arc::new(d));
        Ok(())
    }

    /// Disables a device (`DELETE sys/audit/:path`); a missing one is not an error.
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
        self.devices.write().retain(|d| d.entry.path != path);
        Ok(())
    }

    /// Reopens file sinks (SIGHUP).
    pub fn reload(&self) {
        for d in self.devices.read().iter() {
            d.reopen();
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

    /// Writes one entry to every device. Fails only if devices exist and none recorded it,
    /// unless the entry is [`operator_disable`]'s way out.
    pub fn log(&self, facts: &crate::audit_entry::Facts<'_>) -> Result<(), CoreError> {
        let devices = self.devices.read().clone();
        if devices.is_empty() {
            return Ok(());
        }
        let mut ok = 0;
        for d in &devices {
            let line = match d.encode(facts) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(device = %d.entry.path, error = %e, "audit entry could not be encoded");
                    continue;
                }
            };
            match d.write(&line) {
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
