//! Talking to the directory: connect (each URL in order, one `connection_timeout` each), bind,
//! find the user's DN, and find the user's groups.
//!
//! Connections are pooled per mount ([`Pool`]): a login takes an idle connection (or opens
//! one), and gives it back when the directory answered every operation. With `binddn`, the
//! searches run on *service* connections, bound as `binddn` once when opened and never bound
//! as anything else, and the user's password is tried on a *general* connection with a bind
//! and nothing more. Without `binddn` (or with `anonymous_group_search`) a login runs on one
//! general connection and starts with a bind (`binddn`, the user, or anonymous). Either way
//! no search runs as whatever a connection was bound as by an earlier login. The TLS settings (the system's roots are read once, not per
//! login) are kept with the pool; both are dropped when the connection settings change.

use std::sync::Arc;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use tresor_sdk::{LogicalError, Result};

use crate::config::Config;

pub(crate) fn parse_certs(
    pem: &str,
) -> std::result::Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

pub(crate) fn parse_key(
    pem: &str,
) -> std::result::Result<rustls::pki_types::PrivateKeyDer<'static>, String> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| format!("not a PEM private key: {e}"))?
        .ok_or_else(|| "no PEM private key found".to_owned())
}

/// Idle connections kept per mount, of each kind.
const MAX_IDLE: usize = 64;

/// What a pooled connection may be used for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Bound once, as `binddn`, when it was opened, and never bound again: user and group
    /// searches run on it without a bind of their own.
    Service,
    /// For everything else: each login's first operation on it is a bind.
    General,
}

/// The idle connections of one mount, and the TLS settings they were made with, for one set
/// of connection settings (a digest of the URLs, TLS fields, timeouts and bind credentials).
#[derive(Default)]
pub(crate) struct Pool {
    state: parking_lot::Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    settings: Vec<u8>,
    /// `None` until built; `Some(None)` when no TLS is needed or `insecure_tls`.
    tls: Option<Option<Arc<rustls::ClientConfig>>>,
    general: Vec<Conn>,
    service: Vec<Conn>,
}

impl PoolState {
    fn idle(&mut self, kind: Kind) -> &mut Vec<Conn> {
        match kind {
            Kind::Service => &mut self.service,
            Kind::General => &mut self.general,
        }
    }
}

/// A digest of what a connection is made and bound with: a pooled connection is reused only
/// under the settings it was opened with (a new `bindpass` drops the connections bound with
/// the old one).
fn settings_digest(c: &Config) -> Vec<u8> {
    let text = serde_json::json!([
        c.url,
        c.starttls,
        c.insecure_tls,
        c.certificate,
        c.client_tls_cert,
        c.client_tls_key,
        c.tls_min_version,
        c.tls_max_version,
        c.connection_timeout,
        c.request_timeout,
        c.binddn,
        c.bindpass,
    ])
    .to_string();
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    d.as_ref().to_vec()
}

impl Pool {
    /// An idle connection of `kind` and the TLS settings, for `settings`; a change of settings
    /// empties the pool.
    fn take(&self, settings: &[u8], kind: Kind) -> Option<Conn> {
        let mut s = self.state.lock();
        if s.settings != settings {
            *s = PoolState {
                settings: settings.to_vec(),
                ..PoolState::default()
            };
        }
        s.idle(kind).pop()
    }

    fn keep_tls(&self, settings: &[u8], tls: Option<Arc<rustls::ClientConfig>>) {
        let mut s = self.state.lock();
        if s.settings == settings {
            s.tls = Some(tls);
        }
    }

    fn give_back(&self, settings: &[u8], kind: Kind, conn: Conn) {
        let mut s = self.state.lock();
        if s.settings == settings && s.idle(kind).len() < MAX_IDLE {
            s.idle(kind).push(conn);
        }
    }

    /// A new connection with the pool's TLS settings (built once per settings).
    async fn open(&self, settings: &[u8], c: &Config) -> Result<Conn> {
        let kept = {
            let s = self.state.lock();
            (s.settings == settings).then(|| s.tls.clone()).flatten()
        };
        let tls = match kept {
            Some(tls) => tls,
            None => {
                let tls = tls_config(c)?;
                self.keep_tls(settings, tls.clone());
                tls
            }
        };
        connect(c, tls).await
    }
}

