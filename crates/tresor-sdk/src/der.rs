//! The one DER reader engines and the listener share: the next element of an input, for the
//! few places that walk a structure by hand (a certificate's key, PKCS#1 inside PKCS#8, an
//! ECDSA signature) rather than parse it whole.

/// One DER element at the start of `input`: (tag, contents, rest). `None` when the length is
/// indefinite, longer than four bytes, or runs past the input.
pub fn next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::next;

    #[test]
    fn short_and_long_lengths_and_truncation() {
        assert_eq!(
            next(&[0x02, 0x01, 0x05, 0xff]),
            Some((0x02, &[0x05][..], &[0xff][..]))
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([0u8; 128]);
        assert_eq!(next(&long).map(|e| e.1.len()), Some(128));
        assert_eq!(next(&[0x04, 0x05, 0x00]), None);
        assert_eq!(next(&[0x30, 0x80]), None);
        assert_eq!(next(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
    }
}
