//! JSON string escaping for the encoder: the hot path writes every key and string value
//! through [`write_escaped`], which copies runs of plain bytes eight at a time.

/// Writes `s` as a JSON string, quotes included.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    write_escaped(out, s);
    out.push(b'"');
}

/// Writes the JSON escape of `s`, without quotes. Copies runs of plain bytes at once.
pub fn write_escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip 8 plain bytes at a time: this runs over every `@json` copy and every key.
        if let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
            match first_to_escape(word) {
                None => {
                    i += 8;
                    continue;
                }
                Some(at) => i += at,
            }
        }
        let b = bytes[i];
        i += 1;
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i - 1]);
        out.extend_from_slice(escape);
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// The index of the first byte of `word` (little-endian) that JSON must escape: `"`, `\`
/// or a control character. Bytes of multi-byte UTF-8 characters (0x80 and up) never match.
fn first_to_escape(word: u64) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Bit 7 of a byte is set where the byte is zero; exact for the first (lowest) match.
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    let hits = control | zero(word ^ (ONES * u64::from(b'"'))) | zero(word ^ (ONES * u64::from(b'\\')));
    (hits != 0).then(|| (hits.trailing_zeros() / 8) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_matches_serde_json_at_every_offset() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é€😀 plain text long enough to skip words \" quoted \\ back\u{1f}");
        for start in 0..all.len() {
            let Some(s) = all.get(start..) else { continue };
            let mut out = Vec::new();
            write_json_str(&mut out, s);
            assert_eq!(
                std::str::from_utf8(&out).unwrap(),
                serde_json::to_string(s).unwrap(),
                "from {start}"
            );
        }
    }

    #[test]
    fn escaping_round_trips() {
        for s in [
            "",
            "plain",
            "quote\" back\\slash",
            "ctl\u{0}\u{1f}\n\r\t\u{8}\u{c}",
            "ünïcødé \u{2028} 🦀",
        ] {
            let mut out = Vec::new();
            write_json_str(&mut out, s);
            assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), s);
        }
    }
}
