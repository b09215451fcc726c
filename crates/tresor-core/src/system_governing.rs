//! `sys/policies/egp/:name` and `sys/policies/rgp/:name` of the system backend: Vault
//! Enterprise's shapes for governing policies (here in Rego). A write is checked by the
//! governing hook before it is stored, so a policy that does not compile is refused (400)
//! with the line and column of the problem; see `governing` for storage and caching.

use std::sync::Arc;

use tresor_sdk::framework::{Fields, Path};
use tresor_sdk::{LogicalError, Operation, Response, Result};

use crate::governing::{EnforcementLevel, GoverningKind, GoverningPolicy};
use crate::system::{Sys, handles, le};

tresor_sdk::input! {
    /// `sys/policies/egp/:name` and `sys/policies/rgp/:name`.
    struct PolicyInput {
        name: Str, "The name of the policy.";
        policy: Str, "The policy in Rego (optionally base64-encoded).";
        enforcement_level: Str, "advisory, soft-mandatory or hard-mandatory (the default).";
        paths: List, "EGPs: the request paths the policy governs (`*` any characters, `+` one segment).";
    }
}

/// The list path and the named path of one kind (handlers are plain `fn`s, so each kind gets
/// its own non-capturing closures).
macro_rules! kind_paths {
    ($kind:expr, $list:literal, $named:literal, $help:literal) => {{
        let named = Path::new($named)
            .case_insensitive("name")
            .input::<PolicyInput>()
            .op(Operation::Read, |s, _, f| Box::pin(read(s, $kind, f)))
            .op(Operation::Update, |s, _, f| Box::pin(write(s, $kind, f)))
            .op(Operation::Delete, |s, _, f| Box::pin(delete(s, $kind, f)))
            .help("Read, write or delete a governing policy.", $help);
        [
            Path::new($list)
                .op(Operation::List, |s, _, _| Box::pin(list(s, $kind)))
                .help(
                    "List the governing policies of this kind.",
                    "Returns the names of the stored governing policies.",
                ),
            named,
        ]
    }};
}

pub(crate) fn paths() -> Vec<Path<Sys>> {
    let mut v = Vec::new();
    v.extend(kind_paths!(
        GoverningKind::Egp,
        "policies/egp/",
        "policies/egp/{name}",
        "An endpoint governing policy (Rego) runs after the ACL on every request to its paths, logins included; root tokens are exempt."
    ));
    v.extend(kind_paths!(
        GoverningKind::Rgp,
        "policies/rgp/",
        "policies/rgp/{name}",
        "A role governing policy (Rego) runs after the ACL for the tokens, entities and groups that name it among their policies; root tokens are exempt."
    ));
    v
}

async fn list(s: Arc<Sys>, kind: GoverningKind) -> Result<Option<Response>> {
    let c = handles(&s);
    let names = c.unsealed().map_err(le)?.governing.list(kind);
    Ok(Some(Response::list(names)))
}

async fn read(s: Arc<Sys>, kind: GoverningKind, f: Fields) -> Result<Option<Response>> {
    let c = handles(&s);
    let u = c.unsealed().map_err(le)?;
    Ok(u.governing
        .get(kind, &f.input::<PolicyInput>().name)
        .map(|p| Response::json(p.to_json(kind))))
}

async fn write(s: Arc<Sys>, kind: GoverningKind, f: Fields) -> Result<Option<Response>> {
    let c = handles(&s);
    let input: PolicyInput = f.input();
    let name = crate::policies::normalize(&input.name);
    if name.is_empty() {
        return Err(LogicalError::invalid("policy name must be provided"));
    }
    let mut text = input.policy;
    if text.trim().is_empty() {
        return Err(LogicalError::invalid(
            "'policy' parameter not supplied or empty",
        ));
    }
    // Vault accepts base64-encoded policy text.
    {
        use base64::Engine as _;
        if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(text.trim())
            && let Ok(s) = String::from_utf8(b)
        {
            text = s;
        }
    }
    let level = match input.enforcement_level {
        l if l.trim().is_empty() => EnforcementLevel::HardMandatory,
        l => EnforcementLevel::parse(&l).map_err(le)?,
    };
    let paths = match kind {
        GoverningKind::Egp => {
            let paths: Vec<String> = input
                .paths
                .into_iter()
                .map(|p| p.trim().trim_start_matches('/').to_owned())
                .filter(|p| !p.is_empty())
                .collect();
            if paths.is_empty() {
                return Err(LogicalError::invalid(
                    "paths: an endpoint governing policy needs at least one path",
                ));
            }
            paths
        }
        GoverningKind::Rgp => Vec::new(),
    };
    c.check_governing_policy(kind, &name, &text)
        .map_err(|e| LogicalError::invalid(format!("failed to parse policy: {e}")))?;
    c.unsealed()
        .map_err(le)?
        .governing
        .set(
            kind,
            GoverningPolicy {
                version: 0,
                name,
                policy: text,
                enforcement_level: level,
                paths,
            },
        )
        .await
        .map_err(le)?;
    Ok(None)
}

async fn delete(s: Arc<Sys>, kind: GoverningKind, f: Fields) -> Result<Option<Response>> {
    let c = handles(&s);
    c.unsealed()
        .map_err(le)?
        .governing
        .delete(kind, &f.input::<PolicyInput>().name)
        .await
        .map_err(le)?;
    Ok(None)
}
