//! Connection URLs as Vault users write them, with `{{username}}` and `{{password}}`
//! templating: Go's MySQL DSN (`{{username}}:{{password}}@tcp(host:3306)/db?tls=true`) and
//! PostgreSQL's URL (`postgresql://{{username}}:{{password}}@host:5432/db?sslmode=disable`)
//! or keyword/value form (`host=h port=5432 user={{username}} password={{password}}`).
//!
//! The placeholders are replaced by sentinels, the text is parsed, and the parsed fields that
//! hold a sentinel get the real username or password: a password with `@`, `/`, `:` or
//! spaces needs no escaping, and never passes through a URL parser.

use std::time::Duration;

use zeroize::Zeroizing;

const SENTINEL_USER: &str = "tresorusernameplaceholder";
const SENTINEL_PASS: &str = "tresorpasswordplaceholder";
/// How long opening one connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS settings for a MySQL connection (`tls_ca`, `tls_certificate_key`, and the DSN's `tls`).
#[derive(Default, Clone)]
pub struct MysqlTls {
    pub ca_pem: String,
    pub cert_key_pem: String,
}

/// Parsed connection settings, ready to open connections.
pub enum ConnSpec {
    /// The driver's settings, and the TLS ones it does not take itself.
    Postgres(Box<tokio_postgres::Config>, Box<crate::pgtls::PgTlsParams>),
    Mysql(Box<mysql_async::OptsBuilder>),
}

fn templated(url: &str) -> String {
    crate::template::render_placeholders(
        url,
        &[("username", SENTINEL_USER), ("password", SENTINEL_PASS)],
    )
}

/// The host (and port) a connection URL names, for error messages: never the credentials.
pub fn host_of(spec: &ConnSpec) -> String {
    match spec {
        ConnSpec::Postgres(c, _) => {
            let ports = c.get_ports();
            let hosts: Vec<String> = c
                .get_hosts()
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                    match h {
                        tokio_postgres::config::Host::Tcp(h) => format!("{h}:{port}"),
                        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                    }
                })
                .collect();
            if hosts.is_empty() {
                "localhost:5432".into()
            } else {
                hosts.join(",")
            }
        }
        ConnSpec::Mysql(b) => {
            let o = mysql_async::Opts::from((**b).clone());
            match o.socket() {
                Some(s) => s.to_owned(),
                None => format!("{}:{}", o.ip_or_hostname(), o.tcp_port()),
            }
        }
    }
}

/// Parses a PostgreSQL connection URL (URL or keyword/value form).
pub fn postgres(url: &str, username: &str, password: &str) -> Result<ConnSpec, String> {
    let (text, tls) = take_ssl_params(&templated(url));
    let (negotiate, _) = tls.build()?;
    let mut cfg: tokio_postgres::Config = text.parse().map_err(|e: tokio_postgres::Error| {
        format!(
            "invalid connection_url: {}",
            scrub(&e.to_string(), password)
        )
    })?;
    match cfg.get_user() {
        Some(SENTINEL_USER) | None if !username.is_empty() => {
            cfg.user(username);
        }
        Some(SENTINEL_USER) => {
            return Err("connection_url uses {{username}} but username is empty".into());
        }
        _ => {}
    }
    match cfg.get_password() {
        Some(p) if p == SENTINEL_PASS.as_bytes() => {
            cfg.password(password);
        }
        None if !password.is_empty() => {
            cfg.password(password);
        }
        _ => {}
    }
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(CONNECT_TIMEOUT);
    }
    if cfg.get_dbname().is_none() {
        // libpq's default is the user's name; the admin user rarely has a database of its own.
        cfg.dbname("postgres");
    }
    cfg.ssl_mode(match negotiate {
        crate::pgtls::Negotiate::Disable => tokio_postgres::config::SslMode::Disable,
        crate::pgtls::Negotiate::Prefer => tokio_postgres::config::SslMode::Prefer,
        crate::pgtls::Negotiate::Require => tokio_postgres::config::SslMode::Require,
    });
    Ok(ConnSpec::Postgres(Box::new(cfg), Box::new(tls)))
}

