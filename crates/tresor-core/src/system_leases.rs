//! `sys/leases/*` and the legacy `sys/renew`, `sys/revoke`, `sys/revoke-prefix`,
//! `sys/revoke-force` paths of the system backend.

use std::sync::Arc;

use serde_json::json;
use tresor_sdk::framework::{Field, Fields, Kind, Path};
use tresor_sdk::{LogicalError, Operation, Request, Response, Result};

use crate::system::{Sys, core, le};
use crate::tokens::now;

fn lease_id(f: &Fields) -> Result<String> {
    let mut id = f.string("lease_id");
    if id.is_empty() {
        id = f.string("url_lease_id");
    }
    if id.is_empty() {
        return Err(LogicalError::invalid("lease_id must be specified"));
    }
    Ok(id)
}

async fn lookup(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let c = core(&s)?;
    let u = c.unsealed().map_err(le)?;
    let id = lease_id(&f)?;
    match u.expiration.get(&id).await.map_err(le)? {
        None => Err(LogicalError::invalid("invalid lease")),
        Some(e) => Ok(Some(Response::json(e.lookup_json(now())))),
    }
}

/// `LIST sys/leases/lookup/<prefix>`; an empty prefix lists the top level (the mounts that
/// hold leases). Nothing there is a 404, as for every empty listing.
async fn list(s: Arc<Sys>, mut prefix: String) -> Result<Option<Response>> {
    let c = core(&s)?;
    let u = c.unsealed().map_err(le)?;
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let keys = u.expiration.list(&prefix).await.map_err(le)?;
    if keys.is_empty() {
        return Ok(None);
    }
    Ok(Some(Response::list(keys)))
}

async fn renew(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let c = core(&s)?;
    let u = c.unsealed().map_err(le)?;
    let id = lease_id(&f)?;
    let inc = f.duration("increment").filter(|d| !d.is_zero());
    let e = c.renew_lease(&u, &id, inc).await.map_err(le)?;
    let ttl = std::time::Duration::from_secs((e.expire_time - now()).max(0) as u64);
    Ok(Some(Response {
        renewed: Some((e.lease_id, ttl, e.renewable)),
        ..Default::default()
    }))
}

async fn revoke(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let c = core(&s)?;
    let u = c.unsealed().map_err(le)?;
    let id = lease_id(&f)?;
    c.revoke_lease(&u, &id, false).await.map_err(le)?;
    Ok(None)
}

async fn revoke_prefix(
    s: Arc<Sys>,
    _req: Request,
    f: Fields,
    force: bool,
) -> Result<Option<Response>> {
    let c = core(&s)?;
    let prefix = f.string("prefix");
    let n = c.revoke_prefix(&prefix, force).await.map_err(le)?;
    tracing::info!(prefix = %prefix, revoked = n, force, "revoked leases by prefix");
    Ok(None)
}

fn lease_fields(p: Path<Sys>) -> Path<Sys> {
    p.field(Field::new("lease_id", Kind::Str, "The ID of the lease."))
        .field(Field::new(
            "url_lease_id",
            Kind::Str,
            "The ID of the lease, given in the URL.",
        ))
        .field(Field::new(
            "increment",
            Kind::Duration,
            "The requested extension of the lease, in seconds or as a duration.",
        ))
        .field(
            Field::new(
                "sync",
                Kind::Bool,
                "Whether to wait for the revocation to finish (always true here).",
            )
            .default(json!(true)),
        )
}

pub(crate) fn paths() -> Vec<Path<Sys>> {
    let mut v = vec![
        lease_fields(Path::new("leases/lookup"))
            .op(Operation::Update, |s, _, f| Box::pin(lookup(s, f)))
            // `LIST sys/leases/lookup/` arrives here (a LIST may end in `/`).
            .op(Operation::List, |s, _, _| Box::pin(list(s, String::new())))
            .help("Look up a lease's metadata; LIST lists the top-level lease-id prefixes.", "Returns the lease's issue time, expire time, last renewal, renewability and remaining TTL. LIST (sudo) lists the prefixes that hold leases."),
        Path::new("leases/lookup/{prefix:*}")
            .field(Field::new("prefix", Kind::Str, "The lease-id prefix to list."))
            .op(Operation::List, |s, _, f| Box::pin(list(s, f.string("prefix"))))
            .help("List lease ids under a prefix.", "Requires sudo."),
        Path::new("leases/tidy")
            .op(Operation::Update, |s, _, _| {
                Box::pin(async move {
                    let c = core(&s)?;
                    let u = c.unsealed().map_err(le)?;
                    let n = u.expiration.tidy().await.map_err(le)?;
                    tracing::info!(removed = n, "lease tidy finished");
                    Ok(Some(Response::default().with_warning("Tidy operation successfully started. Any information from the operation will be printed to Tresor's server logs.")))
                })
            })
            .help("Clean up dangling lease index entries.", "Removes index entries that point at leases that no longer exist."),
    ];
    for pat in [
        "leases/renew",
        "leases/renew/{url_lease_id:+}",
        "renew",
        "renew/{url_lease_id:+}",
    ] {
        v.push(lease_fields(Path::new(pat)).op(Operation::Update, |s, _, f| Box::pin(renew(s, f))).help("Renew a lease.", "Extends the lease by the increment, within the mount's and the system's max TTL."));
    }
    for pat in [
        "leases/revoke",
        "leases/revoke/{url_lease_id:+}",
        "revoke",
        "revoke/{url_lease_id:+}",
    ] {
        v.push(
            lease_fields(Path::new(pat))
                .op(Operation::Update, |s, _, f| Box::pin(revoke(s, f)))
                .help(
                    "Revoke a lease.",
                    "Revokes the secret through the engine that issued it.",
                ),
        );
    }
    for pat in [
        "leases/revoke-prefix/{prefix:+}",
        "revoke-prefix/{prefix:+}",
    ] {
        v.push(
            Path::new(pat)
                .field(Field::new(
                    "prefix",
                    Kind::Str,
                    "The lease-id prefix to revoke.",
                ))
                .field(Field::new(
                    "sync",
                    Kind::Bool,
                    "Ignored: revocation is synchronous.",
                ))
                .op(Operation::Update, |s, r, f| {
                    Box::pin(revoke_prefix(s, r, f, false))
                })
                .help("Revoke all leases under a prefix.", "Requires sudo."),
        );
    }
    for pat in ["leases/revoke-force/{prefix:+}", "revoke-force/{prefix:+}"] {
        v.push(
            Path::new(pat)
                .field(Field::new("prefix", Kind::Str, "The lease-id prefix to revoke."))
                .op(Operation::Update, |s, r, f| Box::pin(revoke_prefix(s, r, f, true)))
                .help("Revoke all leases under a prefix, ignoring engine errors.", "Requires sudo. Leases are forgotten even when the engine fails to revoke the secret."),
        );
    }
    v
}
