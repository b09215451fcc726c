//! Audit devices and the broker that fans every request and response out to them.
//!
//! Each entry is one JSON line in Vault's shape. String values in request and response data,
//! tokens and (unless `hmac_accessor=false`) accessors are replaced by
//! `hmac-sha256:<hex>` under a per-device salt, so logs never hold a secret but an operator
//! can still match a known value with `sys/audit-hash`.
//!
//! **Fail closed:** when at least one device is enabled and none can record an entry, the
//! broker returns an error and the request is refused — an unaudited request must not happen.
//! Each device has its own lock held only for one write, so logging does not serialise the
//! server; a file sink is reopened on SIGHUP (`reload`) so logrotate works.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use aws_lc_rs::hmac;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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
    /// Builds a device; opens its sink so a bad file path or address fails the enable.
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
                        let path = std::path::PathBuf::from(&p);
                        let f = open_append(&path, mode)?;
                        Sink::File {
                            path,
                            mode,
                            file: Mutex::new(Some(f)),
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
                let conn = connect(&address, udp).map_err(|e| {
                    CoreError::InvalidRequest(format!("error connecting to {address}: {e}"))
                })?;
                Sink::Socket {
                    address,
                    udp,
                    conn: Mutex::new(Some(conn)),
                }
            }
            "syslog" => {
                let facility =
                    syslog_facility(o.get("facility").map(String::as_str).unwrap_or("AUTH"))?;
                let tag = o.get("tag").cloned().unwrap_or_else(|| "tresor".into());
                let sock = std::os::unix::net::UnixDatagram::unbound()
                    .map_err(|e| CoreError::Internal(e.to_string()))?;
                sock.connect("/dev/log").map_err(|e| {
                    CoreError::InvalidRequest(format!("cannot reach syslog at /dev/log: {e}"))
                })?;
                Sink::Syslog {
                    facility,
                    tag,
                    sock: Mutex::new(Some(sock)),
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
                    *g = Some(
                        open_append(path, *mode)
                            .map_err(|e| std::io::Error::other(e.to_string()))?,
                    );
                }
                let f = g.as_mut().expect("just opened");
                f.write_all(line)
            }
            Sink::Socket { address, udp, conn } => {
                let mut g = conn.lock();
                for attempt in 0..2 {
                    if g.is_none() {
                        *g = Some(connect(address, *udp)?);
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
                let g = sock.lock();
                let s = g
                    .as_ref()
                    .ok_or_else(|| std::io::Error::other("syslog closed"))?;
                let pri = (*facility as u32) * 8 + 6; // severity: info
                let mut msg = format!("<{pri}>{tag}: ").into_bytes();
                msg.extend_from_slice(line.strip_suffix(b"\n").unwrap_or(line));
                s.send(&msg).map(|_| ())
            }
        }
    }

    fn reopen(&self) {
        if let Sink::File { file, .. } = &self.sink {
            // Dropping the handle makes the next write open the (rotated) path again.
            *file.lock() = None;
        }
    }
}

fn open_append(path: &std::path::Path, mode: u32) -> Result<std::fs::File, CoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            CoreError::InvalidRequest(format!("failed to open audit file {}: {e}", path.display()))
        })
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
            let salt = salt_for(barrier, &e.path).await?;
            match Device::new(e.clone(), &salt) {
                Ok(d) => b.devices.write().push(Arc::new(d)),
                // A device that cannot open now still counts as enabled-but-failing: requests
                // will be refused until it works or is disabled (fail closed).
                Err(err) => {
                    tracing::error!(path = %e.path, error = %err, "audit device failed to start");
                    return Err(CoreError::Internal(format!(
                        "audit device {} failed to start: {err}",
                        e.path
                    )));
                }
            }
        }
        if let Some(v) = barrier.get(REQUEST_HEADERS_PATH).await? {
            *b.headers.write() = serde_json::from_slice(&v).unwrap_or_default();
        }
        Ok(b)
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

    async fn save(&self, barrier: &Barrier) -> Result<(), CoreError> {
        let list = self.list();
        barrier
            .put(
                AUDIT_TABLE_PATH,
                &serde_json::to_vec(&list).map_err(|e| CoreError::Internal(e.to_string()))?,
            )
            .await
    }

    /// Enables a device (`PUT sys/audit/:path`).
    pub async fn enable(&self, barrier: &Barrier, entry: AuditEntry) -> Result<(), CoreError> {
        if self
            .devices
            .read()
            .iter()
            .any(|d| d.entry.path == entry.path)
        {
            return Err(CoreError::InvalidRequest(format!(
                "path already in use: {}",
                entry.path
            )));
        }
        let salt = salt_for(barrier, &entry.path).await?;
        let d = Device::new(entry, &salt)?;
        self.devices.write().push(Arc::new(d));
        self.save(barrier).await
    }

    /// Disables a device (`DELETE sys/audit/:path`); a missing one is not an error.
    pub async fn disable(&self, barrier: &Barrier, path: &str) -> Result<(), CoreError> {
        let before = self.devices.read().len();
        self.devices.write().retain(|d| d.entry.path != path);
        if self.devices.read().len() != before {
            self.save(barrier).await?;
            barrier
                .delete(&format!("{SALT_PREFIX}{}", path.trim_end_matches('/')))
                .await?;
        }
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

    /// Writes one entry to every device. Fails only if devices exist and none recorded it.
    pub fn log(&self, facts: &crate::audit_entry::Facts<'_>) -> Result<(), CoreError> {
        let devices = self.devices.read().clone();
        if devices.is_empty() {
            return Ok(());
        }
        let mut ok = 0;
        for d in &devices {
            let mut line = Vec::with_capacity(1024);
            line.extend_from_slice(d.prefix.as_bytes());
            let entry = crate::audit_entry::Line { f: facts, d };
            let written = if d.jsonx {
                serde_json::to_value(&entry)
                    .map(|v| line.extend_from_slice(to_jsonx(&v).as_bytes()))
            } else {
                serde_json::to_writer(&mut line, &entry)
            };
            if let Err(e) = written {
                tracing::error!(device = %d.entry.path, error = %e, "audit entry could not be encoded");
                continue;
            }
            line.push(b'\n');
            match d.write(&line) {
                Ok(()) => ok += 1,
                Err(e) => {
                    tracing::error!(device = %d.entry.path, error = %e, "audit device failed to log")
                }
            }
        }
        if ok == 0 {
            return Err(CoreError::Internal(
                "no audit device could record the request; refusing it".into(),
            ));
        }
        Ok(())
    }
}

async fn salt_for(barrier: &Barrier, path: &str) -> Result<Vec<u8>, CoreError> {
    let key = format!("{SALT_PREFIX}{}", path.trim_end_matches('/'));
    if let Some(s) = barrier.get(&key).await? {
        return Ok(s.to_vec());
    }
    let k = Key::generate();
    barrier.put(&key, &k.0[..]).await?;
    Ok(k.0.to_vec())
}

/// Now as RFC 3339 with nanoseconds, as audit `time` fields are.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
