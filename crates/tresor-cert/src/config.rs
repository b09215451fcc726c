//! `config`: the mount's settings. A write changes the fields it sends.

use std::sync::Arc;

use serde_json::json;
use tresor_sdk::framework::Fields;
use tresor_sdk::{Request, Response, Result};

use crate::inputs::ConfigInput;
use crate::{Engine, bad, store};

impl Engine {
    pub(crate) async fn read_config(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let c = store::config(&*req.storage).await?;
        Ok(Some(Response::json(json!({
            "disable_binding": c.disable_binding,
            "enable_identity_alias_metadata": c.enable_identity_alias_metadata,
            "ocsp_cache_size": c.ocsp_cache_size,
            "role_cache_size": c.role_cache_size,
            "enable_metadata_on_failures": c.enable_metadata_on_failures,
        }))))
    }

    pub(crate) async fn write_config(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        let mut c = store::config(s).await?;
        let i: ConfigInput = f.input();
        if let Some(b) = i.disable_binding {
            c.disable_binding = b;
        }
        if let Some(b) = i.enable_identity_alias_metadata {
            c.enable_identity_alias_metadata = b;
        }
        if let Some(b) = i.enable_metadata_on_failures {
            c.enable_metadata_on_failures = b;
        }
        if let Some(n) = i.ocsp_cache_size {
            if n < 2 {
                return Err(bad("invalid ocsp_cache_size: must be at least 2"));
            }
            c.ocsp_cache_size = n;
        }
        if let Some(n) = i.role_cache_size {
            if n < -1 {
                return Err(bad(
                    "invalid role_cache_size: must be -1 (disabled) or more",
                ));
            }
            c.role_cache_size = n;
        }
        store::put_config(s, &c).await?;
        Ok(None)
    }
}
