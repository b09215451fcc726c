//! What the SDK's own tests share: a request for a table, on storage that holds nothing.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::{Context, MountView, Operation, Request, Result, Storage};

/// Storage that holds nothing and accepts every write.
struct Empty;

#[async_trait::async_trait]
impl Storage for Empty {
    async fn get(&self, _: &str) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    async fn put(&self, _: &str, _: Vec<u8>) -> Result<()> {
        Ok(())
    }
    async fn delete(&self, _: &str) -> Result<()> {
        Ok(())
    }
    async fn list(&self, _: &str) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// A request of `op` on `path` with `data` as its body, for a mount at `mount_point`.
pub(crate) fn request(op: Operation, path: &str, data: Value, mount_point: &str) -> Request {
    let context = Context {
        storage: Arc::new(Empty),
        mount: Arc::new(MountView {
            mount_point: mount_point.into(),
            mount_type: "x".into(),
            mount_accessor: "x_1".into(),
            default_lease_ttl: Duration::ZERO,
            max_lease_ttl: Duration::ZERO,
            options: Default::default(),
            system: None,
        }),
        now: std::time::SystemTime::UNIX_EPOCH,
    };
    let mut req = context.request(op, path);
    req.data = data.as_object().cloned().unwrap_or_default();
    req
}
