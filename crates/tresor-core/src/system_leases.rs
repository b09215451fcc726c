//! `sys/leases/*` and the legacy `sys/renew`, `sys/revoke`, `sys/revoke-prefix`,
//! `sys/revoke-force` paths of the system backend.

use std::sync::Arc;

use tresor_sdk::framework::{Fields, Path};
use tresor_sdk::{LogicalError, Operation, Response, Result};

use crate::system::{Sys, handles, le};
use crate::tokens::now;

tresor_sdk::input! {
    /// `sys/leases/{lookup,renew,revoke}` and the legacy `sys/renew`, `sys/revoke`.
    struct LeaseInput {
        lease_id: Str, "The ID of the lease.";
        url_lease_id: Str, "The ID of the lease, given in the URL.";
        increment: Duration, "The requested extension of the lease, in seconds or as a duration.";
        sync: Bool, "Whether to wait for the revocation to finish (always true here).", default = true;
    }
}

impl LeaseInput {
    /// The lease named in the body, else in the URL.
    fn lease_id(self) -> Result<String> {
        match (self.lease_id, self.url_lease_id) {
            (id, _) if !id.is_empty() => Ok(id),
            (_, id) if !id.is_empty() => Ok(id),
            _ => Err(LogicalError::invalid("lease_id must be specified")),
        }
    }
}

tresor_sdk::input! {
    /// `LIST sys/leases/lookup/:prefix`.
    struct ListInput {
        prefix: Str, "The lease-id prefix to list.";
    }
}

tresor_sdk::input! {
    /// `sys/leases/revoke-prefix/:prefix` and `sys/revoke-prefix/:prefix`.
    struct RevokePrefixInput {
        prefix: Str, "The lease-id prefix to revoke.";
        sync: Bool, "Ignored: revocation is synchronous.";
    }
}

tresor_sdk::input! {
    /// `sys/leases/revoke-force/:prefix` and `sys/revoke-force/:prefix`.
    struct RevokeForceInput {
        prefix: Str, "The lease-id prefix to revoke.";
    }
}

async fn lookup(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let c = handles(&s);
    let u = c.unsealed().map_err(le)?;
    let id = f.input::<LeaseInput>().lease_id()?;
    match u.expiration.get(&id).await.map_err(le)? {
        None => Err(LogicalError::invalid("invalid lease")),
        Some(e) => Ok(Some(Response::json(e.lookup_json(now())))),
    }
}

/// `LIST sys/leases/lookup/<prefix>`; an empty prefix lists the top level (the mounts that
/// hold leases). Nothing there is a 404, as for every empty listing.
async fn list(s: Arc<Sys>, mut prefix: String) -> Result<Option<Response>> {
    let c = handles(&s);
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
    let c = handles(&s);
    let input: LeaseInput = f.input();
    let inc = Some(input.increment).filter(|d| !d.is_zero());
    let id = input.lease_id()?;
    let e = c.renew_lease(&id, inc).await.map_err(le)?;
    let ttl = std::time::Duration::from_secs((e.expire_time - now()).max(0) as u64);
    Ok(Some(Response {
        renewed: Some((e.lease_id, ttl, e.renewable)),
        ..Default::default()
    }))
}

async fn revoke(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let c = handles(&s);
    let id = f.input::<LeaseInput>().lease_id()?;
    c.revoke_lease(&id, false).await.map_err(le)?;
    Ok(None)
}

async fn revoke_prefix(s: Arc<Sys>, prefix: String, force: bool) -> Result<Option<Response>> {
    let c = handles(&s);
    let n = c.revoke_prefix(&prefix, force).await.map_err(le)?;
    tracing::info!(prefix = %prefix, revoked = n, force, "revoked leases by prefix");
    Ok(None)
}

fn lease_fields(p: Path<Sys>) -> Path<Sys> {
    p.input::<LeaseInput>()
}

pub(crate) fn paths() -> Vec<Path<Sys>> {
    let mut v = vec![
        lease_fields(Path::new("leases/lookup"))
            .op(Operation::Update, |s, _, f| Box::pin(lookup(s, f)))
            // `LIST sys/leases/lookup/` arrives here (a LIST may end in `/`).
            .op(Operation::List, |s, _, _| Box::pin(list(s, String::new())))
            .help("Look up a lease's metadata; LIST lists the top-level lease-id prefixes.", "Returns the lease's issue time, expire time, last renewal, renewability and remaining TTL. LIST (sudo) lists the prefixes that hold leases."),
        Path::new("leases/lookup/{prefix:*}")
            .input::<ListInput>()
            .op(Operation::List, |s, _, f| Box::pin(list(s, f.input::<ListInput>().prefix)))
            .help("List lease ids under a prefix.", "Requires sudo."),
        Path::new("leases/tidy")
            .op(Operation::Update, |s, _, _| {
                Box::pin(async move {
                    let c = handles(&s);
                    let u = c.unsealed().map_err(le)?;
                    let n = u.expiration.tidy().await.map_err(le)?;
                    tracing::info!(removed = n, "lease tidy finished");
                    Ok(Some(Response::tidy_started()))
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
                .input::<RevokePrefixInput>()
                .op(Operation::Update, |s, _, f| {
                    Box::pin(revoke_prefix(
                        s,
                        f.input::<RevokePrefixInput>().prefix,
                        false,
                    ))
                })
                .help("Revoke all leases under a prefix.", "Requires sudo."),
        );
    }
    for pat in ["leases/revoke-force/{prefix:+}", "revoke-force/{prefix:+}"] {
        v.push(
            Path::new(pat)
                .input::<RevokeForceInput>()
                .op(Operation::Update, |s, _, f| Box::pin(revoke_prefix(s, f.input::<RevokeForceInput>().prefix, true)))
                .help("Revoke all leases under a prefix, ignoring engine errors.", "Requires sudo. Leases are forgotten even when the engine fails to revoke the secret."),
        );
    }
    v
}
