//! `tresor pki`: the PKI helpers Vault's CLI has. `issue` makes a new intermediate in a child
//! mount signed by a parent issuer (generate a key and CSR in the child, sign it with the
//! parent, import the certificate and chain back, name it); `verify-sign` says whether one
//! issuer signed another and which checks agree; `list-intermediates` says which issuers a
//! parent signed. Everything else in the PKI engine is `tresor read/write/list`.
//!
//! Issuers are named by their full path, `MOUNT/issuer/REF` (`/pki/issuer/default`); the
//! certificates are read from the unauthenticated `issuer/REF/json` endpoint and checked here
//! (names, key identifiers, the signature itself) with `x509-parser`, not with the engine's
//! own X.509 code: the client checks the server, it does not share its code paths.

use serde_json::{Map, Value, json};

use super::{Cli, CliError, CmdResult, Usage, exact_args, min_args, remote, sanitize_path};
use crate::client::Client;
use crate::flags::{Kind, flag};
use crate::format::{self, Format};

const ISSUE: Usage = Usage {
    text: "Usage: tresor pki issue [options] PARENT CHILD_MOUNT K=V...

  Creates a new intermediate CA (an issuer) in CHILD_MOUNT, signed by the issuer PARENT
  (a full issuer path such as /pki/issuer/default). The K=V options are those of the
  child's intermediate/generate and the parent's sign-intermediate endpoints (common_name,
  key_type, ttl, ...); at least one is required.

      $ tresor pki issue -issuer_name=int /pki/issuer/default /pki_int/ common_name=Int",
    flags: &[
        flag(
            "type",
            Kind::Str,
            "Key handling for the new issuer: internal (default), exported or existing.",
        ),
        flag("issuer_name", Kind::Str, "Name of the new issuer."),
        flag("key_name", Kind::Str, "Name of the new issuer's key."),
    ],
};

const VERIFY_SIGN: Usage = Usage {
    text: "Usage: tresor pki verify-sign [options] ISSUER ISSUED

  Checks whether the issuer at ISSUER signed the issuer at ISSUED (both full issuer paths,
  such as /pki/issuer/default and /pki_int/issuer/int) and prints each check: subject,
  chain path, trust, key identifier and signature.",
    flags: &[],
};

const LIST_INTERMEDIATES: Usage = Usage {
    text: "Usage: tresor pki list-intermediates [options] PARENT [CHILD...]

  Tells, for each CHILD issuer (full issuer paths), whether PARENT signed it. Without
  CHILD arguments every issuer of every PKI mount the token can list is checked.",
    flags: &[],
};

/// `MOUNT/issuer/REF` split into its mount and reference.
fn issuer_path(arg: &str) -> Result<(String, String), CliError> {
    let p = sanitize_path(arg);
    match p.rsplit_once("/issuer/") {
        Some((mount, reference))
            if !mount.is_empty() && !reference.is_empty() && !reference.contains('/') =>
        {
            Ok((mount.to_string(), reference.to_string()))
        }
        _ => Err(CliError::Usage(format!(
            "{arg:?} is not an issuer path: expected MOUNT/issuer/REF, such as /pki/issuer/default"
        ))),
    }
}

/// The facts of one certificate that the checks use.
struct Cert {
    der: Vec<u8>,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    subject_key_id: Option<Vec<u8>>,
    authority_key_id: Option<Vec<u8>>,
    is_ca: bool,
}

impl Cert {
    fn parse(der: Vec<u8>, what: &str) -> Result<Cert, CliError> {
        use x509_parser::extensions::ParsedExtension;
        let bad =
            |e: String| CliError::Local(format!("Error parsing the certificate of {what}: {e}"));
        let (_, c) = x509_parser::parse_x509_certificate(&der).map_err(|e| bad(e.to_string()))?;
        let mut ski = None;
        let mut aki = None;
        for ext in c.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    aki = a.key_identifier.as_ref().map(|k| k.0.to_vec());
                }
                _ => {}
            }
        }
        let is_ca = c
            .basic_constraints()
            .map_err(|e| bad(e.to_string()))?
            .is_some_and(|b| b.value.ca);
        Ok(Cert {
            subject: c.subject().as_raw().to_vec(),
            issuer: c.issuer().as_raw().to_vec(),
            subject_key_id: ski,
            authority_key_id: aki,
            is_ca,
            der: der.clone(),
        })
    }

    /// Whether this certificate carries a valid signature by `parent`'s key.
    fn signed_by(&self, parent: &Cert) -> bool {
        let (Ok((_, child)), Ok((_, parent))) = (
            x509_parser::parse_x509_certificate(&self.der),
            x509_parser::parse_x509_certificate(&parent.der),
        ) else {
            return false;
        };
        child.verify_signature(Some(parent.public_key())).is_ok()
    }
}

/// One issuer as fetched: its certificate and the DER of its chain.
struct Fetched {
    cert: Cert,
    chain: Vec<Vec<u8>>,
}