/// The TLS settings of a connection: the configured CA (or the system's), the client
/// certificate, and `insecure_tls`. `None` as well when no URL uses TLS.
fn tls_config(c: &Config) -> Result<Option<Arc<rustls::ClientConfig>>> {
    let uses_tls = c.starttls || c.urls().iter().any(|u| u.starts_with("ldaps://"));
    if c.insecure_tls || !uses_tls {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    if c.certificate.is_empty() {
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
    } else {
        for cert in parse_certs(&c.certificate).map_err(LogicalError::invalid)? {
            roots
                .add(cert)
                .map_err(|e| LogicalError::invalid(format!("certificate: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if c.tls_min_version == "tls13" {
        &[&rustls::version::TLS13]
    } else if c.tls_max_version == "tls12" && c.tls_min_version != "tls13" {
        &[&rustls::version::TLS12, &rustls::version::TLS13]
    } else {
        rustls::ALL_VERSIONS
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| LogicalError::invalid(format!("tls versions: {e}")))?
        .with_root_certificates(roots);
    let cfg = if c.client_tls_cert.is_empty() {
        builder.with_no_client_auth()
    } else {
        let chain = parse_certs(&c.client_tls_cert).map_err(LogicalError::invalid)?;
        let key = parse_key(&c.client_tls_key).map_err(LogicalError::invalid)?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| LogicalError::invalid(format!("client_tls_cert: {e}")))?
    };
    Ok(Some(Arc::new(cfg)))
}

/// A bound connection to one directory server.
pub(crate) struct Conn {
    ldap: ldap3::Ldap,
    timeout: std::time::Duration,
    /// When its last bind was made (or when it was opened).
    bound_at: std::time::Instant,
}

/// A pooled service connection whose bind as `binddn` is older than this binds again before
/// it is used, so a `binddn` account disabled or given a new password in the directory stops
/// working within this time, as it would with a bind per login.
const REBIND_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

fn op_failed(what: &str, e: impl std::fmt::Display) -> LogicalError {
    LogicalError::invalid(format!("ldap operation failed: {what}: {e}"))
}

/// Connects to the first URL that answers, in order.
async fn connect(c: &Config, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Conn> {
    let mut last = String::from("no LDAP URL configured");
    for url in c.urls() {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(c.connection_timeout())
            .set_starttls(c.starttls && url.starts_with("ldap://"));
        settings = match &tls {
            Some(cfg) => settings.set_config(cfg.clone()),
            None => settings.set_no_tls_verify(true),
        };
        let attempt = tokio::time::timeout(
            c.connection_timeout(),
            LdapConnAsync::with_settings(settings, &url),
        )
        .await;
        match attempt {
            Ok(Ok((conn, ldap))) => {
                tokio::spawn(async move {
                    if let Err(e) = conn.drive().await {
                        tracing::debug!(error = %e, "LDAP connection ended");
                    }
                });
                return Ok(Conn {
                    ldap,
                    timeout: c.request_timeout(),
                    bound_at: std::time::Instant::now(),
                });
            }
            Ok(Err(e)) => last = format!("{url}: {e}"),
            Err(_) => last = format!("{url}: no answer within connection_timeout"),
        }
        tracing::warn!(url = %url, error = %last, "LDAP server unreachable; trying the next URL");
    }
    Err(op_failed("failed to connect to any LDAP server", last))
}

impl Conn {
    /// A simple bind; `Ok(false)` when the directory refuses the credentials.
    pub(crate) async fn bind(&mut self, dn: &str, password: &str) -> Result<bool> {
        let r = self
            .ldap
            .with_timeout(self.timeout)
            .simple_bind(dn, password)
            .await
            .map_err(|e| op_failed("bind", e))?;
        self.bound_at = std::time::Instant::now();
        Ok(r.rc == 0)
    }

    async fn search(
        &mut self,
        base: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>> {
        let (entries, _res) = self
            .ldap
            .with_timeout(self.timeout)
            .search(base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .map_err(|e| op_failed("search", e))?
            .success()
            .map_err(|e| op_failed("search", e))?;
        Ok(entries.into_iter().map(SearchEntry::construct).collect())
    }

    pub(crate) async fn unbind(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// Fills Vault's Go-template placeholders of a filter with escaped values.
pub(crate) fn render_filter(filter: &str, c: &Config, username: &str, user_dn: &str) -> String {
    let mut out = filter.to_owned();
    for (k, v) in [
        ("UserAttr", c.userattr.clone()),
        ("Username", ldap3::ldap_escape(username).into_owned()),
        ("UserDN", ldap3::ldap_escape(user_dn).into_owned()),
    ] {
        for spelling in [format!("{{{{.{k}}}}}"), format!("{{{{ .{k} }}}}")] {
            out = out.replace(&spelling, &v);
        }
    }
    out
}

/// The CN of a DN-valued attribute (`cn=ops,ou=groups,...` → `ops`), or the value itself.
pub(crate) fn cn_of(value: &str) -> String {
    let first = value.split(',').next().unwrap_or(value);
    match first.split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("cn") && value.contains(',') => {
            v.trim().to_owned()
        }
        _ => value.to_owned(),
    }
}

/// What a successful authentication learned.
pub(crate) struct Authenticated {
    pub user_dn: String,
    /// The value of `userattr` on the user's entry (the alias name unless
    /// `username_as_alias`), or the login username when it could not be read.
    pub user_attr_value: String,
    pub groups: Vec<String>,
}

/// Binds as the user and finds their groups, on pooled connections when there are some.
/// `Ok(None)`: the credentials are wrong or the user does not exist (one answer for both).
pub(crate) async fn authenticate(
    pool: &Pool,
    c: &Config,
    username: &str,
    password: &str,
) -> Result<Option<Authenticated>> {
    let settings = settings_digest(c);
    if !c.binddn.is_empty() && !c.anonymous_group_search {
        return authenticate_as_service(pool, &settings, c, username, password).await;
    }
    if let Some(mut conn) = pool.take(&settings, Kind::General) {
        match authenticate_on(&mut conn, c, username, password).await {
            Ok(found) => {
                pool.give_back(&settings, Kind::General, conn);
                return Ok(found);
            }
            // The directory may have closed an idle connection: once more on a new one.
            Err(e) => tracing::debug!(error = %e, "a pooled LDAP connection failed; reconnecting"),
        }
    }
    let mut conn = pool.open(&settings, c).await?;
    let result = authenticate_on(&mut conn, c, username, password).await;
    if result.is_ok() {
        pool.give_back(&settings, Kind::General, conn);
    } else {
        conn.unbind().await;
    }
    result
}

/// A login with `binddn` (groups not searched anonymously): the user and group searches run
/// on a service connection, bound as `binddn` once when it was opened, and the password is
/// tried with a bind on a general connection that does nothing else. Three directory
/// operations per login instead of six (three binds, three searches).
async fn authenticate_as_service(
    pool: &Pool,
    settings: &[u8],
    c: &Config,
    username: &str,
    password: &str,
) -> Result<Option<Authenticated>> {
    // 1. the user's entry (its DN and `userattr`), as binddn
    let filter = render_filter(&c.userfilter, c, username, "");
    let attrs = [c.userattr.as_str()];
    let mut service = ServiceConn::take(pool, settings, c).await?;
    let found = service
        .search(pool, settings, c, &c.userdn, &filter, &attrs)
        .await?;
    let (user_dn, user_attr_value) = match found.as_slice() {
        // The alias name: the entry's `userattr` (whatever the case the directory spells its
        // name in, as Vault reads it) when `userdn` is set, else the login name.
        [one] => (
            one.dn.clone(),
            attr(one, &c.userattr)
                .and_then(|v| v.first().cloned())
                .filter(|_| !c.userdn.is_empty())
                .unwrap_or_else(|| username.to_owned()),
        ),
        [] => {
            service.give_back(pool, settings);
            return Ok(None);
        }
        _ => {
            service.give_back(pool, settings);
            return Err(op_failed(
                "user search",
                format!("{} entries match the userfilter; expected one", found.len()),
            ));
        }
    };
    // 2. the password, with a bind on a general connection
    let bound = bind_user(pool, settings, c, &user_dn, password).await;
    if !matches!(bound, Ok(true)) {
        service.give_back(pool, settings);
        return bound.map(|_| None);
    }
    // 3. groups, as binddn
    let mut groups = Vec::new();
    if !c.groupdn.is_empty() {
        let filter = render_filter(&c.groupfilter, c, username, &user_dn);
        let entries = service
            .search(
                pool,
                settings,
                c,
                &c.groupdn,
                &filter,
                &[c.groupattr.as_str()],
            )
            .await?;
        for e in &entries {
            add_groups(&mut groups, attr(e, &c.groupattr));
        }
    }
    service.give_back(pool, settings);
    Ok(Some(Authenticated {
        user_dn,
        user_attr_value,
        groups,
    }))
}

/// A service connection for one login: bound as `binddn` and used for searches only.
struct ServiceConn {
    conn: Conn,
    /// Taken from the pool (it may have been closed by the directory meanwhile).
    pooled: bool,
}

impl ServiceConn {
    /// A pooled service connection (bound again first when its bind is older than
    /// [`REBIND_AFTER`]), else a new one bound as `binddn`.
    async fn take(pool: &Pool, settings: &[u8], c: &Config) -> Result<ServiceConn> {
        if let Some(mut conn) = pool.take(settings, Kind::Service) {
            if conn.bound_at.elapsed() < REBIND_AFTER {
                return Ok(ServiceConn { conn, pooled: true });
            }
            match conn.bind(&c.binddn, &c.bindpass).await {
                Ok(true) => return Ok(ServiceConn { conn, pooled: true }),
                Ok(false) => return Err(binddn_refused()),
                Err(e) => {
                    tracing::debug!(error = %e, "a pooled LDAP connection failed; reconnecting")
                }
            }
        }
        Self::open(pool, settings, c).await
    }

    async fn open(pool: &Pool, settings: &[u8], c: &Config) -> Result<ServiceConn> {
        let mut conn = pool.open(settings, c).await?;
        if !conn.bind(&c.binddn, &c.bindpass).await? {
            conn.unbind().await;
            return Err(binddn_refused());
        }
        Ok(ServiceConn {
            conn,
            pooled: false,
        })
    }

    /// A search; on a pooled connection that fails, once more on a new one.
    async fn search(
        &mut self,
        pool: &Pool,
        settings: &[u8],
        c: &Config,
        base: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>> {
        match self.conn.search(base, filter, attrs).await {
            Err(e) if self.pooled => {
                tracing::debug!(error = %e, "a pooled LDAP connection failed; reconnecting");
                *self = Self::open(pool, settings, c).await?;
                self.conn.search(base, filter, attrs).await
            }
            other => other,
        }
    }

    fn give_back(self, pool: &Pool, settings: &[u8]) {
        pool.give_back(settings, Kind::Service, self.conn);
    }
}

fn binddn_refused() -> LogicalError {
    op_failed("bind as binddn", "the directory refused binddn/bindpass")
}

/// A bind as the user on a general connection (pooled, or new when the pooled one failed).
async fn bind_user(
    pool: &Pool,
    settings: &[u8],
    c: &Config,
    user_dn: &str,
    password: &str,
) -> Result<bool> {
    if let Some(mut conn) = pool.take(settings, Kind::General) {
        match conn.bind(user_dn, password).await {
            Ok(ok) => {
                pool.give_back(settings, Kind::General, conn);
                return Ok(ok);
            }
            Err(e) => tracing::debug!(error = %e, "a pooled LDAP connection failed; reconnecting"),
        }
    }
    let mut conn = pool.open(settings, c).await?;
    let ok = conn.bind(user_dn, password).await?;
    pool.give_back(settings, Kind::General, conn);
    Ok(ok)
}

/// The values of an attribute, whatever the case the directory spells its name in.
fn attr<'a>(e: &'a SearchEntry, name: &str) -> Option<&'a Vec<String>> {
    e.attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Adds the group names in `values` (a DN's first `cn`, or the value) once each.
fn add_groups(groups: &mut Vec<String>, values: Option<&Vec<String>>) {
    for v in values.into_iter().flatten() {
        let name = cn_of(v);
        if !groups.contains(&name) {
            groups.push(name);
        }
    }
}

async fn authenticate_on(
    conn: &mut Conn,
    c: &Config,
    username: &str,
    password: &str,
) -> Result<Option<Authenticated>> {
    // 1. the user's DN. Whatever the connection was bound as before (it may come from the
    // pool), the first operation is a bind.
    let search_for_dn = !c.binddn.is_empty() || c.discoverdn;
    let user_dn = if search_for_dn {
        if c.binddn.is_empty() {
            conn.bind("", "").await?;
        } else if !conn.bind(&c.binddn, &c.bindpass).await? {
            return Err(binddn_refused());
        }
        let filter = render_filter(&c.userfilter, c, username, "");
        let found = conn.search(&c.userdn, &filter, &["dn"]).await?;
        match found.as_slice() {
            [one] => one.dn.clone(),
            [] => return Ok(None),
            _ => {
                return Err(op_failed(
                    "user search",
                    format!("{} entries match the userfilter; expected one", found.len()),
                ));
            }
        }
    } else if !c.upndomain.is_empty() {
        format!("{username}@{}", c.upndomain)
    } else {
        format!("{}={},{}", c.userattr, ldap3::dn_escape(username), c.userdn)
    };
    // 2. bind as the user
    if !conn.bind(&user_dn, password).await? {
        return Ok(None);
    }
    // With upndomain, the real DN is found by the UPN once bound.
    let mut real_dn = user_dn.clone();
    let mut user_attr_value = username.to_owned();
    // The entry is read for its `userattr` (the alias name) and, with `upndomain`, its real DN.
    // With `username_as_alias` the alias is the login name, so, as in Vault, the entry is read
    // only when the DN must come from it: one directory operation fewer a login.
    let dn_from_entry = !c.upndomain.is_empty() && !search_for_dn;
    let base_for_user = if c.userdn.is_empty() || (c.username_as_alias && !dn_from_entry) {
        None
    } else {
        Some(c.userdn.clone())
    };
    if let Some(base) = &base_for_user {
        let filter = if dn_from_entry {
            format!("(userPrincipalName={})", ldap3::ldap_escape(&user_dn))
        } else {
            render_filter(&c.userfilter, c, username, "")
        };
        if let Ok(found) = conn.search(base, &filter, &[c.userattr.as_str()]).await
            && let [one] = found.as_slice()
        {
            real_dn = one.dn.clone();
            if let Some(v) = attr(one, &c.userattr).and_then(|v| v.first()) {
                user_attr_value = v.clone();
            }
        }
    }
    // 3. groups, searched as binddn (or anonymously, or as the user)
    let mut groups = Vec::new();
    if !c.groupdn.is_empty() {
        if c.anonymous_group_search {
            conn.bind("", "").await?;
        } else if !c.binddn.is_empty() {
            conn.bind(&c.binddn, &c.bindpass).await?;
        }
        let filter = render_filter(&c.groupfilter, c, username, &real_dn);
        for e in conn
            .search(&c.groupdn, &filter, &[c.groupattr.as_str()])
            .await?
        {
            add_groups(&mut groups, attr(&e, &c.groupattr));
        }
    }
    Ok(Some(Authenticated {
        user_dn: real_dn,
        user_attr_value,
        groups,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_filled_with_escaped_values() {
        let c = Config {
            userattr: "uid".into(),
            ..Config::default()
        };
        assert_eq!(
            render_filter("({{.UserAttr}}={{.Username}})", &c, "a*b)(x", ""),
            "(uid=a\\2ab\\29\\28x)"
        );
        assert_eq!(
            render_filter("(member={{ .UserDN }})", &c, "", "uid=a,ou=u"),
            "(member=uid=a,ou=u)"
        );
    }

    #[test]
    fn group_values_that_are_dns_give_their_cn() {
        assert_eq!(cn_of("cn=ops,ou=groups,dc=example,dc=org"), "ops");
        assert_eq!(cn_of("CN=Dev Team,OU=x"), "Dev Team");
        assert_eq!(cn_of("ops"), "ops");
        assert_eq!(cn_of("uid=x,ou=y"), "uid=x,ou=y");
    }
}
