//! Time for the PKI engine: the injected clock of `tresor_sdk::clock`, which every validity
//! period, revocation time, CRL and OCSP timestamp comes from, so tests move time instead of
//! sleeping.

pub use tresor_sdk::clock::{Clock, SystemClock};
pub(crate) use tresor_sdk::clock::{parse_rfc3339, rfc3339, unix};
