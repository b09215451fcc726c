//! Vault's TOTP secrets engine: time-based one-time password keys and codes.
//!
//! Module map: `totp` (the `tresor-otp` crate, shared with login MFA: HOTP/TOTP arithmetic,
//! base32, `otpauth://` URLs), `png` (QR barcodes
//! as PNG without an image stack), `keys` (storage, `keys/:name`, `code/:name`, the spent
//! code tidy). This file holds the path table and the [`LogicalBackend`] the core mounts.
//!
//! Differences from Vault, all deliberate: a spent code stays spent until it can no longer
//! validate (its window plus the key's skew) rather than for one period; a key written again
//! forgets its spent codes with its old secret.

#![forbid(unsafe_code)]

mod keys;
mod png;
use tresor_otp as totp;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tresor_sdk::clock::{Clock, SystemClock};
use tresor_sdk::framework::{Path, Table};
use tresor_sdk::{Context, LogicalBackend, Operation, Request, Response, Result, SpecialPaths};

use keys::Engine;

/// The engine, ready to mount.
pub fn backend() -> Arc<dyn LogicalBackend> {
    backend_with_clock(Arc::new(SystemClock))
}

/// The engine reading time from `clock` (tests pass a clock they control).
pub fn backend_with_clock(clock: Arc<dyn Clock>) -> Arc<dyn LogicalBackend> {
    Arc::new(Totp {
        engine: Arc::new(Engine { clock }),
        table: table(),
    })
}

struct Totp {
    engine: Arc<Engine>,
    table: Table<Engine>,
}

#[async_trait]
impl LogicalBackend for Totp {
    async fn handle(&self, req: Request) -> Result<Option<Response>> {
        self.table.handle(self.engine.clone(), req).await
    }
    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        self.table.exists(self.engine.clone(), req).await
    }
    fn canonical_path(&self, path: &str) -> Option<String> {
        self.table.canonical_path(path)
    }
    fn special_paths(&self) -> SpecialPaths {
        self.table.special.clone()
    }
    fn help(&self, path: &str) -> Option<Map<String, Value>> {
        self.table.help(path)
    }
    fn openapi_paths(&self) -> Map<String, Value> {
        self.table.openapi_paths()
    }
    /// Forgets spent codes once they can no longer validate.
    async fn periodic(&self, ctx: &Context) -> Result<()> {
        self.engine
            .tidy_used(&*ctx.storage, tresor_sdk::clock::unix(ctx.now))
            .await
    }
}

macro_rules! h {
    ($method:ident) => {
        |e, r, fl| Box::pin(async move { e.$method(r, fl).await })
    };
}

tresor_sdk::input! {
    /// `keys/:name`.
    pub(crate) struct KeyInput {
        name: Str, "Name of the key: letters, digits, '_', '-', '.' and '@'.";
        generate: Bool, "Generate the key here (true) or import it from url or key (false).";
        exported: Bool, "With generate: return the otpauth:// URL and the QR barcode (default true); they are shown only once.", default = true;
        key_size: Int, "With generate: size of the secret in bytes (default 20).", default = 20;
        url: Str, "Import: an otpauth://totp/ URL; its secret, issuer, account, algorithm, digits and period are used.";
        key: Str, "Import: the secret in base32 (when no url is given).";
        issuer: Str, "The organization the key is for (required with generate).";
        account_name: Str, "The account the key is for (required with generate).";
        period: Duration, "Length of a code's time step (default 30s).", default = 30;
        algorithm: OptStr, "HMAC: SHA1 (default), SHA256 or SHA512.", default = "SHA1";
        digits: Int, "Digits of a code: 6 (default) or 8.", default = 6;
        skew: Int, "Time steps before and after the current one a code may come from: 0 or 1 (default).", default = 1;
        qr_size: Int, "With generate and exported: the barcode's size in pixels (default 200; 0: no barcode).", default = 200;
    }
}

tresor_sdk::input! {
    /// `code/:name`.
    pub(crate) struct CodeInput {
        name: Str, "Name of the key: letters, digits, '_', '-', '.' and '@'.";
        code: Str, "The code to validate.";
    }
}

const BACKEND_HELP: &str = "
The TOTP secrets engine generates time-based one-time passwords (as an authenticator app
does) and validates them (as a service offering two-factor login does).

Write keys/:name with generate=true to make a key and get its otpauth:// URL and QR
barcode for an app, or with url (otpauth://) or key (base32) to hold a key made elsewhere.
Read code/:name for the current code; write code/:name with code to validate one. A code
validates once.";

fn table() -> Table<Engine> {
    use Operation::*;
    let paths = vec![
        Path::<Engine>::new("keys")
            .op(List, h!(key_list))
            .help("List the keys.", "The names of this mount's keys."),
        Path::<Engine>::new("keys/{name}")
            .input::<KeyInput>()
            .op(Update, h!(key_write))
            .op(Read, h!(key_read))
            .op(Delete, h!(key_delete))
            .help(
                "Create, read or delete a key.",
                "A generated key's secret leaves the server only in the response that creates it (url and barcode, when exported). A read shows the key's settings, never its secret.",
            ),
        Path::<Engine>::new("code/{name}")
            .input::<CodeInput>()
            .op(Read, h!(code_read))
            .op(Update, h!(code_validate))
            .help(
                "Generate or validate a code.",
                "A read returns the current code. A write with code answers valid true or false; a code that has validated is refused until it can no longer validate.",
            ),
    ];
    Table {
        paths,
        special: SpecialPaths::default(),
        help: BACKEND_HELP,
    }
}
