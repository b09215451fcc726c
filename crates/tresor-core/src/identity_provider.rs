//! Tresor as an OpenID Connect identity provider (Vault's `identity/oidc/provider`): scopes,
//! assignments, clients and providers, and each provider's authorization-code flow with
//! PKCE, so that applications that speak OIDC log their users in through any Tresor auth
//! method. It builds on the identity tokens' named keys ([`crate::identity_oidc`]): a client
//! names the key that signs its ID tokens.
//!
//! Storage, in the identity mount's view: `oidc/scope/<name>`, `oidc/assignment/<name>`,
//! `oidc/client/<name>`, `oidc/provider/<name>`, and `oidc/provider-access-key` (the key that
//! authenticates access tokens). Built in, as in Vault: the provider `default` (every client
//! allowed; may be changed, not deleted) and the assignment `allow_all` (every entity; neither
//! changed nor deleted).
//!
//! **The flow.** `authorize` (a Vault token with an entity; the default policy grants it)
//! checks the client, the redirect URI, the scopes and the client's assignments, and answers
//! `{code, state}`. The code lives in memory on the server that issued it (standbys forward
//! to the active node), for [`CODE_TTL`], and is taken out of the map by the one `token`
//! request that redeems it, so two racing exchanges get one token. `token` authenticates the
//! client (HTTP Basic or `client_secret_post`; a public client by PKCE alone), checks the
//! redirect URI and the PKCE verifier, and answers an ID token signed with the client's key
//! and an access token. The access token is not stored: it is the grant (provider, client,
//! entity, scopes, expiry) with an HMAC-SHA256 tag under the mount's access key, verified in
//! constant time by `userinfo`, which answers the entity's claims as they are at that moment
//! (a disabled or deleted entity gets none).
//!
//! OAuth errors are OAuth's JSON (`{"error", "error_description"}`) with 400 or 401, as the
//! protocol requires; the configuration endpoints answer in Vault's shape.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tresor_sdk::framework::{Fields, Path};
use tresor_sdk::identity::{EntityInfo, render_json, validate_json};
use tresor_sdk::{LogicalError, Operation, Request, Response, Result, Storage};
use zeroize::Zeroizing;

use crate::identity::HasIdentity;
use crate::identity_oidc::{
    self as oidc, ATTEMPTS, DAY, DEFAULT_KEY, FORMAT, HasFormat, all, get, invalid, load, now,
    random_alnum, secs, secs_i64, store_if,
};

const SCOPE_PREFIX: &str = "oidc/scope/";
const ASSIGNMENT_PREFIX: &str = "oidc/assignment/";
const CLIENT_PREFIX: &str = "oidc/client/";
const PROVIDER_PREFIX: &str = "oidc/provider/";
const ACCESS_KEY: &str = "oidc/provider-access-key";
const DEFAULT_PROVIDER: &str = "default";
const ALLOW_ALL: &str = "allow_all";
const OPENID: &str = "openid";
/// How long an authorization code may be redeemed.
pub(crate) const CODE_TTL: Duration = Duration::from_secs(5 * 60);
/// Codes an entity may have waiting at once: a new one replaces its oldest.
const CODES_PER_ENTITY: usize = 20;
/// Codes outstanding at once, per server; expired ones make room first.
const MAX_CODES: usize = 10_000;
/// Longest value accepted for the free-form flow parameters (state, nonce, PKCE).
const MAX_PARAM: usize = 2048;
/// Claims a scope template may not set: the identity tokens' reserved claims and those the
/// provider adds.
const SCOPE_RESERVED: &[&str] = &[
    "iat",
    "aud",
    "exp",
    "iss",
    "sub",
    "namespace",
    "nonce",
    "auth_time",
    "at_hash",
    "c_hash",
];

/// The unauthenticated paths of the provider flow.
pub(crate) fn unauthenticated_paths() -> Vec<String> {
    vec![
        "oidc/provider/+/.well-known/*".into(),
        "oidc/provider/+/token".into(),
        "oidc/provider/+/userinfo".into(),
    ]
}