/// The DER of every certificate in a PEM text.
fn certs_of(text: &str, what: &str) -> Result<Vec<Vec<u8>>, CliError> {
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
        let pem = pem.map_err(|e| {
            CliError::Local(format!("Error parsing the certificates of {what}: {e}"))
        })?;
        if pem.label == "CERTIFICATE" {
            out.push(pem.contents);
        }
    }
    Ok(out)
}

fn fetch_issuer(client: &Client, path: &str) -> Result<Fetched, CliError> {
    let (mount, reference) = issuer_path(path)?;
    let api = format!("{mount}/issuer/{reference}/json");
    let secret = client
        .read(&api, &[])
        .map_err(|e| remote(format_args!("fetching issuer {path}"), e))?
        .ok_or_else(|| CliError::Remote(format!("No issuer found at {path}")))?;
    let pem = secret
        .data_str("certificate")
        .ok_or_else(|| CliError::Remote(format!("Issuer {path} has no certificate")))?;
    let der = certs_of(pem, path)?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::Remote(format!("Issuer {path} has no certificate")))?;
    let cert = Cert::parse(der, path)?;
    let mut chain = Vec::new();
    for item in secret
        .data()
        .get("ca_chain")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(text) = item.as_str() {
            chain.extend(certs_of(text, path)?);
        }
    }
    Ok(Fetched { cert, chain })
}

/// The checks `verify-sign` reports, in the order it prints them.
fn checks(issuer: &Fetched, issued: &Fetched) -> Vec<(&'static str, bool)> {
    let (p, c) = (&issuer.cert, &issued.cert);
    let subject = c.issuer == p.subject;
    let signature = c.signed_by(p);
    let key_id = c.authority_key_id.is_some() && c.authority_key_id == p.subject_key_id;
    let path = issued.chain.contains(&p.der);
    let trust = subject && signature && p.is_ca;
    vec![
        ("subject_match", subject),
        ("path_match", path),
        ("trust_match", trust),
        ("key_id_match", key_id),
        ("signature_match", signature),
    ]
}

/// Whether `parent` signed `child` by every check but the chain path (a chain may be
/// assembled elsewhere).
fn signed(parent: &Fetched, child: &Fetched) -> bool {
    checks(parent, child)
        .iter()
        .filter(|(name, _)| *name != "path_match")
        .all(|(_, ok)| *ok)
}

fn print_bool_map(cli: &mut Cli<'_, '_>, header: [&str; 2], rows: &[(String, bool)]) -> CmdResult {
    match cli.format {
        Format::Json | Format::Yaml => {
            let map: Map<String, Value> = rows
                .iter()
                .map(|(k, v)| (k.clone(), Value::Bool(*v)))
                .collect();
            cli.print_map(&map)
        }
        Format::Table | Format::Raw => {
            let rows: Vec<Vec<String>> = rows
                .iter()
                .map(|(k, v)| vec![k.clone(), v.to_string()])
                .collect();
            cli.out(&format::table(&header, &rows));
            Ok(0)
        }
    }
}

/// `tresor pki verify-sign`.
pub fn verify_sign(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&VERIFY_SIGN, args)?;
    exact_args(&p.args, 2)?;
    let client = cli.client(&p)?;
    let issuer = fetch_issuer(&client, &p.args[0])?;
    let issued = fetch_issuer(&client, &p.args[1])?;
    let rows: Vec<(String, bool)> = checks(&issuer, &issued)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    if cli.is_table() && cli.field.is_none() {
        cli.outln(&format!("issuer:{}", sanitize_path(&p.args[0])));
        cli.outln(&format!("issued:{}", sanitize_path(&p.args[1])));
        cli.outln("");
    }
    print_bool_map(cli, ["field", "value"], &rows)
}

/// Every issuer path of every PKI mount the token can list.
fn all_issuers(client: &Client) -> Result<Vec<String>, CliError> {
    let mounts = client
        .read("sys/mounts", &[])
        .map_err(|e| remote("listing secrets engines", e))?
        .map(|s| s.data())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (path, info) in &mounts {
        if info.get("type").and_then(Value::as_str) != Some("pki") {
            continue;
        }
        let mount = sanitize_path(path);
        let Ok(Some(list)) = client.list(&format!("{mount}/issuers")) else {
            continue;
        };
        for id in list
            .data()
            .get("keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            out.push(format!("{mount}/issuer/{id}"));
        }
    }
    out.sort();
    Ok(out)
}

/// `tresor pki list-intermediates`.
pub fn list_intermediates(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&LIST_INTERMEDIATES, args)?;
    min_args(&p.args, 1)?;
    let client = cli.client(&p)?;
    let parent = fetch_issuer(&client, &p.args[0])?;
    let children: Vec<String> = if p.args.len() > 1 {
        p.args[1..].iter().map(|a| sanitize_path(a)).collect()
    } else {
        all_issuers(&client)?
    };
    let mut rows = Vec::new();
    for child in children {
        let fetched = fetch_issuer(&client, &child)?;
        if fetched.cert.der == parent.cert.der {
            continue; // the parent itself
        }
        rows.push((child, signed(&parent, &fetched)));
    }
    print_bool_map(cli, ["intermediate", "match?"], &rows)
}

