//! The process environment, behind a trait so tests can inject `VAULT_*` variables and a
//! home directory, plus the token helper file (`~/.vault-token`).
//!
//! Everything that reads configuration (the CLI, `tresor bench`, [`crate::ClientConfig`])
//! goes through [`Env`]; nothing in this crate calls `std::env::var` for a `VAULT_*` name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Where configuration comes from.
pub trait Env {
    /// An environment variable; empty values count as unset.
    fn var(&self, name: &str) -> Option<String>;
    /// The user's home directory, where the token helper file lives: `$HOME` unless the
    /// environment says otherwise.
    fn home_dir(&self) -> Option<PathBuf> {
        self.var("HOME").map(PathBuf::from)
    }
}

/// The real process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// A fixed environment, for tests and embedding.
#[derive(Debug, Default, Clone)]
pub struct MapEnv {
    /// The variables.
    pub vars: HashMap<String, String>,
    /// The home directory.
    pub home: Option<PathBuf>,
}

impl MapEnv {
    /// An environment with the given home directory and no variables.
    pub fn new(home: Option<&Path>) -> MapEnv {
        MapEnv {
            vars: HashMap::new(),
            home: home.map(Path::to_path_buf),
        }
    }

    /// Adds a variable.
    pub fn with(mut self, name: &str, value: &str) -> MapEnv {
        self.vars.insert(name.to_string(), value.to_string());
        self
    }
}

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).filter(|v| !v.is_empty()).cloned()
    }

    fn home_dir(&self) -> Option<PathBuf> {
        self.home.clone()
    }
}

/// The token helper file: `~/.vault-token`.
pub fn token_file(env: &dyn Env) -> Option<PathBuf> {
    env.home_dir().map(|h| h.join(".vault-token"))
}

/// Reads the stored token, if any (surrounding whitespace removed).
pub fn read_stored_token(env: &dyn Env) -> Option<Zeroizing<String>> {
    let path = token_file(env)?;
    let raw = Zeroizing::new(std::fs::read_to_string(path).ok()?);
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        None
    } else {
        Some(Zeroizing::new(trimmed.to_string()))
    }
}

/// Stores a token in the helper file, readable only by its owner.
pub fn store_token(env: &dyn Env, token: &str) -> std::io::Result<()> {
    let path = token_file(env)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no home directory"))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&path)?;
    // A file that already existed keeps its old mode on open: tighten it before writing.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    std::io::Write::write_all(&mut f, token.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_variables_are_unset() {
        let env = MapEnv::new(None)
            .with("VAULT_ADDR", "")
            .with("VAULT_TOKEN", "t");
        assert_eq!(env.var("VAULT_ADDR"), None);
        assert_eq!(env.var("VAULT_TOKEN").as_deref(), Some("t"));
    }

    #[test]
    fn home_defaults_to_the_home_variable() {
        struct OnlyVars;
        impl Env for OnlyVars {
            fn var(&self, name: &str) -> Option<String> {
                (name == "HOME").then(|| "/home/u".to_string())
            }
        }
        assert_eq!(OnlyVars.home_dir(), Some(PathBuf::from("/home/u")));
        assert_eq!(
            token_file(&OnlyVars),
            Some(PathBuf::from("/home/u/.vault-token"))
        );
        // An explicit home wins over the variable.
        let env = MapEnv::new(Some(Path::new("/elsewhere"))).with("HOME", "/home/u");
        assert_eq!(env.home_dir(), Some(PathBuf::from("/elsewhere")));
    }

    #[test]
    fn token_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let env = MapEnv::new(Some(dir.path()));
        assert!(read_stored_token(&env).is_none());
        store_token(&env, "hvs.abc").unwrap();
        assert_eq!(
            read_stored_token(&env).as_deref().map(String::as_str),
            Some("hvs.abc")
        );
        std::fs::write(dir.path().join(".vault-token"), "  s.xyz\n").unwrap();
        assert_eq!(
            read_stored_token(&env).as_deref().map(String::as_str),
            Some("s.xyz")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            store_token(&env, "x").unwrap();
            let mode = std::fs::metadata(dir.path().join(".vault-token"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o077,
                0,
                "token file must not be group/world readable"
            );
        }
    }
}
