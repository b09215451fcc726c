//! What can go wrong: configuring a client ([`ConfigError`]) and using one ([`ClientError`]),
//! with the server's own refusals as [`ApiError`], printed the way Vault's Go client prints
//! them so that scripts matching on `vault`'s output keep working.

use std::fmt;

use serde_json::Value;

use crate::request::Response;
use crate::secret::DecodeError;

/// An error status from the server (400 and above), decoded from Vault's `{"errors":[...]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP method (`GET`, `PUT`).
    pub method: String,
    /// The full URL.
    pub url: String,
    /// The HTTP status.
    pub status: u16,
    /// The `errors` array of the body.
    pub errors: Vec<String>,
    /// The body, when it was not `{"errors": [...]}`.
    pub raw: Option<String>,
}

impl fmt::Display for ApiError {
    /// Vault's `api.ResponseError` text: `Error making API request.`, the URL, the code, and
    /// either the error list (`* one` per line) or the raw body.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Error making API request.\n\nURL: {} {}\nCode: {}.",
            self.method, self.url, self.status
        )?;
        if let Some(raw) = &self.raw {
            write!(f, " Raw Message:\n\n{raw}")?;
        } else if !self.errors.is_empty() {
            f.write_str(" Errors:\n\n")?;
            let lines: Vec<String> = self.errors.iter().map(|e| format!("* {e}")).collect();
            f.write_str(&lines.join("\n"))?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// Decodes an error body for a request that got `status`.
    pub fn new(method: &str, url: &str, status: u16, body: &[u8]) -> ApiError {
        let parsed: Option<Vec<String>> = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("errors").cloned())
            .and_then(|e| serde_json::from_value(e).ok());
        let (errors, raw) = match parsed {
            Some(errors) => (errors, None),
            None if body.is_empty() => (Vec::new(), None),
            None => (Vec::new(), Some(String::from_utf8_lossy(body).into_owned())),
        };
        ApiError {
            method: method.to_string(),
            url: url.to_string(),
            status,
            errors,
            raw,
        }
    }

    /// Decodes an error response.
    pub fn from_response(resp: &Response) -> ApiError {
        ApiError::new(&resp.method, &resp.url, resp.status, &resp.body)
    }

    /// Whether any error message (or the raw body) contains `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        self.errors.iter().any(|e| e.contains(needle))
            || self.raw.as_deref().is_some_and(|r| r.contains(needle))
    }
}

/// Anything that can go wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request did not get a response (connection refused, TLS failure, deadline), after
    /// any retries. Printed like Go's `*url.Error`: `Get "URL": message`.
    #[error("{method} \"{url}\": {message}")]
    Transport {
        /// Go-style method name (`Get`, `Put`).
        method: String,
        /// The URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// The server answered with an error status (after any retries).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The body was not what a Vault server sends.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl ClientError {
    /// The HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api(e) => Some(e.status),
            _ => None,
        }
    }
}

/// Why a client could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The address does not parse.
    #[error("invalid address {address:?}: {reason}")]
    Address {
        /// The address given.
        address: String,
        /// What is wrong.
        reason: String,
    },
    /// A variable holds a value of the wrong kind.
    #[error("could not parse {name}: {value:?}")]
    Variable {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// A certificate, key or trust-store problem.
    #[error("error loading {what}: {reason}")]
    Tls {
        /// Which file (or setting).
        what: String,
        /// What failed.
        reason: String,
    },
    /// Only one of client certificate and key was given.
    #[error("both a client certificate and a client key are needed")]
    HalfIdentity,
    /// The HTTP client or its runtime could not be built.
    #[error("error creating the HTTP client: {0}")]
    Build(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_text_matches_vault() {
        let e = ApiError {
            method: "GET".into(),
            url: "http://127.0.0.1:8200/v1/secret/foo".into(),
            status: 403,
            errors: vec!["permission denied".into()],
            raw: None,
        };
        assert_eq!(
            e.to_string(),
            "Error making API request.\n\nURL: GET http://127.0.0.1:8200/v1/secret/foo\nCode: 403. Errors:\n\n* permission denied"
        );
        let e = ApiError {
            errors: vec!["a".into(), "b".into()],
            ..e
        };
        assert!(e.to_string().ends_with("Errors:\n\n* a\n* b"));
        let e = ApiError {
            errors: vec![],
            ..e
        };
        assert!(e.to_string().ends_with("Code: 403."));
    }

    #[test]
    fn error_bodies_decode_into_the_list_or_raw_text() {
        let e = ApiError::new("PUT", "http://x/v1/y", 502, b"bad gateway");
        assert_eq!(e.raw.as_deref(), Some("bad gateway"));
        assert!(
            e.to_string()
                .ends_with("Code: 502. Raw Message:\n\nbad gateway")
        );
        let e = ApiError::new("PUT", "http://x/v1/y", 400, br#"{"errors":["x \"y\""]}"#);
        assert_eq!(e.errors, vec!["x \"y\"".to_string()]);
        assert!(e.raw.is_none());
        assert!(e.mentions("x \"y"));
        assert!(!e.mentions("z"));
        let e = ApiError::new("GET", "http://x/v1/y", 404, b"");
        assert!(e.errors.is_empty() && e.raw.is_none());
        assert_eq!(
            e.to_string(),
            "Error making API request.\n\nURL: GET http://x/v1/y\nCode: 404."
        );
        // `errors` that is not a list of strings is not Vault's shape: shown raw.
        let e = ApiError::new("GET", "http://x/v1/y", 500, br#"{"errors":"boom"}"#);
        assert_eq!(e.raw.as_deref(), Some(r#"{"errors":"boom"}"#));
    }

    #[test]
    fn transport_errors_print_like_go() {
        let e = ClientError::Transport {
            method: "Get".into(),
            url: "http://127.0.0.1:1/v1/sys/health".into(),
            message: "connection refused".into(),
        };
        assert_eq!(
            e.to_string(),
            "Get \"http://127.0.0.1:1/v1/sys/health\": connection refused"
        );
        assert_eq!(e.status(), None);
        let e = ClientError::from(ApiError::new("GET", "u", 412, b""));
        assert_eq!(e.status(), Some(412));
    }
}
