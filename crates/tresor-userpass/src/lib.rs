//! Vault's userpass auth method: users with bcrypt-hashed passwords.
//!
//! | path | operations |
//! |---|---|
//! | `users/` | LIST the usernames |
//! | `users/:username` | create, read, update, delete a user (`password` or `password_hash`, and Vault's `token_*` fields with their legacy names) |
//! | `users/:username/password` | update the password |
//! | `users/:username/policies` | update `token_policies` |
//! | `login/:username` | log in with `password` (unauthenticated) |
//!
//! **Passwords.** Only a bcrypt hash is stored, at cost [`DEFAULT_COST`] (10, Go's
//! `bcrypt.DefaultCost`, which Vault uses), with a random salt per hash; about 2^10 rounds of
//! bcrypt's key schedule, tens of milliseconds of one core per login. Passwords longer than
//! bcrypt's 72 bytes are refused rather than silently truncated, as Go's bcrypt does. Hashing
//! and verifying run on tokio's blocking pool ([`password`]), never on a runtime worker.
//!
//! **Failed logins.** A wrong password and an unknown user get the same error, `invalid
//! username or password`, and cost the same bcrypt verification ([`login`]).
//!
//! **Renewal.** A login token is renewed only while its user exists with the same password
//! and the same policies; the user's current `token_ttl`/`token_max_ttl` cap each renewal.

#![forbid(unsafe_code)]

mod inputs;
mod login;
mod password;
mod state;
mod store;
mod users;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tresor_sdk::framework::Table;
use tresor_sdk::{Context, LogicalBackend, Request, Response, Result, SpecialPaths};

pub use password::{DEFAULT_COST, MAX_PASSWORD_BYTES};

use state::State;

const HELP: &str = "
The userpass auth method lets users log in with a username and password. Users are managed
under users/ by an operator; passwords are stored as bcrypt hashes only. Logins are at
login/<username> and issue tokens with the user's token settings.
";

/// The auth method, ready to mount, hashing at Vault's cost ([`DEFAULT_COST`]).
pub fn backend() -> Arc<dyn LogicalBackend> {
    backend_with_cost(DEFAULT_COST)
}

/// The auth method hashing new passwords at `cost` (4 to 31; tests use a low cost to run
/// fast). Panics on a cost bcrypt does not accept: it is a programming error.
pub fn backend_with_cost(cost: u32) -> Arc<dyn LogicalBackend> {
    Arc::new(Userpass::new(cost))
}

/// The method as the core sees it: one path table over the shared [`State`], plus renewal.
struct Userpass {
    state: Arc<State>,
    table: Table<State>,
}

impl Userpass {
    fn new(cost: u32) -> Self {
        assert!(
            (4..=31).contains(&cost),
            "bcrypt cost {cost} is not 4 to 31"
        );
        let mut paths = users::paths();
        paths.extend(login::paths());
        Userpass {
            state: Arc::new(State::new(cost)),
            table: Table {
                paths,
                special: SpecialPaths {
                    unauthenticated: vec!["login/*".into()],
                    root: Vec::new(),
                },
                help: HELP,
            },
        }
    }
}

#[async_trait]
impl LogicalBackend for Userpass {
    async fn handle(&self, req: Request) -> Result<Option<Response>> {
        self.table.handle(self.state.clone(), req).await
    }
    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        self.table.exists(self.state.clone(), req).await
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
    async fn renew_auth(&self, req: Request) -> Result<Option<Response>> {
        login::renew(req).await
    }
    /// Computes the dummy hash before the first login needs it.
    async fn initialize(&self, _ctx: &Context) -> Result<()> {
        self.state.passwords.warm().await
    }
}

#[cfg(test)]
mod tests;