/// The TLS parameters libpq takes (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) taken out
/// of a connection string in URL or keyword/value form; the rest is left for the driver.
fn take_ssl_params(text: &str) -> (String, crate::pgtls::PgTlsParams) {
    let mut tls = crate::pgtls::PgTlsParams::default();
    let mut take = |k: &str, v: String| -> bool {
        match k.to_ascii_lowercase().as_str() {
            "sslmode" => tls.sslmode = v.to_ascii_lowercase(),
            "sslrootcert" => tls.sslrootcert = Some(v),
            "sslcert" => tls.sslcert = Some(v),
            "sslkey" => tls.sslkey = Some(v),
            _ => return false,
        }
        true
    };
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        let Some((base, query)) = text.split_once('?') else {
            return (text.to_owned(), tls);
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                !take(
                    k,
                    String::from_utf8_lossy(&tresor_sdk::percent::decode(v, true)).into_owned(),
                )
            })
            .collect();
        let out = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (out, tls)
    } else {
        let kept: Vec<&str> = text
            .split_whitespace()
            .filter(|kv| match kv.split_once('=') {
                Some((k, v)) => !take(k, v.trim_matches('\'').to_owned()),
                None => true,
            })
            .collect();
        (kept.join(" "), tls)
    }
}

/// Removes a password from a driver's message, in case the driver quoted the input.
pub fn scrub(msg: &str, password: &str) -> String {
    if password.len() >= 3 {
        msg.replace(password, "*****")
    } else {
        msg.to_owned()
    }
}

