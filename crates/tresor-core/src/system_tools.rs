//! `sys/tools/random` and `sys/tools/hash` of the system backend: random bytes from the
//! platform's generator, and SHA-2 / SHA-3 digests of base64 input.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;
use tresor_sdk::framework::{Fields, Path};
use tresor_sdk::{LogicalError, Operation, Request, Response, Result};

use crate::system::Sys;

/// The most bytes one `sys/tools/random` request returns (Vault's limit for the seal and
/// mixed sources, applied to every source here).
pub const MAX_RANDOM_BYTES: i64 = 128 * 1024;

const SOURCES: [&str; 3] = ["platform", "seal", "all"];

fn encode(bytes: &[u8], format: &str) -> Result<String> {
    match format {
        "hex" => Ok(hex::encode(bytes)),
        "base64" => Ok(B64.encode(bytes)),
        other => Err(LogicalError::invalid(format!(
            "unsupported encoding format {other:?}; must be \"hex\" or \"base64\""
        ))),
    }
}

/// The segments of the request path after `base` (the values a path's captures took).
fn url_segments(req: &Request, base: &str) -> Vec<String> {
    req.path
        .strip_prefix(base)
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

tresor_sdk::input! {
    /// `sys/tools/random[/:source][/:bytes]`.
    struct RandomInput {
        bytes: Int, "The number of bytes to return (1 to 131072; also the last segment of the URL).", default = 32;
        format: Str, "The encoding of the bytes: base64 or hex.", default = "base64";
        source: Str, "Where the bytes come from: platform, seal or all (all three are the platform's generator here).", default = "platform";
    }
}

tresor_sdk::input! {
    /// `sys/tools/hash[/:algorithm]`.
    struct HashInput {
        input: Str, "The data to hash, base64-encoded.";
        algorithm: Str, "sha2-224, sha2-256, sha2-384, sha2-512, sha3-224, sha3-256, sha3-384 or sha3-512 (also the last segment of the URL).", default = "sha2-256";
        format: Str, "The encoding of the digest: hex or base64.", default = "hex";
    }
}

/// `tools/random[/:source][/:bytes]`. One path segment is a source if it names one, else a
/// byte count; two are source then bytes. Values in the URL win over the body's.
async fn random(req: Request, f: Fields) -> Result<Option<Response>> {
    let input: RandomInput = f.input();
    let segments = url_segments(&req, "tools/random");
    let (url_source, url_bytes) = match segments.as_slice() {
        [a, b] => (Some(a.clone()), Some(b.clone())),
        [a] if SOURCES.contains(&a.as_str()) => (Some(a.clone()), None),
        [a] => (None, Some(a.clone())),
        _ => (None, None),
    };
    let bytes = match url_bytes {
        Some(b) => b.trim().parse::<i64>().map_err(|_| {
            LogicalError::invalid(format!(
                "the byte count in the path, {b:?}, is not an integer"
            ))
        })?,
        None => input.bytes,
    };
    let source = url_source.unwrap_or(input.source);
    let format = input.format;
    if bytes < 1 {
        return Err(LogicalError::invalid("'bytes' cannot be less than 1"));
    }
    if bytes > MAX_RANDOM_BYTES {
        return Err(LogicalError::invalid(format!(
            "'bytes' cannot be more than {MAX_RANDOM_BYTES}"
        )));
    }
    if !SOURCES.contains(&source.as_str()) {
        return Err(LogicalError::invalid(format!(
            "unsupported entropy source {source:?}; must be \"platform\", \"seal\" or \"all\""
        )));
    }
    encode(&[], &format)?;
    let mut buf = vec![0u8; bytes as usize];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| LogicalError::internal("no randomness"))?;
    let mut r = Response::json(json!({"random_bytes": encode(&buf, &format)?}));
    if source == "seal" {
        // A Shamir seal has no entropy of its own to add.
        r.warnings.push(
            "the seal has no entropy source; the bytes come from the platform's generator".into(),
        );
    }
    Ok(Some(r))
}

/// The digest of `input` with one of Vault's algorithm names.
pub fn digest(algorithm: &str, input: &[u8]) -> Option<Vec<u8>> {
    use aws_lc_rs::digest as d;
    use sha3::Digest as _;
    let sha2 = |alg: &'static d::Algorithm| d::digest(alg, input).as_ref().to_vec();
    Some(match algorithm {
        "sha2-224" => sha2(&d::SHA224),
        "sha2-256" => sha2(&d::SHA256),
        "sha2-384" => sha2(&d::SHA384),
        "sha2-512" => sha2(&d::SHA512),
        "sha3-224" => sha3::Sha3_224::digest(input).to_vec(),
        "sha3-256" => sha3::Sha3_256::digest(input).to_vec(),
        "sha3-384" => sha3::Sha3_384::digest(input).to_vec(),
        "sha3-512" => sha3::Sha3_512::digest(input).to_vec(),
        _ => return None,
    })
}

/// `tools/hash[/:algorithm]`: `input` is base64; the algorithm in the URL wins.
async fn hash(req: Request, f: Fields) -> Result<Option<Response>> {
    let HashInput {
        input,
        algorithm,
        format,
    } = f.input();
    let algorithm = url_segments(&req, "tools/hash").pop().unwrap_or(algorithm);
    let input = B64
        .decode(input.trim())
        .map_err(|e| LogicalError::invalid(format!("unable to decode input as base64: {e}")))?;
    encode(&[], &format)?;
    let sum = digest(&algorithm, &input)
        .ok_or_else(|| LogicalError::invalid(format!("unsupported algorithm {algorithm}")))?;
    Ok(Some(Response::json(json!({"sum": encode(&sum, &format)?}))))
}

fn random_path(pattern: &'static str) -> Path<Sys> {
    Path::new(pattern)
        .input::<RandomInput>()
        .op(Operation::Update, |_, r, f| Box::pin(random(r, f)))
        .op(Operation::Read, |_, r, f| Box::pin(random(r, f)))
        .help(
            "Generate random bytes.",
            "Returns `bytes` random bytes from the platform's cryptographic generator, encoded as `format`. The URL may name the source and the count: sys/tools/random/16, sys/tools/random/all/16.",
        )
}

fn hash_path(pattern: &'static str) -> Path<Sys> {
    Path::new(pattern)
        .input::<HashInput>()
        .op(Operation::Update, |_, r, f| Box::pin(hash(r, f)))
        .help(
            "Hash data.",
            "Returns the digest of the base64-decoded `input` under `algorithm`, encoded as `format`.",
        )
}

pub(crate) fn paths() -> Vec<Path<Sys>> {
    vec![
        random_path("tools/random"),
        random_path("tools/random/{source_or_bytes}"),
        random_path("tools/random/{source}/{urlbytes}"),
        hash_path("tools/hash"),
        hash_path("tools/hash/{urlalgorithm}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::digest;

    #[test]
    fn digests_match_known_answers() {
        let h = |alg: &str| hex::encode(digest(alg, b"hello").unwrap());
        assert_eq!(
            h("sha2-256"),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(
            h("sha2-224"),
            "ea09ae9cc6768c50fcee903ed054556e5bfc8347907f12598aa24193"
        );
        assert_eq!(
            h("sha3-256"),
            "3338be694f50c5f338814986cdf0686453a888b84f424d792af4b9202398f392"
        );
        assert_eq!(
            h("sha3-224"),
            "b87f88c72702fff1748e58b87e9141a42c0dbedc29a78cb0d4a5cd81"
        );
        assert!(digest("md5", b"x").is_none());
    }
}
