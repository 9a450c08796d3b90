//! The encoded buffers of the ABI: the entries a storage `list` returns,
//! as repeated `key_len:u32le key version:u64le value_len:u32le value`, and
//! the entries `changes_since` returns, the same with version 0 (and no
//! value) for a key that is gone.
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

/// Encodes the entries of a `changes_since` reply (`None`: gone).
pub fn encode_changes<'a>(
    entries: impl IntoIterator<Item = (&'a str, Option<&'a Versioned>)>,
) -> Vec<u8> {
    let gone = Versioned {
        value: Vec::new(),
        version: 0,
    };
    let mut out = Vec::new();
    for (key, entry) in entries {
        out.extend(encode_entries([(key, entry.unwrap_or(&gone))]));
    }
    out
}

/// Decodes a `changes_since` reply for `prefix`, as [`decode_entries`]
/// but with version 0 meaning "gone" (and then no value).
pub fn decode_changes(
    prefix: &str,
    bytes: &[u8],
) -> Result<Vec<(String, Option<Versioned>)>, String> {
    decode(prefix, bytes, true)?
        .into_iter()
        .enumerate()
        .map(|(at, (key, entry))| match entry.version {
            0 if !entry.value.is_empty() => Err(format!("entry {at}: a value for a gone key")),
            0 => Ok((key, None)),
            _ => Ok((key, Some(entry))),
        })
        .collect()
}

fn len_u32(len: usize) -> u32 {
    // Keys and values are far below 4 GiB; the host refuses a truncated length.
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Decodes a `list` reply for `prefix`; the error says what is wrong
/// without echoing the bytes.
pub fn decode_entries(prefix: &str, bytes: &[u8]) -> Result<Vec<(String, Versioned)>, String> {
    decode(prefix, bytes, false)
}

fn decode(
    prefix: &str,
    mut bytes: &[u8],
    gone_allowed: bool,
) -> Result<Vec<(String, Versioned)>, String> {
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
        if version == 0 && !gone_allowed {
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
    fn changes_round_trip_and_gone_keys_carry_no_value() {
        let a = v(b"x", 3);
        let bytes = encode_changes([("p/a", Some(&a)), ("p/b", None)]);
        let back = decode_changes("p/", &bytes).expect("decodes");
        assert_eq!(
            back,
            vec![("p/a".to_owned(), Some(a)), ("p/b".to_owned(), None)]
        );
        let gone_with_value = encode_entries([("p/a", &v(b"x", 0))]);
        let err = decode_changes("p/", &gone_with_value).expect_err("refused");
        assert!(err.contains("a value for a gone key"), "{err}");
        assert!(decode_entries("p/", &encode_changes([("p/b", None)])).is_err());
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
