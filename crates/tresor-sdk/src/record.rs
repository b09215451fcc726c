//! Versioned records: every persisted struct carries its format version, and decoding is the
//! one place that checks it. A record written by a newer build (a format this build does not
//! know) is refused with a clear error instead of being half-understood; older formats are
//! upgraded where they are decoded.

use serde::de::DeserializeOwned;

/// A persisted struct with a format version.
pub trait Versioned {
    /// The newest format this build writes and understands.
    const FORMAT: u32;
    /// The format the decoded record says it has.
    fn format(&self) -> u32;
}

/// Decodes a stored record, refusing a format newer than this build understands. `what` names
/// the record in errors ("token entry", "lease").
pub fn decode<T: DeserializeOwned + Versioned>(what: &str, bytes: &[u8]) -> Result<T, String> {
    let record: T = serde_json::from_slice(bytes).map_err(|e| format!("decoding {what}: {e}"))?;
    if record.format() > T::FORMAT {
        return Err(format!(
            "{what} has format {}, newer than this build understands ({})",
            record.format(),
            T::FORMAT
        ));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct R {
        version: u32,
    }
    impl Versioned for R {
        const FORMAT: u32 = 2;
        fn format(&self) -> u32 {
            self.version
        }
    }

    #[test]
    fn newer_formats_are_refused_older_ones_read() {
        assert!(decode::<R>("r", br#"{"version": 1}"#).is_ok());
        assert!(decode::<R>("r", br#"{"version": 2}"#).is_ok());
        let e = decode::<R>("r", br#"{"version": 3}"#).err().unwrap();
        assert!(
            e.contains("format 3, newer than this build understands (2)"),
            "{e}"
        );
        assert!(decode::<R>("r", b"{").unwrap_err().contains("decoding r"));
    }
}
