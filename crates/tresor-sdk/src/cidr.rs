//! Address blocks (`10.0.0.0/8`, `2001:db8::/32`, one address): what `token_bound_cidrs`,
//! listener `x_forwarded_for_authorized_addrs` and auth methods' bound CIDRs are made of.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address (`192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in this block. IPv4-mapped IPv6 addresses match IPv4 blocks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let bad = || format!("{s:?} is not an IP address or CIDR block");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Whether `remote` (an IP address as text) lies in one of `blocks`. An empty list binds
/// nothing (every address is fine); a missing or unparsable address is in no block.
pub fn allows(blocks: &[Cidr], remote: Option<&str>) -> bool {
    if blocks.is_empty() {
        return true;
    }
    remote
        .and_then(|r| r.parse::<IpAddr>().ok())
        .is_some_and(|ip| blocks.iter().any(|b| b.contains(ip)))
}

/// Parses a list of blocks, naming the first bad one.
pub fn parse_list(items: &[String]) -> Result<Vec<Cidr>, String> {
    items.iter().map(|s| s.parse::<Cidr>()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_contain_what_they_should() {
        let b: Vec<Cidr> =
            parse_list(&["10.0.0.0/8".into(), "127.0.0.2/32".into(), "::1".into()]).unwrap();
        for (ip, want) in [
            ("10.1.2.3", true),
            ("11.0.0.1", false),
            ("127.0.0.2", true),
            ("127.0.0.1", false),
            ("::1", true),
            ("::ffff:10.9.9.9", true),
            ("not an ip", false),
        ] {
            assert_eq!(allows(&b, Some(ip)), want, "{ip}");
        }
        assert!(!allows(&b, None));
        assert!(allows(&[], None));
        assert!(parse_list(&["10.0.0.0/33".into()]).is_err());
        assert!(parse_list(&["banana".into()]).is_err());
    }
}
