//! QR barcodes as PNG, without an image stack: the `qrcode` crate gives the module matrix,
//! and this file writes an 8-bit greyscale PNG of it by hand (IHDR, one IDAT holding a zlib
//! stream of stored, uncompressed deflate blocks, IEND; CRC-32 and Adler-32 as the format
//! requires). A 200-pixel barcode is about 40 KB: the price of ~60 lines instead of a
//! compressor and an image library in the server.

/// The PNG of `text` as a QR code about `size` pixels square (never smaller than the code
/// with its quiet zone), black on white.
pub fn qr_png(text: &str, size: usize) -> Result<Vec<u8>, String> {
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|e| format!("QR encoding: {e}"))?;
    let modules = code.width();
    let colors = code.to_colors();
    let quiet = 4;
    let total = modules + 2 * quiet;
    let scale = (size / total).max(1);
    let side = (total * scale).max(size);
    let offset = (side - total * scale) / 2;
    let mut raw = Vec::with_capacity(side * (side + 1));
    for y in 0..side {
        raw.push(0); // filter: none
        for x in 0..side {
            let dark = (|| {
                let mx = x.checked_sub(offset)? / scale;
                let my = y.checked_sub(offset)? / scale;
                let mx = mx.checked_sub(quiet).filter(|m| *m < modules)?;
                let my = my.checked_sub(quiet).filter(|m| *m < modules)?;
                Some(colors[my * modules + mx] == qrcode::Color::Dark)
            })()
            .unwrap_or(false);
            raw.push(if dark { 0 } else { 255 });
        }
    }
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(side as u32).to_be_bytes());
    ihdr.extend_from_slice(&(side as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &zlib_stored(&raw));
    chunk(&mut png, b"IEND", &[]);
    Ok(png)
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream of stored deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(65_535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= 65_521;
        b %= 65_521;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
    }

    #[test]
    fn a_png_has_the_asked_size_and_valid_structure() {
        let png = qr_png("otpauth://totp/Acme:alice?secret=JBSWY3DPEHPK3PXP", 200).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 200);
        assert!(png.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82]));
        // A block boundary: more than one stored block.
        assert!(zlib_stored(&vec![7u8; 70_000]).len() > 70_000);
    }
}
