//! `crls/` and `crls/:name`: certificate revocation lists posted by an operator. A login (or a
//! renewal) whose verified chain holds a serial number on any of them is refused. As in Vault,
//! entries are matched by serial number alone.

use std::sync::Arc;

use serde_json::{Map, Value};
use tresor_sdk::framework::Fields;
use tresor_sdk::{Request, Response, Result};

use crate::inputs::CrlInput;
use crate::store::{self, CrlEntry};
use crate::{Engine, bad, x509};

impl Engine {
    pub(crate) async fn list_crls(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        Ok(Some(Response::list(store::crl_names(&*req.storage).await?)))
    }

    /// `serials`: the revoked serial numbers in decimal, as Vault shows them.
    pub(crate) async fn read_crl(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let Some(c) = store::crl(&*req.storage, &f.input::<CrlInput>().name).await? else {
            return Ok(None);
        };
        let serials: Map<String, Value> = c
            .serials
            .iter()
            .map(|h| (x509::hex_to_decimal(h), Value::Object(Map::new())))
            .collect();
        let mut m = Map::new();
        m.insert("serials".into(), Value::Object(serials));
        Ok(Some(Response::data(m)))
    }

    pub(crate) async fn write_crl(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let CrlInput { name, crl, url } = f.input();
        if !url.trim().is_empty() {
            return Err(bad(
                "url is not supported: this server does not fetch CRLs; post the CRL itself as crl",
            ));
        }
        if crl.trim().is_empty() {
            return Err(bad("missing crl: a PEM-encoded CRL is required"));
        }
        let serials = x509::crl_serials(&crl).map_err(|m| bad(format!("crl: {m}")))?;
        store::put_crl(
            &*req.storage,
            &name,
            &CrlEntry {
                version: 0,
                serials,
            },
        )
        .await?;
        Ok(None)
    }

    pub(crate) async fn delete_crl(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        req.storage
            .delete(&format!(
                "{}{}",
                store::CRL_PREFIX,
                f.input::<CrlInput>().name
            ))
            .await?;
        Ok(None)
    }
}
