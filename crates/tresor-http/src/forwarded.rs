//! `X-Forwarded-For` from trusted proxies: which client address a request is recorded under.
//!
//! Vault's rules (its `x_forwarded_for_*` listener keys): the header is believed only on
//! connections from `authorized_addrs`; the client is the address `hop_skips` entries from the
//! end of the comma-joined chain; `reject_not_present` refuses requests without the header (from
//! anyone) and `reject_not_authorized` refuses the header from anyone else. Refusals are 400s
//! with Vault's messages. Tresor is stricter than Vault in one place: the chosen entry must be an
//! IP address (Vault copies any text into the audit log's `remote_address`).

use std::net::IpAddr;

pub use tresor_sdk::cidr::Cidr;

/// A listener's `X-Forwarded-For` settings (present only when `x_forwarded_for_authorized_addrs`
/// is set, which is what turns the feature on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedFor {
    /// Peers whose header is believed.
    pub authorized_addrs: Vec<Cidr>,
    /// Entries skipped from the end of the chain (`x_forwarded_for_hop_skips`).
    pub hop_skips: usize,
    /// Refuse a header sent by a peer outside `authorized_addrs` (Vault's code defaults to false).
    pub reject_not_authorized: bool,
    /// Refuse requests without the header (Vault's code defaults to false).
    pub reject_not_present: bool,
}

impl ForwardedFor {
    /// The client address a request from `peer` carrying `values` (every `X-Forwarded-For`
    /// header, in order) is recorded under: `Ok(None)` keeps the peer's own address, `Err` is the
    /// message of the 400 that refuses it.
    pub fn client(&self, peer: Option<IpAddr>, values: &[&str]) -> Result<Option<IpAddr>, String> {
        if values.iter().all(|v| v.trim().is_empty()) {
            if self.reject_not_present {
                return Err(
                    "missing x-forwarded-for header and configured to reject when not present"
                        .into(),
                );
            }
            return Ok(None);
        }
        let authorized = peer.is_some_and(|p| self.authorized_addrs.iter().any(|c| c.contains(p)));
        if !authorized {
            if self.reject_not_authorized {
                return Err("client address not authorized for x-forwarded-for and configured to reject connection".into());
            }
            return Ok(None);
        }
        let chain: Vec<&str> = values
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let Some(i) = chain.len().checked_sub(1 + self.hop_skips) else {
            return Err(format!(
                "malformed x-forwarded-for configuration or request, hops to skip ({}) would skip before earliest chain link (chain length {})",
                self.hop_skips,
                chain.len()
            ));
        };
        chain[i].parse::<IpAddr>().map(Some).map_err(|_| {
            format!(
                "malformed x-forwarded-for header: {:?} is not an IP address",
                chain[i]
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_blocks() {
        let cases = [
            ("10.0.0.0/8", "10.200.3.4", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("192.0.2.7", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.8", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("127.0.0.1/32", "::ffff:127.0.0.1", true),
            ("2001:db8::/32", "2001:db8:1::5", true),
            ("2001:db8::/32", "2001:db9::5", false),
            ("::/0", "::1", true),
            ("10.0.0.0/8", "::1", false),
        ];
        for (block, addr, want) in cases {
            let c: Cidr = block.parse().unwrap();
            assert_eq!(c.contains(ip(addr)), want, "{block} contains {addr}");
        }
        for bad in [
            "",
            "juan",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/x",
            "10.0.0/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} must not parse");
        }
    }

    fn settings(reject_not_authorized: bool, reject_not_present: bool) -> ForwardedFor {
        ForwardedFor {
            authorized_addrs: vec!["127.0.0.0/8".parse().unwrap()],
            hop_skips: 1,
            reject_not_authorized,
            reject_not_present,
        }
    }

    #[test]
    fn vaults_rules() {
        let lb = Some(ip("127.0.0.1"));
        let outsider = Some(ip("192.0.2.1"));
        let chain = ["198.51.100.1, 203.0.113.7", "10.0.0.9"];
        // From an authorized peer: the entry one hop from the end of the joined chain.
        assert_eq!(
            settings(false, false).client(lb, &chain),
            Ok(Some(ip("203.0.113.7")))
        );
        // Not present: kept as is, or refused.
        assert_eq!(settings(false, false).client(lb, &[]), Ok(None));
        assert_eq!(settings(false, false).client(lb, &[" "]), Ok(None));
        let e = settings(false, true).client(outsider, &[]).unwrap_err();
        assert!(e.contains("missing x-forwarded-for"), "{e}");
        // From an unauthorized peer: ignored, or refused.
        assert_eq!(settings(false, false).client(outsider, &chain), Ok(None));
        let e = settings(true, false).client(outsider, &chain).unwrap_err();
        assert!(e.contains("not authorized"), "{e}");
        // Too many hops to skip, and an entry that is not an address.
        let e = settings(false, false)
            .client(lb, &["10.0.0.9"])
            .unwrap_err();
        assert!(e.contains("hops to skip (1)"), "{e}");
        let e = settings(false, false)
            .client(lb, &["evil, 10.0.0.9"])
            .unwrap_err();
        assert!(e.contains("\"evil\" is not an IP address"), "{e}");
    }
}
