//! A blocking facade over [`crate::Client`] for synchronous callers (the CLI, `#[test]`
//! helpers): each call runs the async client to completion on a current-thread runtime the
//! facade owns.
//!
//! Like `reqwest::blocking`, it must not be used from inside an async runtime: `block_on`
//! there panics. Async code uses [`crate::Client`] directly.

use serde_json::Value;
use zeroize::Zeroizing;

use crate::config::ClientConfig;
use crate::error::{ClientError, ConfigError};
use crate::request::{Request, Response};
use crate::secret::{Secret, SecretAuth};
use crate::sys::{Health, Leader, MountInput, SealStatus};

/// A configured client that blocks the calling thread.
#[derive(Debug)]
pub struct Client {
    rt: tokio::runtime::Runtime,
    inner: crate::Client,
}

impl Client {
    /// Builds a client (see [`crate::Client::new`]) and the runtime it runs on.
    pub fn new(cfg: ClientConfig) -> Result<Client, ConfigError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ConfigError::Build(format!("starting the runtime: {e}")))?;
        let inner = {
            let _guard = rt.enter();
            crate::Client::new(cfg)?
        };
        Ok(Client { rt, inner })
    }

    /// The async client underneath (shares connections with this one).
    pub fn inner(&self) -> &crate::Client {
        &self.inner
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        self.inner.config()
    }

    /// The token requests carry by default.
    pub fn token(&self) -> Option<&str> {
        self.inner.token()
    }

    /// Replaces the default token.
    pub fn set_token(&mut self, token: Option<Zeroizing<String>>) {
        self.inner.set_token(token);
    }

    /// The full URL for an API path (with query).
    pub fn url(&self, path: &str, query: &[(String, String)]) -> reqwest::Url {
        self.inner.url(path, query)
    }

    /// See [`crate::Client::send`].
    pub fn send(&self, req: &Request) -> Result<Response, ClientError> {
        self.rt.block_on(self.inner.send(req))
    }

    /// See [`crate::Client::upload`].
    pub fn upload(
        &self,
        req: &Request,
        body: crate::transfer::FileBody,
    ) -> Result<Response, ClientError> {
        self.rt.block_on(self.inner.upload(req, body))
    }

    /// See [`crate::Client::download`].
    pub fn download(
        &self,
        req: &Request,
        sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<u64, ClientError> {
        self.rt.block_on(self.inner.download(req, sink, progress))
    }

    /// See [`crate::Client::call`].
    pub fn call(&self, req: &Request) -> Result<Response, ClientError> {
        self.rt.block_on(self.inner.call(req))
    }

    /// See [`crate::Client::secret`].
    pub fn secret(&self, req: &Request) -> Result<Option<Secret>, ClientError> {
        self.rt.block_on(self.inner.secret(req))
    }

    /// See [`crate::Client::json`].
    pub fn json(&self, req: &Request) -> Result<Value, ClientError> {
        self.rt.block_on(self.inner.json(req))
    }

    /// See [`crate::Client::lenient`].
    pub fn lenient(&self, req: &Request) -> Result<Option<Secret>, ClientError> {
        self.rt.block_on(self.inner.lenient(req))
    }

    /// See [`crate::Client::read`].
    pub fn read(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Option<Secret>, ClientError> {
        self.rt.block_on(self.inner.read(path, query))
    }

    /// See [`crate::Client::list`].
    pub fn list(&self, path: &str) -> Result<Option<Secret>, ClientError> {
        self.rt.block_on(self.inner.list(path))
    }

    /// See [`crate::Client::write`].
    pub fn write(&self, path: &str, body: Value) -> Result<Option<Secret>, ClientError> {
        self.rt.block_on(self.inner.write(path, body))
    }

    /// See [`crate::Client::patch`].
    pub fn patch(&self, path: &str, body: Value) -> Result<Option<Secret>, ClientError> {
        self.rt.block_on(self.inner.patch(path, body))
    }

    /// See [`crate::Client::delete`].
    pub fn delete(
        &self,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Option<Secret>, ClientError> {
        self.rt.block_on(self.inner.delete(path, query))
    }

    /// See [`crate::Client::seal_status`].
    pub fn seal_status(&self) -> Result<SealStatus, ClientError> {
        self.rt.block_on(self.inner.seal_status())
    }

    /// See [`crate::Client::health`].
    pub fn health(&self) -> Result<Health, ClientError> {
        self.rt.block_on(self.inner.health())
    }

    /// See [`crate::Client::leader`].
    pub fn leader(&self) -> Result<Leader, ClientError> {
        self.rt.block_on(self.inner.leader())
    }

    /// See [`crate::Client::mount`].
    pub fn mount(&self, path: &str, input: &MountInput) -> Result<(), ClientError> {
        self.rt.block_on(self.inner.mount(path, input))
    }

    /// See [`crate::Client::tune_mount`].
    pub fn tune_mount(&self, path: &str, config: Value) -> Result<(), ClientError> {
        self.rt.block_on(self.inner.tune_mount(path, config))
    }

    /// See [`crate::Client::unmount`].
    pub fn unmount(&self, path: &str) -> Result<(), ClientError> {
        self.rt.block_on(self.inner.unmount(path))
    }

    /// See [`crate::Client::put_policy`].
    pub fn put_policy(&self, name: &str, rules: &str) -> Result<(), ClientError> {
        self.rt.block_on(self.inner.put_policy(name, rules))
    }

    /// See [`crate::Client::delete_policy`].
    pub fn delete_policy(&self, name: &str) -> Result<(), ClientError> {
        self.rt.block_on(self.inner.delete_policy(name))
    }

    /// See [`crate::Client::create_token`].
    pub fn create_token(&self, input: Value) -> Result<SecretAuth, ClientError> {
        self.rt.block_on(self.inner.create_token(input))
    }

    /// See [`crate::Client::revoke_token`].
    pub fn revoke_token(&self, token: &str) -> Result<(), ClientError> {
        self.rt.block_on(self.inner.revoke_token(token))
    }

    /// See [`crate::Client::lookup_self`].
    pub fn lookup_self(&self) -> Result<Option<Secret>, ClientError> {
        self.rt.block_on(self.inner.lookup_self())
    }
}
