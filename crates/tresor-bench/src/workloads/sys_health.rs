//! `sys-health`: `GET /v1/sys/health` without a token, the cheapest request a Vault server
//! answers. It measures the HTTP edge and, run against a fast server, the load generator's own
//! ceiling.

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::Full;
use serde::Deserialize;

use super::{BoxFuture, Kind, SetupContext, Workload};
use crate::client::{Api, Target};
use crate::error::BenchError;

/// The registry entry.
pub const KIND: Kind = Kind {
    name: "sys-health",
    aliases: &["sys_health", "status"],
    summary: "GET sys/health, unauthenticated (no setup)",
    needs_token: false,
    check_config: super::check::<Config>,
    setup,
};

/// sys-health takes no options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {}

struct SysHealth {
    uri: Uri,
}

fn setup(ctx: SetupContext) -> BoxFuture<'static, Result<Box<dyn Workload>, BenchError>> {
    Box::pin(async move {
        let _: Config = super::config_of(&ctx)?;
        Ok(Box::new(SysHealth {
            uri: Uri::from_static("/v1/sys/health"),
        }) as Box<dyn Workload>)
    })
}

#[async_trait::async_trait]
impl Workload for SysHealth {
    fn request(&self, target: &Target, _worker: usize, _seq: u64) -> Request<Full<Bytes>> {
        target.request(Method::GET, self.uri.clone(), None, Bytes::new())
    }

    /// Vault's health codes for a serving node: active (200), standby (429), performance
    /// standby (473) and DR secondary (472).
    fn accepts(&self, status: StatusCode) -> bool {
        matches!(status.as_u16(), 200 | 429 | 472 | 473)
    }

    async fn cleanup(&self, _api: &Api) -> Result<(), BenchError> {
        Ok(())
    }
}