/// `tresor pki issue`.
pub fn issue(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&ISSUE, args)?;
    min_args(&p.args, 2)?;
    let (parent_mount, parent_ref) = issuer_path(&p.args[0])?;
    let child = sanitize_path(&p.args[1]);
    let data = cli.kv_data(&p.args[2..])?;
    if data.is_empty() {
        return Err(CliError::Usage(
            "At least one option (K=V) must be set, such as common_name".to_string(),
        ));
    }
    let kind = p.str("type").unwrap_or("internal").to_string();
    if !["internal", "exported", "existing"].contains(&kind.as_str()) {
        return Err(CliError::Usage(format!(
            "Invalid -type {kind:?}: expected internal, exported or existing"
        )));
    }
    let client = cli.client(&p)?;

    // 1. A key and CSR in the child mount.
    let mut gen_body = data.clone();
    if let Some(name) = p.str("key_name") {
        gen_body.insert("key_name".into(), json!(name));
    }
    let generated = client
        .write(
            &format!("{child}/intermediate/generate/{kind}"),
            Value::Object(gen_body),
        )
        .map_err(|e| {
            remote(
                format_args!("generating the intermediate's key and CSR in {child}"),
                e,
            )
        })?
        .ok_or_else(|| CliError::Remote(format!("No CSR returned by {child}")))?;
    let csr = generated
        .data_str("csr")
        .ok_or_else(|| CliError::Remote(format!("No CSR returned by {child}")))?
        .to_string();
    let key_id = generated.data_str("key_id").unwrap_or_default().to_string();

    // 2. Signed by the parent.
    let mut sign_body = data;
    sign_body.insert("csr".into(), json!(csr));
    let signed = client
        .write(
            &format!("{parent_mount}/issuer/{parent_ref}/sign-intermediate"),
            Value::Object(sign_body),
        )
        .map_err(|e| {
            remote(
                format_args!("signing the intermediate with {}", p.args[0]),
                e,
            )
        })?
        .ok_or_else(|| CliError::Remote("No certificate returned by the parent".into()))?;
    let signed_data = signed.data();
    let certificate = signed_data
        .get("certificate")
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::Remote("No certificate returned by the parent".into()))?
        .to_string();
    let mut bundle = vec![certificate.clone()];
    for c in signed_data
        .get("ca_chain")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if c.trim() != certificate.trim() {
            bundle.push(c.to_string());
        }
    }

    // 3. The certificate and its chain back into the child; find the new issuer.
    let imported = client
        .write(
            &format!("{child}/issuers/import/cert"),
            json!({"pem_bundle": bundle.join("\n")}),
        )
        .map_err(|e| {
            remote(
                format_args!("importing the signed intermediate into {child}"),
                e,
            )
        })?
        .map(|s| s.data())
        .unwrap_or_default();
    let mapping = imported
        .get("mapping")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let by_key = mapping
        .iter()
        .find(|(_, k)| !key_id.is_empty() && k.as_str() == Some(key_id.as_str()))
        .map(|(id, _)| id.clone());
    let issuer_id = match by_key {
        Some(id) => id,
        None => find_issuer_by_cert(&client, &child, &certificate)?,
    };

    // 4. Its name, then the issuer as the child mount now has it.
    if let Some(name) = p.str("issuer_name") {
        client
            .write(
                &format!("{child}/issuer/{issuer_id}"),
                json!({"issuer_name": name}),
            )
            .map_err(|e| remote(format_args!("naming issuer {issuer_id}"), e))?;
    }
    let issuer = client
        .read(&format!("{child}/issuer/{issuer_id}"), &[])
        .map_err(|e| remote(format_args!("reading issuer {issuer_id}"), e))?
        .ok_or_else(|| CliError::Remote(format!("No issuer {issuer_id} in {child}")))?;
    cli.print_secret(&issuer)
}

/// The id of the issuer in `mount` whose certificate is `pem`.
fn find_issuer_by_cert(client: &Client, mount: &str, pem: &str) -> Result<String, CliError> {
    let want = certs_of(pem, "the signed intermediate")?;
    let list = client
        .list(&format!("{mount}/issuers"))
        .map_err(|e| remote(format_args!("listing the issuers of {mount}"), e))?
        .map(|s| s.data())
        .unwrap_or_default();
    for id in list
        .get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let f = fetch_issuer(client, &format!("{mount}/issuer/{id}"))?;
        if want.first() == Some(&f.cert.der) {
            return Ok(id.to_string());
        }
    }
    Err(CliError::Remote(format!(
        "The signed intermediate was not found among the issuers of {mount}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_paths_split_into_mount_and_reference() {
        assert_eq!(
            issuer_path("/pki/issuer/default").unwrap(),
            ("pki".to_string(), "default".to_string())
        );
        assert_eq!(
            issuer_path("etcd/c1/pki/issuer/int/").unwrap(),
            ("etcd/c1/pki".to_string(), "int".to_string())
        );
        for bad in ["/pki/", "/pki/roles/web", "issuer/x", "/pki/issuer/a/b"] {
            assert!(matches!(issuer_path(bad), Err(CliError::Usage(_))), "{bad}");
        }
    }
}
