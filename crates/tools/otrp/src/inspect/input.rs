//! Reading inspect input: a file or stdin, binary or hex text (auto-detected).

use std::io::Read;
use std::path::Path;

/// What the input turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Raw bytes.
    Binary,
    /// Hex text (whitespace, `0x` prefixes and `#`/`//` comment lines ignored).
    Hex,
}

/// Reads `path` (`-` for stdin) and returns the bytes it stands for.
pub fn read(path: &Path) -> std::io::Result<(Vec<u8>, Encoding)> {
    let raw = if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().lock().read_to_end(&mut buf)?;
        buf
    } else {
        std::fs::read(path)?
    };
    Ok(decode_text(raw))
}

/// Turns file content into bytes: hex text is decoded, anything else is taken as binary.
/// JSON text is binary here (the caller recognises it by its first character).
pub fn decode_text(raw: Vec<u8>) -> (Vec<u8>, Encoding) {
    match hex_text(&raw) {
        Some(bytes) => (bytes, Encoding::Hex),
        None => (raw, Encoding::Binary),
    }
}

/// Decodes hex text, or `None` if `raw` is not hex text. Accepts line breaks, spaces,
/// an optional `0x` prefix per token and comment lines starting with `#` or `//`.
fn hex_text(raw: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut digits = String::with_capacity(text.len());
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with("//") {
            continue;
        }
        for token in line.split_whitespace() {
            let token = token
                .strip_prefix("0x")
                .or_else(|| token.strip_prefix("0X"))
                .unwrap_or(token);
            if !token.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            digits.push_str(token);
        }
    }
    if digits.is_empty() || digits.len() % 2 != 0 {
        return None;
    }
    hex::decode(digits).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_with_line_breaks_and_comments() {
        let (b, e) = decode_text(b"# a comment\n82 05\nA1 14\n".to_vec());
        assert_eq!(e, Encoding::Hex);
        assert_eq!(b, vec![0x82, 0x05, 0xa1, 0x14]);
    }

    #[test]
    fn binary_stays_binary() {
        let (b, e) = decode_text(vec![0x82, 0x05, 0xa0]);
        assert_eq!(e, Encoding::Binary);
        assert_eq!(b, vec![0x82, 0x05, 0xa0]);
    }

    #[test]
    fn odd_hex_is_binary() {
        let (_, e) = decode_text(b"abc".to_vec());
        assert_eq!(e, Encoding::Binary);
    }

    #[test]
    fn json_is_binary() {
        let (_, e) = decode_text(br#"{"a":1}"#.to_vec());
        assert_eq!(e, Encoding::Binary);
    }
}
