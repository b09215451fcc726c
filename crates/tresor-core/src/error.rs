//! The core's typed errors. The HTTP crate maps each variant to a status code exactly once.

use tresor_sdk::LogicalError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CoreError {
    #[error("Vault is sealed")]
    Sealed,
    #[error("Vault is not initialized")]
    NotInitialized,
    #[error("Vault is already initialized")]
    AlreadyInitialized,
    #[error("unseal failed, invalid key")]
    InvalidUnsealKey,
    #[error("permission denied")]
    PermissionDenied,
    /// A 403 with the reason shown to the client (an engine's [`LogicalError::Forbidden`]).
    #[error("{0}")]
    Forbidden(String),
    /// A 400 with the message shown to the client.
    #[error("{0}")]
    InvalidRequest(String),
    /// No mount serves the path.
    #[error("no handler for route {0:?}. route entry not found.")]
    NoRoute(String),
    /// The engine has no such path.
    #[error("unsupported path")]
    UnsupportedPath,
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// A 404 with a message.
    #[error("{0}")]
    NotFound(String),
    /// 404 with an empty error list (a read of nothing).
    #[error("not found")]
    NotFoundEmpty,
    #[error("{0}")]
    Conflict(String),
    /// A quota refused the request (429).
    #[error("{0}")]
    RateLimited(String),
    #[error("{0}")]
    Internal(String),
}

impl From<tresor_physical::PhysicalError> for CoreError {
    fn from(e: tresor_physical::PhysicalError) -> Self {
        CoreError::Internal(e.to_string())
    }
}

impl From<LogicalError> for CoreError {
    fn from(e: LogicalError) -> Self {
        match e {
            LogicalError::InvalidRequest(m) => CoreError::InvalidRequest(m),
            LogicalError::UnsupportedPath => CoreError::UnsupportedPath,
            LogicalError::UnsupportedOperation => CoreError::UnsupportedOperation,
            LogicalError::PermissionDenied => CoreError::PermissionDenied,
            LogicalError::Forbidden(m) => CoreError::Forbidden(m),
            LogicalError::Conflict(m) => CoreError::Conflict(m),
            LogicalError::RateLimited(m) => CoreError::RateLimited(m),
            LogicalError::NotFound(m) => CoreError::NotFound(m),
            LogicalError::Internal(m) => CoreError::Internal(m),
        }
    }
}
