//! `export/:type/:name[/:version]`.

use aws_lc_rs::encoding::AsDer;
use serde_json::{Map, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::{Request, Response, Result};

use crate::engine::{Engine, mount_id};
use crate::inputs::{ExportInput, ExportVersionInput};
use crate::key::{Prepared, Version};
use crate::keytype::KeyType;
use crate::util::{b64, bad, internal, pem, pkcs8_inner};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExportType {
    Encryption,
    Signing,
    Hmac,
    Public,
}

fn export_type(s: &str) -> Result<ExportType> {
    Ok(match s {
        "encryption-key" => ExportType::Encryption,
        "signing-key" => ExportType::Signing,
        "hmac-key" => ExportType::Hmac,
        "public-key" => ExportType::Public,
        other => return Err(bad(format!("invalid export type: {other}"))),
    })
}

fn encode(t: KeyType, et: ExportType, v: &Version) -> Result<String> {
    Ok(match et {
        ExportType::Encryption => b64(&v.key),
        ExportType::Hmac => {
            if t == KeyType::Hmac {
                b64(&v.key)
            } else {
                b64(&v.hmac_key)
            }
        }
        ExportType::Public => v
            .public_key()
            .ok_or_else(|| bad("this key has no public key to export"))?,
        ExportType::Signing => match &v.prepared {
            Prepared::Ecdsa(kp) => {
                let der = kp.private_key().as_der().map_err(internal)?;
                pem("EC PRIVATE KEY", der.as_ref())
            }
            Prepared::Rsa(_) => {
                let inner =
                    pkcs8_inner(&v.key).ok_or_else(|| internal("stored RSA key is unreadable"))?;
                pem("RSA PRIVATE KEY", inner)
            }
            _ => b64(&v.key),
        },
    })
}

impl Engine {
    /// `export/:type/:name/:version`.
    pub(crate) async fn export_version(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let i: ExportVersionInput = f.input();
        self.export(req, &i.kind, &i.name, &i.version).await
    }

    /// `export/:type/:name`: every version (or `version` from the body).
    pub(crate) async fn export_all(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let i: ExportInput = f.input();
        self.export(req, &i.kind, &i.name, &i.version).await
    }

    async fn export(
        &self,
        req: Request,
        kind: &str,
        name: &str,
        version: &str,
    ) -> Result<Option<Response>> {
        let et = export_type(kind)?;
        let s = &*req.storage;
        let Some(key) = self.key(&mount_id(&req), s, name).await? else {
            return Ok(None);
        };
        let t = key.kind;
        let p = &key.policy;
        if et != ExportType::Public && !p.exportable {
            return Err(bad("private key material is not exportable"));
        }
        match et {
            ExportType::Encryption if !t.supports_encryption() => {
                return Err(bad("encryption key not supported by this key type"));
            }
            ExportType::Signing | ExportType::Public if !t.supports_signing() => {
                return Err(bad("signing key not supported by this key type"));
            }
            _ => {}
        }
        if et == ExportType::Public && p.derived {
            return Err(bad(
                "public keys of derived keys depend on the context and cannot be exported",
            ));
        }
        let first = p.min_available_version.max(1);
        let versions: Vec<u32> = match version {
            "" => (first..=p.latest_version).collect(),
            "latest" => vec![p.latest_version],
            v => {
                let n: u32 = v
                    .trim_start_matches('v')
                    .parse()
                    .map_err(|_| bad("invalid key version"))?;
                if n == 0 || n > p.latest_version {
                    return Err(bad("invalid key version"));
                }
                if n < first {
                    return Err(bad(
                        "cannot export key version below the minimum available version",
                    ));
                }
                vec![n]
            }
        };
        let mut keys = Map::new();
        for n in versions {
            let v = key.version(s, n).await?;
            keys.insert(n.to_string(), json!(encode(t, et, &v)?));
        }
        Ok(Some(Response::json(json!({
            "name": p.name,
            "type": t.name(),
            "keys": keys,
        }))))
    }
}
