//! A typed async client for Vault's HTTP API, used by `tresor`'s CLI, `tresor bench` and the
//! end-to-end tests against Tresor, Vault or OpenBao.
//!
//! It behaves like Vault's Go client (`api` package) where a user could tell the difference:
//!
//! - configuration from the same `VAULT_*` variables with the same meanings, read through an
//!   injectable [`Env`], explicit [`Overrides`] (flags) winning ([`config`]);
//! - TLS from a CA file, PEM text or directory, a client certificate, skip-verify and a
//!   server-name override ([`tls`]);
//! - `X-Vault-Request: true` on every request, the token, namespace, wrap-TTL and
//!   policy-override headers, and the `/v1/` layout under any address path ([`Client`]);
//! - retries on 412, 429, 5xx except 501, and transport failures, with Go's linear jittered
//!   backoff, `VAULT_MAX_RETRIES` (default 2), every method included, all under one deadline
//!   ([`retry`]); one redirect followed, never from https to http;
//! - the response envelope as typed structs ([`Secret`]) and failures as [`ApiError`], whose
//!   text is Go's `Error making API request.` block;
//! - the Go client's 404 rule for reads and lists ([`Client::read`], [`Client::list`]).
//!
//! [`blocking::Client`] wraps the async client for synchronous callers. Module map (each
//! module only uses the ones listed before it): [`duration`], [`env`], [`secret`],
//! [`request`], [`error`], [`tls`], [`config`], [`retry`], `client`, [`sys`], [`blocking`].

#![forbid(unsafe_code)]

pub mod blocking;
mod client;
pub mod config;
pub mod duration;
pub mod env;
pub mod error;
pub mod request;
pub mod retry;
pub mod secret;
pub mod sys;
pub mod tls;
pub mod transfer;

pub use client::Client;
pub use config::{ClientConfig, DEFAULT_ADDRESS, Overrides};
pub use env::Env;
pub use error::{ApiError, ClientError, ConfigError};
pub use request::{HeaderMap, Method, Request, Response, TokenChoice};
pub use secret::{DecodeError, Secret, SecretAuth, WrapInfo};
pub use sys::{Health, Leader, MountInput, SealStatus};
pub use tls::TlsOptions;
pub use transfer::FileBody;