// --- records --------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Scope {
    format: u32,
    template: String,
    description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Assignment {
    format: u32,
    entity_ids: Vec<String>,
    group_ids: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ClientType {
    Confidential,
    Public,
}

impl ClientType {
    fn name(self) -> &'static str {
        match self {
            ClientType::Confidential => "confidential",
            ClientType::Public => "public",
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Client {
    format: u32,
    key: String,
    redirect_uris: Vec<String>,
    assignments: Vec<String>,
    client_type: ClientType,
    id_token_ttl: u64,
    access_token_ttl: u64,
    client_id: String,
    /// Empty for a public client.
    client_secret: String,
}

/// Never prints the client secret.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("client_type", &self.client_type)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Provider {
    format: u32,
    /// The configured base URL (scheme, host, port); empty for the default.
    issuer: String,
    allowed_client_ids: Vec<String>,
    scopes_supported: Vec<String>,
}

impl Provider {
    fn built_in() -> Provider {
        Provider {
            format: FORMAT,
            issuer: String::new(),
            allowed_client_ids: vec!["*".into()],
            scopes_supported: Vec::new(),
        }
    }

    fn allows(&self, client_id: &str) -> bool {
        self.allowed_client_ids
            .iter()
            .any(|c| c == "*" || c == client_id)
    }
}

/// The HMAC key of access tokens (base64), wiped when dropped.
#[derive(Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
struct AccessKey {
    format: u32,
    key: String,
}

macro_rules! has_format {
    ($($t:ty),*) => {$(
        impl HasFormat for $t {
            fn format(&self) -> u32 {
                self.format
            }
        }
    )*};
}
has_format!(Scope, Assignment, Client, Provider, AccessKey);

// --- pending codes --------------------------------------------------------------------------

/// An authorization code waiting for its exchange.
struct Pending {
    provider: String,
    client_id: String,
    entity_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    nonce: Option<String>,
    code_challenge: Option<(String, String)>,
    /// When the caller's token was created, if the request asked for `max_age`.
    auth_time: Option<i64>,
    expires: Instant,
}

/// Authorization codes issued by this server, by the SHA-256 of the code, with each entity's
/// codes in the order they were issued.
#[derive(Default)]
pub struct Codes(Mutex<CodeMap>);

#[derive(Default)]
struct CodeMap {
    codes: HashMap<[u8; 32], Pending>,
    by_entity: HashMap<String, std::collections::VecDeque<[u8; 32]>>,
}

impl Codes {
    /// Keeps `code` for its exchange. An entity has at most [`CODES_PER_ENTITY`] waiting (a
    /// new one replaces its oldest), so no user can crowd out the others' logins; the total
    /// stays under [`MAX_CODES`] (expired codes make room first).
    fn insert(&self, code: &str, p: Pending) -> Result<()> {
        let mut guard = self.0.lock();
        let m = &mut *guard;
        let now = Instant::now();
        if m.codes.len() >= MAX_CODES {
            m.codes.retain(|_, p| p.expires > now);
            let live = &m.codes;
            m.by_entity.retain(|_, q| {
                q.retain(|h| live.contains_key(h));
                !q.is_empty()
            });
        }
        let mine = m.by_entity.entry(p.entity_id.clone()).or_default();
        let live = &m.codes;
        mine.retain(|h| live.get(h).is_some_and(|c| c.expires > now));
        while mine.len() >= CODES_PER_ENTITY {
            if let Some(oldest) = mine.pop_front() {
                m.codes.remove(&oldest);
            }
        }
        if m.codes.len() >= MAX_CODES {
            return Err(LogicalError::RateLimited(
                "too many authorization codes are outstanding; try again later".into(),
            ));
        }
        let h = code_hash(code);
        mine.push_back(h);
        m.codes.insert(h, p);
        Ok(())
    }

    /// Takes the code out: whoever calls this first has it, and nobody after.
    fn take(&self, code: &str) -> Option<Pending> {
        let p = self.0.lock().codes.remove(&code_hash(code))?;
        (p.expires > Instant::now()).then_some(p)
    }
}

fn code_hash(code: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, code.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

// --- helpers --------------------------------------------------------------------------------

async fn provider(s: &dyn Storage, name: &str) -> Result<Option<Provider>> {
    Ok(
        match get::<Provider>(s, &format!("{PROVIDER_PREFIX}{name}")).await? {
            Some(p) => Some(p),
            None if name == DEFAULT_PROVIDER => Some(Provider::built_in()),
            None => None,
        },
    )
}

async fn assignment(s: &dyn Storage, name: &str) -> Result<Option<Assignment>> {
    if name == ALLOW_ALL {
        return Ok(Some(Assignment {
            format: FORMAT,
            entity_ids: vec!["*".into()],
            group_ids: vec!["*".into()],
        }));
    }
    get::<Assignment>(s, &format!("{ASSIGNMENT_PREFIX}{name}")).await
}

async fn client_by_id(s: &dyn Storage, client_id: &str) -> Result<Option<Client>> {
    if client_id.is_empty() {
        return Ok(None);
    }
    Ok(all::<Client>(s, CLIENT_PREFIX)
        .await?
        .into_iter()
        .map(|(_, c)| c)
        .find(|c| c.client_id == client_id))
}

/// The provider's issuer: its configured base (or the default) and its path.
fn issuer_of(req: &Request, name: &str, p: &Provider) -> String {
    let default = oidc::default_base(req);
    let base = if p.issuer.is_empty() {
        default.as_str()
    } else {
        p.issuer.as_str()
    };
    format!("{base}/v1/identity/oidc/provider/{name}")
}

fn oauth_error(status: u16, error: &str, description: impl Into<String>) -> Response {
    oidc::raw_json_status(
        status,
        &json!({"error": error, "error_description": description.into()}),
    )
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Whether the entity is one an assignment names, directly or through one of its groups.
fn assigned(a: &Assignment, e: &EntityInfo) -> bool {
    a.entity_ids.iter().any(|id| id == "*" || *id == e.id)
        || a.group_ids
            .iter()
            .any(|id| id == "*" || e.groups.iter().any(|g| g.id == *id))
}

/// A form-encoded credential (RFC 6749 §2.3.1), `None` if it is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    String::from_utf8(tresor_sdk::percent::decode(s, true)).ok()
}

// --- inputs ---------------------------------------------------------------------------------

tresor_sdk::input! {
    /// `oidc/scope/:name`.
    struct ScopeInput {
        name: Str, "Name of the scope.";
        template: OptStr, "JSON template of the claims the scope adds to ID tokens and userinfo; plain or base64.";
        description: OptStr, "What the scope is for.";
    }
}

tresor_sdk::input! {
    /// `oidc/assignment/:name`.
    struct AssignmentInput {
        name: Str, "Name of the assignment.";
        entity_ids: OptList, "Entity IDs the assignment allows.";
        group_ids: OptList, "Group IDs the assignment allows (their member entities, directly or through subgroups).";
    }
}

tresor_sdk::input! {
    /// `oidc/client/:name`.
    struct ClientInput {
        name: Str, "Name of the client.";
        key: OptStr, "The named key that signs the client's ID tokens (default \"default\").";
        redirect_uris: OptList, "The redirect URIs the client may use; one must match exactly.";
        assignments: OptList, "Assignments naming the entities and groups that may use the client.";
        client_type: OptStr, "confidential (default; has a client secret) or public (PKCE, no secret). Cannot be changed.";
        id_token_ttl: OptDuration, "How long ID tokens live (default 24h; at most the key's verification_ttl).";
        access_token_ttl: OptDuration, "How long access tokens live (default 24h).";
    }
}

tresor_sdk::input! {
    /// `oidc/provider/:name`.
    struct ProviderInput {
        name: Str, "Name of the provider.";
        issuer: OptStr, "Base URL (scheme, host, optional port) of the ID tokens' iss claim; empty for the default.";
        allowed_client_ids: OptList, "Client IDs that may use the provider; \"*\" allows every client, empty none.";
        scopes_supported: OptList, "Scopes (besides openid) that clients may request.";
    }
}

tresor_sdk::input! {
    /// `oidc/provider/` (LIST).
    struct ProviderListInput {
        allowed_client_id: Str, "Only providers that allow this client ID.";
    }
}

tresor_sdk::input! {
    /// `oidc/provider/:name/authorize`.
    struct AuthorizeInput {
        name: Str, "Name of the provider.";
        client_id: Str, "The client's ID.";
        scope: Str, "Space-separated scopes; must include openid.";
        redirect_uri: Str, "Where the client receives the code; must be one of the client's.";
        response_type: Str, "Must be code.";
        state: Str, "Opaque value returned with the code.";
        nonce: Str, "Value copied into the ID token.";
        max_age: OptInt, "Seconds since the caller's login beyond which it must log in again.";
        code_challenge: Str, "PKCE code challenge (required for public clients).";
        code_challenge_method: Str, "PKCE method: S256 or plain (default plain).";
        request: Str, "Not supported (a request object is refused).";
        request_uri: Str, "Not supported (a request object is refused).";
    }
}

tresor_sdk::input! {
    /// `oidc/provider/:name/token`.
    struct TokenInput {
        name: Str, "Name of the provider.";
        grant_type: Str, "Must be authorization_code.";
        code: Str, "The authorization code.";
        redirect_uri: Str, "The redirect URI the code was issued for.";
        code_verifier: Str, "PKCE code verifier.";
        client_id: Str, "The client's ID (client_secret_post, or a public client).";
        client_secret: Str, "The client's secret (client_secret_post).";
    }
}

tresor_sdk::input! {
    /// `oidc/provider/:name/...` without further parameters.
    struct NameInput {
        name: Str, "Name of the provider.";
    }
}

type Reply = Result<Option<Response>>;

// --- scopes ---------------------------------------------------------------------------------

fn check_template(template: &str) -> Result<()> {
    let t = template.trim();
    if t.is_empty() {
        return Ok(());
    }
    // The claim names are the template's own: a template that is one whole value
    // (`{{identity.entity.metadata}}`) would let entity data choose them.
    if !t.starts_with('{') || t.starts_with("{{") {
        return Err(invalid(
            "error parsing template: the template must be a JSON object whose keys are written in it",
        ));
    }
    let obj =
        validate_json(template).map_err(|e| invalid(format!("error parsing template: {e}")))?;
    if let Some(k) = obj.keys().find(|k| SCOPE_RESERVED.contains(&k.as_str())) {
        return Err(invalid(format!(
            "top level key {k:?} not allowed. Restricted keys: {}",
            SCOPE_RESERVED.join(", ")
        )));
    }
    Ok(())
}

async fn write_scope(req: Request, f: Fields) -> Reply {
    let i = f.input::<ScopeInput>();
    if i.name == OPENID {
        return Err(invalid("the \"openid\" scope name is reserved"));
    }
    let path = format!("{SCOPE_PREFIX}{}", i.name);
    let s = &*req.storage;
    let (old, rev) = match load::<Scope>(s, &path).await? {
        Some((v, rev)) => (Some(v), rev),
        None => (None, 0),
    };
    let template = match i.template {
        Some(t) => oidc::decode_template(t),
        None => old.as_ref().map(|o| o.template.clone()).unwrap_or_default(),
    };
    check_template(&template)?;
    let scope = Scope {
        format: FORMAT,
        template,
        description: i
            .description
            .or_else(|| old.map(|o| o.description))
            .unwrap_or_default(),
    };
    if !store_if(s, &path, &scope, rev).await? {
        return Err(LogicalError::Conflict(format!(
            "scope {:?} changed while it was being written; try again",
            i.name
        )));
    }
    Ok(None)
}

async fn read_scope(req: Request, f: Fields) -> Reply {
    let name = f.input::<ScopeInput>().name;
    Ok(
        get::<Scope>(&*req.storage, &format!("{SCOPE_PREFIX}{name}"))
            .await?
            .map(|v| Response::json(json!({"template": v.template, "description": v.description}))),
    )
}

async fn delete_scope(req: Request, f: Fields) -> Reply {
    let name = f.input::<ScopeInput>().name;
    let s = &*req.storage;
    let users: Vec<String> = all::<Provider>(s, PROVIDER_PREFIX)
        .await?
        .into_iter()
        .filter(|(_, p)| p.scopes_supported.contains(&name))
        .map(|(n, _)| n)
        .collect();
    if !users.is_empty() {
        return Err(invalid(format!(
            "unable to delete scope {name:?} because it is currently referenced by these providers: {}",
            users.join(", ")
        )));
    }
    s.delete(&format!("{SCOPE_PREFIX}{name}")).await?;
    Ok(None)
}

// --- assignments ----------------------------------------------------------------------------

async fn write_assignment(req: Request, f: Fields) -> Reply {
    let i = f.input::<AssignmentInput>();
    if i.name == ALLOW_ALL {
        return Err(invalid(format!(
            "modification of assignment {ALLOW_ALL:?} not allowed"
        )));
    }
    let path = format!("{ASSIGNMENT_PREFIX}{}", i.name);
    let s = &*req.storage;
    let (old, rev) = match load::<Assignment>(s, &path).await? {
        Some((v, rev)) => (Some(v), rev),
        None => (None, 0),
    };
    let a = Assignment {
        format: FORMAT,
        entity_ids: i
            .entity_ids
            .or_else(|| old.as_ref().map(|o| o.entity_ids.clone()))
            .unwrap_or_default(),
        group_ids: i
            .group_ids
            .or_else(|| old.map(|o| o.group_ids))
            .unwrap_or_default(),
    };
    if !store_if(s, &path, &a, rev).await? {
        return Err(LogicalError::Conflict(format!(
            "assignment {:?} changed while it was being written; try again",
            i.name
        )));
    }
    Ok(None)
}

async fn read_assignment(req: Request, f: Fields) -> Reply {
    let name = f.input::<AssignmentInput>().name;
    Ok(assignment(&*req.storage, &name)
        .await?
        .map(|a| Response::json(json!({"entity_ids": a.entity_ids, "group_ids": a.group_ids}))))
}

async fn delete_assignment(req: Request, f: Fields) -> Reply {
    let name = f.input::<AssignmentInput>().name;
    if name == ALLOW_ALL {
        return Err(invalid(format!(
            "deletion of assignment {name:?} not allowed"
        )));
    }
    let s = &*req.storage;
    let users: Vec<String> = all::<Client>(s, CLIENT_PREFIX)
        .await?
        .into_iter()
        .filter(|(_, c)| c.assignments.contains(&name))
        .map(|(n, _)| n)
        .collect();
    if !users.is_empty() {
        return Err(invalid(format!(
            "unable to delete assignment {name:?} because it is currently referenced by these clients: {}",
            users.join(", ")
        )));
    }
    s.delete(&format!("{ASSIGNMENT_PREFIX}{name}")).await?;
    Ok(None)
}

// --- clients --------------------------------------------------------------------------------

/// The clients that name the key `name` (refused deletion of a key in use).
pub(crate) async fn clients_using_key(s: &dyn Storage, name: &str) -> Result<Vec<String>> {
    Ok(all::<Client>(s, CLIENT_PREFIX)
        .await?
        .into_iter()
        .filter(|(_, c)| c.key == name)
        .map(|(n, _)| n)
        .collect())
}

async fn write_client(req: Request, f: Fields) -> Reply {
    let i = f.input::<ClientInput>();
    let name = i.name;
    let path = format!("{CLIENT_PREFIX}{name}");
    let s = &*req.storage;
    let (old, rev) = match load::<Client>(s, &path).await? {
        Some((v, rev)) => (Some(v), rev),
        None => (None, 0),
    };
    let client_type = match i.client_type.as_deref() {
        None | Some("") => old
            .as_ref()
            .map_or(ClientType::Confidential, |o| o.client_type),
        Some("confidential") => ClientType::Confidential,
        Some("public") => ClientType::Public,
        Some(other) => {
            return Err(invalid(format!("invalid client_type {other:?}")));
        }
    };
    if old.as_ref().is_some_and(|o| o.client_type != client_type) {
        return Err(invalid("client_type modification is not allowed"));
    }
    let key = match (i.key.filter(|k| !k.is_empty()), &old) {
        (Some(k), Some(o)) if k != o.key => {
            return Err(invalid("key modification is not allowed"));
        }
        (Some(k), _) => k,
        (None, Some(o)) => o.key.clone(),
        (None, None) => DEFAULT_KEY.into(),
    };
    let verification_ttl = oidc::key_verification_ttl(s, &key)
        .await?
        .ok_or_else(|| invalid(format!("key {key:?} does not exist")))?;
    let assignments = i
        .assignments
        .or_else(|| old.as_ref().map(|o| o.assignments.clone()))
        .unwrap_or_default();
    for a in &assignments {
        if assignment(s, a).await?.is_none() {
            return Err(invalid(format!("assignment {a:?} does not exist")));
        }
    }
    let id_token_ttl = i
        .id_token_ttl
        .map(secs)
        .or_else(|| old.as_ref().map(|o| o.id_token_ttl))
        .unwrap_or(DAY);
    if id_token_ttl > verification_ttl {
        return Err(invalid(
            "a client's id_token_ttl cannot be greater than the verification_ttl of the key it references",
        ));
    }
    let access_token_ttl = i
        .access_token_ttl
        .map(secs)
        .or_else(|| old.as_ref().map(|o| o.access_token_ttl))
        .unwrap_or(DAY);
    if access_token_ttl == 0 || id_token_ttl == 0 {
        return Err(invalid(
            "id_token_ttl and access_token_ttl must be positive",
        ));
    }
    let (client_id, client_secret) = match &old {
        Some(o) => (o.client_id.clone(), o.client_secret.clone()),
        None => (
            random_alnum(32)?,
            match client_type {
                ClientType::Confidential => format!("hvo_secret_{}", random_alnum(64)?),
                ClientType::Public => String::new(),
            },
        ),
    };
    let c = Client {
        format: FORMAT,
        key,
        redirect_uris: i
            .redirect_uris
            .or_else(|| old.as_ref().map(|o| o.redirect_uris.clone()))
            .unwrap_or_default(),
        assignments,
        client_type,
        id_token_ttl,
        access_token_ttl,
        client_id,
        client_secret,
    };
    if !store_if(s, &path, &c, rev).await? {
        return Err(LogicalError::Conflict(format!(
            "client {name:?} changed while it was being written; try again"
        )));
    }
    Ok(None)
}

fn client_json(c: &Client) -> Value {
    let mut v = json!({
        "key": c.key,
        "redirect_uris": c.redirect_uris,
        "assignments": c.assignments,
        "client_type": c.client_type.name(),
        "id_token_ttl": c.id_token_ttl,
        "access_token_ttl": c.access_token_ttl,
        "client_id": c.client_id,
    });
    if c.client_type == ClientType::Confidential {
        v["client_secret"] = json!(c.client_secret);
    }
    v
}

async fn read_client(req: Request, f: Fields) -> Reply {
    let name = f.input::<ClientInput>().name;
    Ok(
        get::<Client>(&*req.storage, &format!("{CLIENT_PREFIX}{name}"))
            .await?
            .map(|c| Response::json(client_json(&c))),
    )
}

async fn list_clients(req: Request) -> Reply {
    let clients = all::<Client>(&*req.storage, CLIENT_PREFIX).await?;
    let keys: Vec<String> = clients.iter().map(|(n, _)| n.clone()).collect();
    // As in Vault, a listing never carries secrets: reading them takes read on the client.
    let info: Map<String, Value> = clients
        .iter()
        .map(|(n, c)| {
            let mut v = client_json(c);
            if let Some(o) = v.as_object_mut() {
                o.remove("client_secret");
            }
            (n.clone(), v)
        })
        .collect();
    Ok(Some(Response::json(
        json!({"keys": keys, "key_info": info}),
    )))
}

// --- providers ------------------------------------------------------------------------------

async fn write_provider(req: Request, f: Fields) -> Reply {
    let i = f.input::<ProviderInput>();
    let name = i.name;
    let path = format!("{PROVIDER_PREFIX}{name}");
    let s = &*req.storage;
    let (old, rev) = match load::<Provider>(s, &path).await? {
        Some((v, rev)) => (Some(v), rev),
        None if name == DEFAULT_PROVIDER => (Some(Provider::built_in()), 0),
        None => (None, 0),
    };
    let issuer = match i.issuer {
        Some(t) if t.trim().is_empty() => String::new(),
        Some(t) => oidc::check_issuer(t.trim())?,
        None => old.as_ref().map(|o| o.issuer.clone()).unwrap_or_default(),
    };
    let scopes_supported = i
        .scopes_supported
        .or_else(|| old.as_ref().map(|o| o.scopes_supported.clone()))
        .unwrap_or_default();
    // Two scopes setting the same claim are allowed, with a warning: a request naming both
    // is refused at the token endpoint.
    let mut claim_of: BTreeMap<String, String> = BTreeMap::new();
    let mut warnings = Vec::new();
    for sc in &scopes_supported {
        let Some(scope) = get::<Scope>(s, &format!("{SCOPE_PREFIX}{sc}")).await? else {
            return Err(invalid(format!("scope {sc:?} does not exist")));
        };
        let keys = validate_json(&scope.template).map(|m| m.into_iter().map(|(k, _)| k));
        for k in keys.into_iter().flatten() {
            if let Some(other) = claim_of.insert(k.clone(), sc.clone()) {
                warnings.push(format!(
                    "Found scope templates with conflicting top-level keys: conflict {k:?} in scopes {sc:?}, {other:?}. This may result in an error if the scopes are requested in an OIDC Authentication Request."
                ));
            }
        }
    }
    let p = Provider {
        format: FORMAT,
        issuer,
        allowed_client_ids: i
            .allowed_client_ids
            .or_else(|| old.map(|o| o.allowed_client_ids))
            .unwrap_or_default(),
        scopes_supported,
    };
    if !p.issuer.is_empty() {
        warnings.insert(0, oidc::EXPLICIT_ISSUER_WARNING.to_owned());
    }
    if !store_if(s, &path, &p, rev).await? {
        return Err(LogicalError::Conflict(format!(
            "provider {name:?} changed while it was being written; try again"
        )));
    }
    if warnings.is_empty() {
        return Ok(None);
    }
    Ok(Some(Response {
        warnings,
        ..Default::default()
    }))
}

fn provider_json(req: &Request, name: &str, p: &Provider) -> Value {
    let mut scopes = p.scopes_supported.clone();
    scopes.sort();
    json!({
        "issuer": issuer_of(req, name, p),
        "allowed_client_ids": p.allowed_client_ids,
        "scopes_supported": scopes,
    })
}

async fn read_provider(req: Request, f: Fields) -> Reply {
    let name = f.input::<ProviderInput>().name;
    Ok(provider(&*req.storage, &name)
        .await?
        .map(|p| Response::json(provider_json(&req, &name, &p))))
}

async fn list_providers(req: Request, f: Fields) -> Reply {
    let wanted = f.input::<ProviderListInput>().allowed_client_id;
    let s = &*req.storage;
    let mut providers: BTreeMap<String, Provider> = all::<Provider>(s, PROVIDER_PREFIX)
        .await?
        .into_iter()
        .collect();
    providers
        .entry(DEFAULT_PROVIDER.into())
        .or_insert_with(Provider::built_in);
    let chosen: Vec<(String, Provider)> = providers
        .into_iter()
        .filter(|(_, p)| wanted.is_empty() || p.allows(&wanted))
        .collect();
    let keys: Vec<String> = chosen.iter().map(|(n, _)| n.clone()).collect();
    let info: Map<String, Value> = chosen
        .iter()
        .map(|(n, p)| (n.clone(), provider_json(&req, n, p)))
        .collect();
    Ok(Some(Response::json(
        json!({"keys": keys, "key_info": info}),
    )))
}

async fn delete_provider(req: Request, f: Fields) -> Reply {
    let name = f.input::<ProviderInput>().name;
    if name == DEFAULT_PROVIDER {
        return Err(invalid(format!(
            "deletion of OIDC provider {name:?} not allowed"
        )));
    }
    req.storage
        .delete(&format!("{PROVIDER_PREFIX}{name}"))
        .await?;
    Ok(None)
}

// --- discovery ------------------------------------------------------------------------------

async fn discovery(req: Request, f: Fields) -> Reply {
    let name = f.input::<NameInput>().name;
    let Some(p) = provider(&*req.storage, &name).await? else {
        return Ok(None);
    };
    let iss = issuer_of(&req, &name, &p);
    let base = iss
        .strip_suffix(&format!("/v1/identity/oidc/provider/{name}"))
        .unwrap_or(&iss)
        .to_owned();
    let mut scopes = p.scopes_supported.clone();
    scopes.sort();
    scopes.push(OPENID.to_owned());
    let mut doc = oidc::raw_json(&json!({
        "issuer": iss,
        "jwks_uri": format!("{iss}/.well-known/keys"),
        "authorization_endpoint": format!("{base}/ui/vault/identity/oidc/provider/{name}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "userinfo_endpoint": format!("{iss}/userinfo"),
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "id_token_signing_alg_values_supported": oidc::algorithm_names(),
        "response_types_supported": ["code"],
        "scopes_supported": scopes,
        "claims_supported": [],
        "subject_types_supported": ["public"],
        "grant_types_supported": ["authorization_code"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["plain", "S256"],
    }));
    // As in Vault: relying parties may keep the document an hour.
    if let Some(raw) = doc.raw.as_mut() {
        raw.headers
            .push(("Cache-Control".into(), "max-age=3600".into()));
    }
    Ok(Some(doc))
}

/// The public keys of the keys that sign for the clients the provider allows.
async fn provider_keys(req: Request, f: Fields) -> Reply {
    let name = f.input::<NameInput>().name;
    let s = &*req.storage;
    let Some(p) = provider(s, &name).await? else {
        return Ok(None);
    };
    let mut key_names: Vec<String> = all::<Client>(s, CLIENT_PREFIX)
        .await?
        .into_iter()
        .filter(|(_, c)| p.allows(&c.client_id))
        .map(|(_, c)| c.key)
        .collect();
    key_names.sort();
    key_names.dedup();
    let keys = oidc::public_jwks_of(s, &key_names, now()).await?;
    Ok(Some(oidc::raw_json(&json!({ "keys": keys }))))
}

// --- the flow -------------------------------------------------------------------------------

/// An authorization error: OAuth's JSON with the request's `state`, as Vault's UI reads it.
fn authorize_error(error: &str, description: &str, state: &str) -> Reply {
    Ok(Some(oidc::raw_json_status(
        400,
        &json!({"error": error, "error_description": description, "state": state}),
    )))
}

/// Whether the entity is named by one of the client's assignments.
async fn entity_assigned(s: &dyn Storage, client: &Client, e: &EntityInfo) -> Result<bool> {
    for name in &client.assignments {
        if let Some(a) = assignment(s, name).await?
            && assigned(&a, e)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `{code, state}` or the OAuth error the authorization request earns, checked in Vault's order.
async fn authorize<B: HasIdentity>(b: Arc<B>, req: Request, f: Fields) -> Reply {
    let i = f.input::<AuthorizeInput>();
    let s = &*req.storage;
    let state = if i.state.len() > MAX_PARAM {
        ""
    } else {
        i.state.as_str()
    };
    let bad = |error: &str, d: &str| authorize_error(error, d, state);
    // The client and its redirect URI are checked first: every later error may be sent back
    // to that URI (the web UI does), so none comes before it is known to be the client's.
    if i.client_id.is_empty() {
        return bad("invalid_client_id", "client_id parameter is required");
    }
    let Some(client) = client_by_id(s, &i.client_id).await? else {
        return bad("invalid_client_id", "client with client_id not found");
    };
    if i.redirect_uri.is_empty() {
        return bad("invalid_request", "redirect_uri parameter is required");
    }
    if !client.redirect_uris.contains(&i.redirect_uri) {
        return bad(
            "invalid_redirect_uri",
            "redirect_uri is not allowed for the client",
        );
    }
    let Some(p) = provider(s, &i.name).await? else {
        return bad("invalid_request", "provider not found");
    };
    if !p.allows(&client.client_id) {
        return bad(
            "unauthorized_client",
            "client is not authorized to use the provider",
        );
    }
    for (field, v) in [
        ("state", &i.state),
        ("nonce", &i.nonce),
        ("code_challenge", &i.code_challenge),
        ("scope", &i.scope),
    ] {
        if v.len() > MAX_PARAM {
            return bad("invalid_request", &format!("{field} parameter is too long"));
        }
    }
    if !i.request.is_empty() {
        return authorize_error(
            "request_not_supported",
            "request parameter is not supported",
            "",
        );
    }
    if !i.request_uri.is_empty() {
        return authorize_error(
            "request_uri_not_supported",
            "request_uri parameter is not supported",
            "",
        );
    }
    let mut scopes: Vec<String> = i.scope.split_whitespace().map(str::to_owned).collect();
    if !scopes.iter().any(|sc| sc == OPENID) {
        return bad(
            "invalid_request",
            "scope parameter must contain the \"openid\" value",
        );
    }
    // Scopes the provider does not support are dropped, as in Vault; openid is implied.
    scopes.retain(|sc| sc != OPENID && p.scopes_supported.contains(sc));
    scopes.sort();
    scopes.dedup();
    if i.response_type.is_empty() {
        return bad("invalid_request", "response_type parameter is required");
    }
    if i.response_type != "code" {
        return bad(
            "unsupported_response_type",
            "unsupported response_type value",
        );
    }
    if req.caller.entity_id.is_empty() {
        return bad(
            "access_denied",
            "identity entity must be associated with the request",
        );
    }
    let Some(resolved) = b.identity().resolve(&req.caller.entity_id) else {
        return bad(
            "access_denied",
            "identity entity associated with the request not found",
        );
    };
    let entity = &resolved.info;
    if entity.disabled || !entity_assigned(s, &client, entity).await? {
        return bad(
            "access_denied",
            "identity entity not authorized by client assignment",
        );
    }
    let code_challenge = if i.code_challenge.is_empty() {
        if client.client_type == ClientType::Public {
            return bad("invalid_request", "PKCE is required for public clients");
        }
        None
    } else {
        let method = match i.code_challenge_method.as_str() {
            "" | "plain" => "plain",
            "S256" => "S256",
            _ => return bad("invalid_request", "invalid code_challenge_method"),
        };
        // RFC 7636: 43 to 128 characters.
        if !(43..=128).contains(&i.code_challenge.len()) {
            return bad("invalid_request", "invalid code_challenge");
        }
        Some((method.to_owned(), i.code_challenge.clone()))
    };
    let mut auth_time = None;
    if let Some(max_age) = i.max_age {
        if max_age < 1 {
            return bad("invalid_request", "max_age must be greater than zero");
        }
        let created = req.caller.token_issued_at.unwrap_or_else(now);
        if now().saturating_sub(created) > max_age {
            return bad(
                "max_age_violation",
                "active re-authentication is required by max_age",
            );
        }
        auth_time = Some(created);
    }
    let code = random_alnum(32)?;
    b.identity().provider_codes.insert(
        &code,
        Pending {
            provider: i.name.clone(),
            client_id: client.client_id.clone(),
            entity_id: entity.id.clone(),
            redirect_uri: i.redirect_uri.clone(),
            scopes,
            nonce: Some(i.nonce.clone()).filter(|n| !n.is_empty()),
            code_challenge,
            auth_time,
            expires: Instant::now() + CODE_TTL,
        },
    )?;
    Ok(Some(oidc::raw_json(
        &json!({"code": code, "state": i.state}),
    )))
}

/// The client a token request authenticates as: HTTP Basic first, else the body's client_id
/// and client_secret. A confidential client's secret is compared in constant time; a public
/// client has none to check, as in Vault. `Err` is the OAuth error.
async fn authenticate_client(
    s: &dyn Storage,
    req: &Request,
    i: &TokenInput,
) -> Result<std::result::Result<Client, Response>> {
    let unauthorized = |d: &str| Ok(Err(oauth_error(401, "invalid_client", d)));
    let basic = header(req, "authorization")
        .filter(|h| h.len() > 6 && h[..6].eq_ignore_ascii_case("basic "))
        .map(|h| h[6..].trim().to_owned());
    let (client_id, secret) = match basic {
        Some(b64) => {
            let Some((id, secret)) = STANDARD
                .decode(b64)
                .ok()
                .map(Zeroizing::new)
                .and_then(|b| String::from_utf8(b.to_vec()).ok())
                .map(Zeroizing::new)
                .and_then(|t| {
                    let (id, secret) = t.split_once(':')?;
                    // RFC 6749 §2.3.1: both are form-encoded before they are joined.
                    Some((percent_decode(id)?, percent_decode(secret)?))
                })
            else {
                return unauthorized("client failed to authenticate");
            };
            (id, Zeroizing::new(secret))
        }
        None => {
            if i.client_id.is_empty() {
                return Ok(Err(oauth_error(
                    400,
                    "invalid_request",
                    "client_id parameter is required",
                )));
            }
            (i.client_id.clone(), Zeroizing::new(i.client_secret.clone()))
        }
    };
    let Some(client) = client_by_id(s, &client_id).await? else {
        return unauthorized("client failed to authenticate");
    };
    if client.client_type == ClientType::Confidential {
        let ok = !secret.is_empty()
            && aws_lc_rs::constant_time::verify_slices_are_equal(
                secret.as_bytes(),
                client.client_secret.as_bytes(),
            )
            .is_ok();
        if !ok {
            return unauthorized("client failed to authenticate");
        }
    }
    Ok(Ok(client))
}

/// Vault's PKCE check of a code exchange: `Err((error, description))` when it fails.
fn check_pkce(
    challenge: &Option<(String, String)>,
    verifier: &str,
    public: bool,
) -> std::result::Result<(), (&'static str, &'static str)> {
    let Some((method, challenge)) = challenge else {
        if public {
            return Err(("invalid_request", "PKCE is required for public clients"));
        }
        if !verifier.is_empty() {
            return Err((
                "invalid_request",
                "unexpected code_verifier for token exchange",
            ));
        }
        return Ok(());
    };
    if verifier.is_empty() {
        return Err((
            "invalid_request",
            "expected code_verifier for token exchange",
        ));
    }
    let computed = match method.as_str() {
        "S256" => URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes())),
        _ => verifier.to_owned(),
    };
    if aws_lc_rs::constant_time::verify_slices_are_equal(computed.as_bytes(), challenge.as_bytes())
        .is_err()
    {
        return Err(("invalid_grant", "invalid code_verifier for token exchange"));
    }
    Ok(())
}

/// The claims the granted scopes (those the provider still supports) add, rendered for the
/// entity now. `Err` names two scopes that set the same claim.
async fn scope_claims(
    s: &dyn Storage,
    p: &Provider,
    scopes: &[String],
    entity: &EntityInfo,
    now: i64,
) -> Result<std::result::Result<Map<String, Value>, String>> {
    let mut out = Map::new();
    let mut from: BTreeMap<String, String> = BTreeMap::new();
    for sc in scopes.iter().filter(|sc| p.scopes_supported.contains(sc)) {
        let Some(scope) = get::<Scope>(s, &format!("{SCOPE_PREFIX}{sc}")).await? else {
            continue; // deleted since: it adds nothing
        };
        if scope.template.trim().is_empty() {
            continue;
        }
        let claims = render_json(&scope.template, entity, now)
            .map_err(|e| LogicalError::Internal(format!("error populating template: {e}")))?;
        for (k, v) in claims {
            if SCOPE_RESERVED.contains(&k.as_str()) {
                continue;
            }
            if let Some(other) = from.insert(k.clone(), sc.clone()) {
                return Ok(Err(format!(
                    "found scopes with conflicting top-level claim: claim {k:?} in scopes {sc:?}, {other:?}"
                )));
            }
            out.insert(k, v);
        }
    }
    Ok(Ok(out))
}

/// The HMAC key of access tokens, made on first use (racing servers agree on one).
async fn access_key(s: &dyn Storage) -> Result<hmac::Key> {
    for _ in 0..ATTEMPTS {
        if let Some(k) = get::<AccessKey>(s, ACCESS_KEY).await? {
            let raw = Zeroizing::new(
                STANDARD
                    .decode(k.key.as_bytes())
                    .map_err(|_| LogicalError::internal("the stored access key is malformed"))?,
            );
            return Ok(hmac::Key::new(hmac::HMAC_SHA256, &raw));
        }
        let mut raw = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(&mut raw[..]).map_err(|_| LogicalError::internal("no randomness"))?;
        let k = AccessKey {
            format: FORMAT,
            key: STANDARD.encode(&raw[..]),
        };
        if store_if(s, ACCESS_KEY, &k, 0).await? {
            return Ok(hmac::Key::new(hmac::HMAC_SHA256, &raw[..]));
        }
    }
    Err(LogicalError::Conflict(
        "the access key kept changing while it was being made; try again".into(),
    ))
}

/// What an access token grants; the token is this, encoded, with its HMAC tag.
#[derive(Serialize, Deserialize)]
struct Grant {
    provider: String,
    client_id: String,
    entity_id: String,
    scopes: Vec<String>,
    exp: i64,
}

fn seal_grant(key: &hmac::Key, g: &Grant) -> Result<String> {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(g).map_err(LogicalError::internal)?);
    let tag = hmac::sign(key, body.as_bytes());
    Ok(format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())))
}

fn open_grant(key: &hmac::Key, token: &str) -> Option<Grant> {
    let (body, tag) = token.split_once('.')?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    hmac::verify(key, body.as_bytes(), &tag).ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
}

/// The code exchange, checked in Vault's order. The code is spent by the lookup, whatever
/// follows; a request refused before it (the client's authentication) leaves it usable.
async fn token<B: HasIdentity>(b: Arc<B>, req: Request, f: Fields) -> Reply {
    let mut reply = exchange(b, req, f).await;
    // As OAuth requires: token answers are never cached, and a refused client is told how
    // to authenticate.
    if let Ok(Some(Response { raw: Some(raw), .. })) = &mut reply {
        raw.headers.push(("Pragma".into(), "no-cache".into()));
        if raw.status == 401 {
            raw.headers
                .push(("WWW-Authenticate".into(), "Basic".into()));
        }
    }
    reply
}

async fn exchange<B: HasIdentity>(b: Arc<B>, req: Request, f: Fields) -> Reply {
    let i = f.input::<TokenInput>();
    let s = &*req.storage;
    let bad = |error: &str, d: &str| Ok(Some(oauth_error(400, error, d)));
    let Some(p) = provider(s, &i.name).await? else {
        return bad("invalid_request", "provider not found");
    };
    let client = match authenticate_client(s, &req, &i).await? {
        Ok(c) => c,
        Err(resp) => return Ok(Some(resp)),
    };
    let unauthorized = |d: &str| Ok(Some(oauth_error(401, "invalid_client", d)));
    if !p.allows(&client.client_id) {
        return unauthorized("client is not authorized to use the provider");
    }
    if !oidc::key_allows(s, &client.key, &client.client_id).await? {
        return unauthorized("client is not authorized to use the key");
    }
    if i.grant_type.is_empty() {
        return bad("invalid_request", "grant_type parameter is required");
    }
    if i.grant_type != "authorization_code" {
        return bad("unsupported_grant_type", "unsupported grant_type value");
    }
    if i.code.is_empty() {
        return bad("invalid_request", "code parameter is required");
    }
    let Some(pending) = b.identity().provider_codes.take(&i.code) else {
        return bad("invalid_grant", "authorization grant is invalid or expired");
    };
    if pending.client_id != client.client_id {
        return bad(
            "invalid_grant",
            "authorization code was not issued to the client",
        );
    }
    if pending.provider != i.name {
        return bad(
            "invalid_grant",
            "authorization code was not issued by the provider",
        );
    }
    if i.redirect_uri.is_empty() {
        return bad("invalid_request", "redirect_uri parameter is required");
    }
    if pending.redirect_uri != i.redirect_uri {
        return bad(
            "invalid_grant",
            "redirect_uri does not match the redirect_uri used in the authorization request",
        );
    }
    let Some(resolved) = b.identity().resolve(&pending.entity_id) else {
        return bad(
            "invalid_request",
            "identity entity associated with the request not found",
        );
    };
    let entity = &resolved.info;
    if entity.disabled || !entity_assigned(s, &client, entity).await? {
        return bad(
            "invalid_request",
            "identity entity not authorized by client assignment",
        );
    }
    if let Err((error, d)) = check_pkce(
        &pending.code_challenge,
        &i.code_verifier,
        client.client_type == ClientType::Public,
    ) {
        return bad(error, d);
    }
    let now = now();
    let mut claims = match scope_claims(s, &p, &pending.scopes, entity, now).await? {
        Ok(c) => c,
        Err(conflict) => return bad("invalid_request", &conflict),
    };
    let Some(key) = oidc::signing_key(s, &client.key, now).await? else {
        return Ok(Some(oauth_error(
            500,
            "server_error",
            format!("the client's key {:?} does not exist", client.key),
        )));
    };
    let access = seal_grant(
        &access_key(s).await?,
        &Grant {
            provider: i.name.clone(),
            client_id: client.client_id.clone(),
            entity_id: entity.id.clone(),
            scopes: pending.scopes.clone(),
            exp: now.saturating_add(secs_i64(client.access_token_ttl)),
        },
    )?;
    claims.insert("iss".into(), json!(issuer_of(&req, &i.name, &p)));
    claims.insert("sub".into(), json!(entity.id));
    claims.insert("aud".into(), json!(client.client_id));
    claims.insert("iat".into(), json!(now));
    claims.insert(
        "exp".into(),
        json!(now.saturating_add(secs_i64(client.id_token_ttl))),
    );
    claims.insert("namespace".into(), json!("root"));
    if let Some(n) = &pending.nonce {
        claims.insert("nonce".into(), json!(n));
    }
    if let Some(t) = pending.auth_time {
        claims.insert("auth_time".into(), json!(t));
    }
    claims.insert("at_hash".into(), json!(oidc::half_hash(&key, &access)));
    claims.insert("c_hash".into(), json!(oidc::half_hash(&key, &i.code)));
    let id_token = oidc::sign_with(&key, &claims)?;
    Ok(Some(oidc::raw_json(&json!({
        "access_token": access,
        "expires_in": client.access_token_ttl,
        "id_token": id_token,
        "token_type": "Bearer",
    }))))
}

/// The claims of an access token's entity, as they are now. A 400 or 401 says why in
/// `WWW-Authenticate`, as RFC 6750 has it.
async fn userinfo<B: HasIdentity>(b: Arc<B>, req: Request, f: Fields) -> Reply {
    let mut reply = claims_of_access_token(b, req, f).await;
    if let Ok(Some(Response { raw: Some(raw), .. })) = &mut reply
        && matches!(raw.status, 400 | 401)
        && let Ok(body) = serde_json::from_slice::<Value>(&raw.body)
    {
        let quoted = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .replace(['"', '\\'], "'")
        };
        raw.headers.push((
            "WWW-Authenticate".into(),
            format!(
                "Bearer error=\"{}\",error_description=\"{}\"",
                quoted("error"),
                quoted("error_description")
            ),
        ));
    }
    reply
}

async fn claims_of_access_token<B: HasIdentity>(b: Arc<B>, req: Request, f: Fields) -> Reply {
    let name = f.input::<NameInput>().name;
    let s = &*req.storage;
    let Some(p) = provider(s, &name).await? else {
        return Ok(Some(oauth_error(
            400,
            "invalid_request",
            "provider not found",
        )));
    };
    let invalid_token = || Ok(Some(oauth_error(401, "invalid_token", "permission denied")));
    let denied = |d: &str| Ok(Some(oauth_error(403, "access_denied", d)));
    let Some(token) = header(&req, "authorization")
        .filter(|h| h.len() > 7 && h[..7].eq_ignore_ascii_case("bearer "))
        .map(|h| Zeroizing::new(h[7..].trim().to_owned()))
    else {
        return invalid_token();
    };
    let Some(g) = open_grant(&access_key(s).await?, &token) else {
        return invalid_token();
    };
    let now = now();
    // An expired token, or one another provider issued, is as good as none.
    if g.provider != name || now >= g.exp {
        return invalid_token();
    }
    let Some(client) = client_by_id(s, &g.client_id).await? else {
        return denied("client not found");
    };
    let Some(resolved) = b.identity().resolve(&g.entity_id) else {
        return denied("identity entity must be associated with the request");
    };
    if resolved.info.disabled {
        return invalid_token();
    }
    if !entity_assigned(s, &client, &resolved.info).await? {
        return denied("identity entity not authorized by client assignment");
    }
    if !p.allows(&client.client_id) {
        return denied("client is not authorized to use the provider");
    }
    let mut claims = match scope_claims(s, &p, &g.scopes, &resolved.info, now).await? {
        Ok(c) => c,
        Err(conflict) => return Ok(Some(oauth_error(400, "invalid_request", conflict))),
    };
    claims.insert("sub".into(), json!(g.entity_id));
    Ok(Some(oidc::raw_json(&Value::Object(claims))))
}

// --- paths ----------------------------------------------------------------------------------

/// The `identity/oidc/{scope,assignment,client,provider}` paths and the provider flow.
pub(crate) fn paths<B: HasIdentity + Send + Sync + 'static>() -> Vec<Path<B>> {
    use Operation::{Delete, List, Read, Update};
    vec![
        Path::new("oidc/scope/")
            .op(List, |_b, req, _f| Box::pin(oidc::list_prefix(req, SCOPE_PREFIX, None)))
            .help("List scopes.", ""),
        Path::new("oidc/scope/{name}")
            .input::<ScopeInput>()
            .existence(|_b, req, f| {
                let name = f.input::<ScopeInput>().name;
                Box::pin(oidc::exists(req, SCOPE_PREFIX, name))
            })
            .op(Read, |_b, req, f| Box::pin(read_scope(req, f)))
            .op(Update, |_b, req, f| Box::pin(write_scope(req, f)))
            .op(Delete, |_b, req, f| Box::pin(delete_scope(req, f)))
            .help(
                "Create, read, update or delete an OIDC provider scope.",
                "A scope's template adds claims to the ID tokens and userinfo answers of the clients that request it. \"openid\" is reserved. A scope a provider supports cannot be deleted.",
            ),
        Path::new("oidc/assignment/")
            .op(List, |_b, req, _f| Box::pin(oidc::list_prefix(req, ASSIGNMENT_PREFIX, Some(ALLOW_ALL))))
            .help("List assignments.", ""),
        Path::new("oidc/assignment/{name}")
            .input::<AssignmentInput>()
            .existence(|_b, req, f| {
                let name = f.input::<AssignmentInput>().name;
                Box::pin(async move {
                    Ok(name == ALLOW_ALL || oidc::exists(req, ASSIGNMENT_PREFIX, name).await?)
                })
            })
            .op(Read, |_b, req, f| Box::pin(read_assignment(req, f)))
            .op(Update, |_b, req, f| Box::pin(write_assignment(req, f)))
            .op(Delete, |_b, req, f| Box::pin(delete_assignment(req, f)))
            .help(
                "Create, read, update or delete an assignment.",
                "An assignment names the entities and groups allowed to use the clients that reference it. The built-in \"allow_all\" allows every entity and cannot be changed or deleted; an assignment a client references cannot be deleted.",
            ),
        Path::new("oidc/client/")
            .op(List, |_b, req, _f| Box::pin(list_clients(req)))
            .help("List clients, with their settings in key_info.", ""),
        Path::new("oidc/client/{name}")
            .input::<ClientInput>()
            .existence(|_b, req, f| {
                let name = f.input::<ClientInput>().name;
                Box::pin(oidc::exists(req, CLIENT_PREFIX, name))
            })
            .op(Read, |_b, req, f| Box::pin(read_client(req, f)))
            .op(Update, |_b, req, f| Box::pin(write_client(req, f)))
            .op(Delete, |_b, req, f| {
                Box::pin(async move {
                    let name = f.input::<ClientInput>().name;
                    req.storage.delete(&format!("{CLIENT_PREFIX}{name}")).await?;
                    Ok(None)
                })
            })
            .help(
                "Create, read, update or delete an OIDC client.",
                "A client is an application that logs users in through a provider. Its client_id (and, for a confidential client, client_secret) are generated at creation; its key signs its ID tokens; its assignments say who may use it.",
            ),
        Path::new("oidc/provider/")
            .input::<ProviderListInput>()
            .op(List, |_b, req, f| Box::pin(list_providers(req, f)))
            .help(
                "List providers, with their settings in key_info.",
                "allowed_client_id limits the list to the providers that allow that client.",
            ),
        Path::new("oidc/provider/{name}/.well-known/openid-configuration")
            .input::<NameInput>()
            .op(Read, |_b, req, f| Box::pin(discovery(req, f)))
            .help("The provider's OpenID discovery document (unauthenticated).", ""),
        Path::new("oidc/provider/{name}/.well-known/keys")
            .input::<NameInput>()
            .op(Read, |_b, req, f| Box::pin(provider_keys(req, f)))
            .help(
                "The public keys that verify the provider's ID tokens (unauthenticated).",
                "The keys of the clients the provider allows, with rotated-out keys until their verification_ttl runs out.",
            ),
        Path::new("oidc/provider/{name}/authorize")
            .input::<AuthorizeInput>()
            .op(Read, |b, req, f| Box::pin(authorize(b, req, f)))
            .op(Update, |b, req, f| Box::pin(authorize(b, req, f)))
            .help(
                "The authorization endpoint: a code for the caller's entity.",
                "Needs a Tresor token with an entity (the default policy grants this path). Checks the client, redirect_uri, scope (with openid), response_type=code, PKCE, max_age and the client's assignments, and answers {code, state}. A code is redeemed once, within 5 minutes, at the token endpoint.",
            ),
        Path::new("oidc/provider/{name}/token")
            .input::<TokenInput>()
            .op(Update, |b, req, f| Box::pin(token(b, req, f)))
            .help(
                "The token endpoint: a code for an ID token and an access token (unauthenticated).",
                "The client authenticates with HTTP Basic or client_id and client_secret in the body; a public client sends the PKCE code_verifier instead. Errors are OAuth's JSON.",
            ),
        Path::new("oidc/provider/{name}/userinfo")
            .input::<NameInput>()
            .op(Read, |b, req, f| Box::pin(userinfo(b, req, f)))
            .op(Update, |b, req, f| Box::pin(userinfo(b, req, f)))
            .help(
                "The userinfo endpoint: the claims of an access token's entity (unauthenticated).",
                "Send the access token as Authorization: Bearer. Answers sub and the claims of the scopes the token was granted, rendered for the entity as it is now.",
            ),
        Path::new("oidc/provider/{name}")
            .input::<ProviderInput>()
            .existence(|_b, req, f| {
                let name = f.input::<ProviderInput>().name;
                Box::pin(async move {
                    Ok(name == DEFAULT_PROVIDER || oidc::exists(req, PROVIDER_PREFIX, name).await?)
                })
            })
            .op(Read, |_b, req, f| Box::pin(read_provider(req, f)))
            .op(Update, |_b, req, f| Box::pin(write_provider(req, f)))
            .op(Delete, |_b, req, f| Box::pin(delete_provider(req, f)))
            .help(
                "Create, read, update or delete an OIDC provider.",
                "A provider serves the OIDC flow for the clients it allows, with the scopes it supports. The built-in \"default\" provider allows every client; it can be changed but not deleted.",
            ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_and_plain() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let s256 = Some((
            "S256".to_owned(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
        ));
        assert_eq!(check_pkce(&s256, verifier, false), Ok(()));
        assert_eq!(
            check_pkce(&s256, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK", false),
            Err(("invalid_grant", "invalid code_verifier for token exchange"))
        );
        assert_eq!(
            check_pkce(&s256, "", false),
            Err((
                "invalid_request",
                "expected code_verifier for token exchange"
            ))
        );
        let plain = Some(("plain".to_owned(), verifier.to_owned()));
        assert_eq!(check_pkce(&plain, verifier, true), Ok(()));
        assert!(check_pkce(&plain, &verifier[1..], true).is_err());
        // No challenge: fine for a confidential client sending no verifier, and nothing else.
        assert_eq!(check_pkce(&None, "", false), Ok(()));
        assert_eq!(
            check_pkce(&None, verifier, false),
            Err((
                "invalid_request",
                "unexpected code_verifier for token exchange"
            ))
        );
        assert_eq!(
            check_pkce(&None, "", true),
            Err(("invalid_request", "PKCE is required for public clients"))
        );
    }

    #[test]
    fn access_tokens_are_bound_to_their_key_and_contents() {
        let k = hmac::Key::new(hmac::HMAC_SHA256, &[7u8; 32]);
        let other = hmac::Key::new(hmac::HMAC_SHA256, &[8u8; 32]);
        let g = Grant {
            provider: "p".into(),
            client_id: "c".into(),
            entity_id: "e".into(),
            scopes: vec!["openid".into()],
            exp: 10,
        };
        let t = seal_grant(&k, &g).unwrap();
        assert_eq!(open_grant(&k, &t).unwrap().entity_id, "e");
        assert!(open_grant(&other, &t).is_none());
        // Another entity's ID spliced into the body breaks the tag.
        let (body, tag) = t.split_once('.').unwrap();
        let forged_body = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Grant {
                entity_id: "admin".into(),
                ..g
            })
            .unwrap(),
        );
        assert_ne!(forged_body, body);
        assert!(open_grant(&k, &format!("{forged_body}.{tag}")).is_none());
        assert!(open_grant(&k, "garbage").is_none());
    }

    #[test]
    fn codes_are_taken_once_and_expire() {
        let codes = Codes::default();
        let pending = |expires| Pending {
            provider: "p".into(),
            client_id: "c".into(),
            entity_id: "e".into(),
            redirect_uri: "r".into(),
            scopes: Vec::new(),
            nonce: None,
            code_challenge: None,
            auth_time: None,
            expires,
        };
        codes
            .insert("a", pending(Instant::now() + CODE_TTL))
            .unwrap();
        assert!(codes.take("a").is_some());
        assert!(codes.take("a").is_none());
        codes.insert("b", pending(Instant::now())).unwrap();
        assert!(codes.take("b").is_none());
    }

    #[test]
    fn one_entity_cannot_crowd_out_the_others() {
        let codes = Codes::default();
        let pending = |entity: &str| Pending {
            provider: "p".into(),
            client_id: "c".into(),
            entity_id: entity.into(),
            redirect_uri: "r".into(),
            scopes: Vec::new(),
            nonce: None,
            code_challenge: None,
            auth_time: None,
            expires: Instant::now() + CODE_TTL,
        };
        // A flood far past the server's limit from one entity keeps only its newest codes.
        for n in 0..(MAX_CODES + 100) {
            codes.insert(&format!("m{n}"), pending("mallory")).unwrap();
        }
        assert_eq!(codes.0.lock().codes.len(), CODES_PER_ENTITY);
        assert!(codes.take("m0").is_none(), "the oldest was replaced");
        assert!(codes.take(&format!("m{}", MAX_CODES + 99)).is_some());
        // Everyone else still gets codes.
        codes.insert("alice", pending("alice")).unwrap();
        assert!(codes.take("alice").is_some());
    }

    #[test]
    fn a_client_never_prints_its_secret() {
        let c = Client {
            format: FORMAT,
            key: "k".into(),
            redirect_uris: vec!["https://app/cb".into()],
            assignments: vec![ALLOW_ALL.into()],
            client_type: ClientType::Confidential,
            id_token_ttl: 60,
            access_token_ttl: 60,
            client_id: "cid".into(),
            client_secret: "hvo_secret_TOPSECRET".into(),
        };
        let printed = format!("{c:?} {c:#?}");
        assert!(
            printed.contains("cid") && !printed.contains("TOPSECRET"),
            "{printed}"
        );
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        assert_eq!(percent_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(percent_decode("%zz").as_deref(), Some("%zz"));
        assert_eq!(percent_decode("%ff"), None);
    }
}
