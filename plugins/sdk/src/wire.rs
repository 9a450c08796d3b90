//! The one encoded buffer of the ABI: the entries a storage `list` returns,
//! as repeated `key_len:u32le key version:u64le value_len:u32le value`.
//!
//! Decoding is strict because the bytes come from a plugin the broker does
//! not trust: lengths are bounds-checked, keys must be UTF-8, start with the
//! prefix asked for and come in ascending order, versions must be positive.

use crate::storage::Versioned;

/// Encodes `entries` for a `list` reply.
pub fn encode_entries<'a>(entries: impl IntoIterator<Item = (&'a str, &'a Versioned)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, entry) in entries {
        out.extend_from_slice(&len_u32(key.len()).to_le_bytes());
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&entry.version.to_le_bytes());
        out.extend_from_slice(&len_u32(entry.value.len()).to_le_bytes());
        out.extend_from_slice(&entry.value);
    }
    out
}

fn len_u32(len: usize) -> u32 {
    // Keys and values are far below 4 GiB; the host refuses a truncated length.
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Decodes a `list` reply for `prefix`; the error says what is wrong
/// without echoing the bytes.
pub fn decode_entries(prefix: &str, mut bytes: &[u8]) -> Result<Vec<(String, Versioned)>, String> {
    let mut out: Vec<(String, Versioned)> = Vec::new();
    while !bytes.is_empty() {
        let at = out.len();
        let key_len = take_u32(&mut bytes).ok_or(format!("entry {at}: truncated key length"))?;
        let key = take(&mut bytes, key_len).ok_or(format!("entry {at}: truncated key"))?;
        let key = std::str::from_utf8(key).map_err(|_| format!("entry {at}: key is not UTF-8"))?;
        let version = take(&mut bytes, 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or(format!("entry {at}: truncated version"))?;
        let value_len =
            take_u32(&mut bytes).ok_or(format!("entry {at}: truncated value length"))?;
        let value = take(&mut bytes, value_len).ok_or(format!("entry {at}: truncated value"))?;
        if !key.starts_with(prefix) {
            return Err(format!("entry {at}: key is outside the prefix asked for"));
        }
        if version == 0 {
            return Err(format!("entry {at}: version 0 (versions are positive)"));
        }
        if out.last().is_some_and(|(last, _)| last.as_str() >= key) {
            return Err(format!("entry {at}: keys are not in ascending order"));
        }
        out.push((
            key.to_owned(),
            Versioned {
                value: value.to_vec(),
                version,
            },
        ));
    }
    Ok(out)
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (head, tail) = bytes.split_at(n);
    *bytes = tail;
    Some(head)
}

fn take_u32(bytes: &mut &[u8]) -> Option<usize> {
    let raw: [u8; 4] = take(bytes, 4)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(raw)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(value: &[u8], version: u64) -> Versioned {
        Versioned {
            value: value.to_vec(),
            version,
        }
    }

    #[test]
    fn round_trips() {
        let a = v(b"", 1);
        let b = v(&[0, 255, 7], 9);
        let bytes = encode_entries([("p/a", &a), ("p/b", &b)]);
        let back = decode_entries("p/", &bytes).expect("decodes");
        assert_eq!(back, vec![("p/a".to_owned(), a), ("p/b".to_owned(), b)]);
        assert_eq!(decode_entries("", &[]).expect("empty"), vec![]);
    }

    #[test]
    fn refuses_garbage() {
        let good = encode_entries([("p/a", &v(b"x", 1))]);
        let unordered = encode_entries([("p/b", &v(b"x", 1)), ("p/a", &v(b"x", 2))]);
        let zero = encode_entries([("p/a", &v(b"x", 0))]);
        let mut not_utf8 = good.clone();
        not_utf8[4] = 0xff;
        let cases: [(&str, &[u8], &str); 6] = [
            ("p/", &good[..good.len() - 1], "truncated value"),
            ("p/", &good[..3], "truncated key length"),
            ("q/", &good, "outside the prefix"),
            ("p/", &unordered, "ascending order"),
            ("p/", &zero, "version 0"),
            ("", &not_utf8, "not UTF-8"),
        ];
        for (prefix, bytes, expected) in cases {
            let err = decode_entries(prefix, bytes).expect_err(expected);
            assert!(err.contains(expected), "{err} should say {expected}");
        }
    }
}