/// Parses Go's MySQL DSN: `[user[:password]@][net[(addr)]]/dbname[?params]`.
pub fn mysql(
    url: &str,
    username: &str,
    password: &str,
    tls: &MysqlTls,
) -> Result<ConnSpec, String> {
    let text = Zeroizing::new(templated(url));
    let bad = |why: &str| format!("invalid connection_url: {why}");
    let slash = text
        .rfind('/')
        .ok_or_else(|| bad("a MySQL DSN looks like user:password@tcp(host:3306)/database"))?;
    let (head, tail) = (&text[..slash], &text[slash + 1..]);
    let (dbname, params) = match tail.split_once('?') {
        Some((d, p)) => (d, p),
        None => (tail, ""),
    };
    let (cred, netaddr) = match head.rfind('@') {
        Some(at) => (Some(&head[..at]), &head[at + 1..]),
        None => (None, head),
    };
    let (mut user, mut pass) = match cred {
        Some(c) => match c.split_once(':') {
            Some((u, p)) => (u.to_owned(), Some(p.to_owned())),
            None => (c.to_owned(), None),
        },
        None => (String::new(), None),
    };
    if user == SENTINEL_USER || (user.is_empty() && !username.is_empty()) {
        user = username.to_owned();
    }
    if pass.as_deref() == Some(SENTINEL_PASS) || (pass.is_none() && !password.is_empty()) {
        pass = Some(password.to_owned());
    }
    let (net, addr) = match netaddr.split_once('(') {
        Some((n, a)) => (
            n,
            a.strip_suffix(')')
                .ok_or_else(|| bad("missing ) after the address"))?,
        ),
        None if netaddr.is_empty() => ("tcp", "127.0.0.1:3306"),
        None => (netaddr, ""),
    };
    let mut b = mysql_async::OptsBuilder::default()
        .user(Some(user))
        .pass(pass)
        .db_name((!dbname.is_empty()).then(|| dbname.to_owned()))
        .prefer_socket(false);
    match net {
        "tcp" | "tcp4" | "tcp6" => {
            let addr = if addr.is_empty() {
                "127.0.0.1:3306"
            } else {
                addr
            };
            let (host, port) = match addr.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                    h.trim_start_matches('[').trim_end_matches(']'),
                    p.parse::<u16>().map_err(|_| bad("invalid port"))?,
                ),
                _ => (addr, 3306),
            };
            b = b.ip_or_hostname(host).tcp_port(port);
        }
        "unix" => b = b.socket(Some(addr)),
        other => return Err(bad(&format!("unknown network {other:?}"))),
    }
    let mut tls_mode = String::new();
    for kv in params.split('&').filter(|s| !s.is_empty()) {
        // Go driver settings with no meaning here (charset, parseTime, timeout, ...) are
        // ignored; connecting is bounded by the engine's own timeout.
        if let Some(("tls", v)) = kv.split_once('=') {
            tls_mode = v.to_ascii_lowercase();
        }
    }
    let want_tls = matches!(
        tls_mode.as_str(),
        "true" | "skip-verify" | "custom" | "preferred"
    ) || !tls.ca_pem.is_empty()
        || !tls.cert_key_pem.is_empty();
    if want_tls && tls_mode != "false" {
        let mut ssl = mysql_async::SslOpts::default();
        if !tls.ca_pem.is_empty() {
            ssl = ssl.with_root_certs(vec![tls.ca_pem.as_bytes().to_vec().into()]);
        }
        if !tls.cert_key_pem.is_empty() {
            let pem = tls.cert_key_pem.as_bytes().to_vec();
            ssl = ssl.with_client_identity(Some(mysql_async::ClientIdentity::new(
                pem.clone().into(),
                pem.into(),
            )));
        }
        if matches!(tls_mode.as_str(), "skip-verify" | "preferred") {
            ssl = ssl.with_danger_accept_invalid_certs(true);
        }
        b = b.ssl_opts(Some(ssl));
    }
    Ok(ConnSpec::Mysql(Box::new(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_forms() {
        for url in [
            "postgresql://{{username}}:{{password}}@127.0.0.1:5433/app?sslmode=disable",
            "postgres://{{username}}:{{password}}@127.0.0.1:5433/app",
            "host=127.0.0.1 port=5433 user={{username}} password={{password}} dbname=app sslmode=disable",
            "host=127.0.0.1 port=5433 user='{{username}}' password='{{password}}' dbname=app",
        ] {
            let spec = postgres(url, "ad min", "p@ss:w/rd 'x").unwrap();
            let ConnSpec::Postgres(c, _) = &spec else {
                panic!()
            };
            assert_eq!(c.get_user(), Some("ad min"), "{url}");
            assert_eq!(c.get_password(), Some("p@ss:w/rd 'x".as_bytes()), "{url}");
            assert_eq!(c.get_dbname(), Some("app"));
            assert_eq!(host_of(&spec), "127.0.0.1:5433");
        }
        let e = postgres("postgres://u@h/db?sslmode=sometimes", "", "")
            .err()
            .unwrap();
        assert!(e.contains("sslmode=sometimes"), "{e}");
        // The TLS parameters are taken out for rustls, in both forms; the rest stays.
        let (rest, tls) = take_ssl_params(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        );
        assert_eq!(rest, "postgres://u@h/db?application_name=x");
        assert_eq!(
            (tls.sslmode.as_str(), tls.sslrootcert.as_deref()),
            ("verify-full", Some("/etc/ca.pem"))
        );
        let (rest, tls) =
            take_ssl_params("host=h sslmode=require sslcert=/c.pem sslkey='/k.pem' dbname=d");
        assert_eq!(rest, "host=h dbname=d");
        assert_eq!(tls.sslkey.as_deref(), Some("/k.pem"));
        assert_eq!(tls.sslcert.as_deref(), Some("/c.pem"));
        assert_eq!(tls.sslmode, "require");
        // A malformed escape before a multibyte character is kept as it is (an earlier
        // decoder sliced the text there and panicked).
        let (_, tls) = take_ssl_params("postgres://u@h/db?sslrootcert=%a\u{e9}&sslmode=%zz");
        assert_eq!(tls.sslrootcert.as_deref(), Some("%a\u{e9}"));
        let e = postgres("postgres://u@h/db?sslmode=%a\u{e9}", "", "")
            .err()
            .unwrap();
        assert!(e.contains("sslmode="), "{e}");
        let e = postgres("postgres://u:{{password}}@h:99999/db", "", "secretpw")
            .err()
            .unwrap();
        assert!(
            e.contains("invalid connection_url") && !e.contains("secretpw"),
            "{e}"
        );
    }

    #[test]
    fn mysql_dsn() {
        let spec = mysql(
            "{{username}}:{{password}}@tcp(127.0.0.1:3307)/app?charset=utf8",
            "admin",
            "p@ss:w/rd",
            &MysqlTls::default(),
        )
        .unwrap();
        assert_eq!(host_of(&spec), "127.0.0.1:3307");
        let ConnSpec::Mysql(b) = spec else { panic!() };
        let o = mysql_async::Opts::from(*b);
        assert_eq!(o.user(), Some("admin"));
        assert_eq!(o.pass(), Some("p@ss:w/rd"));
        assert_eq!(o.db_name(), Some("app"));
        let spec = mysql("root:pw@tcp(db.example)/", "", "", &MysqlTls::default()).unwrap();
        assert_eq!(host_of(&spec), "db.example:3306");
        let spec = mysql("root:pw@tcp([::1]:3310)/", "", "", &MysqlTls::default()).unwrap();
        assert_eq!(host_of(&spec), "::1:3310");
        assert!(mysql("nonsense", "", "", &MysqlTls::default()).is_err());
        assert!(mysql("u@tcp(h:x)/", "", "", &MysqlTls::default()).is_err());
    }
}
