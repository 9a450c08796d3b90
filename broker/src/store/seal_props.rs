//! Property tests of record sealing (issue 9): every sealed record opens
//! under its own name and key, and any modification (a flipped bit,
//! truncation, extension, another name, another key) fails to open.

use proptest::prelude::*;

use super::seal::{OpenError, open, seal};
use crate::master_key::MasterKey;

fn key() -> MasterKey {
    MasterKey::from_bytes([7u8; 32])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn round_trips(name in "[a-z0-9/_-]{0,40}", plain in prop::collection::vec(any::<u8>(), 0..512)) {
        let sealed = seal(&key(), &name, &plain);
        let opened = open(&key(), &name, &sealed).map(|v| v.to_vec());
        prop_assert_eq!(opened, Ok(plain));
    }

    #[test]
    fn any_bit_flip_is_refused(name in "[a-z0-9-]{1,20}", plain in prop::collection::vec(any::<u8>(), 0..256), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut sealed = seal(&key(), &name, &plain);
        let i = at.index(sealed.len());
        sealed[i] ^= 1 << bit;
        prop_assert!(open(&key(), &name, &sealed).is_err());
    }

    #[test]
    fn truncation_and_extension_are_refused(name in "[a-z0-9-]{1,20}", plain in prop::collection::vec(any::<u8>(), 0..256), cut in any::<prop::sample::Index>(), extra in prop::collection::vec(any::<u8>(), 1..32)) {
        let sealed = seal(&key(), &name, &plain);
        let keep = cut.index(sealed.len());
        prop_assert!(open(&key(), &name, &sealed[..keep]).is_err());
        let mut longer = sealed.clone();
        longer.extend_from_slice(&extra);
        prop_assert!(open(&key(), &name, &longer).is_err());
    }

    #[test]
    fn another_name_or_key_is_refused(name in "[a-z0-9-]{1,20}", other in "[a-z0-9-]{1,20}", plain in prop::collection::vec(any::<u8>(), 0..64), key_byte in 0u8..7) {
        let sealed = seal(&key(), &name, &plain);
        if other != name {
            prop_assert_eq!(open(&key(), &other, &sealed).err(), Some(OpenError::Tampered));
        }
        let wrong = MasterKey::from_bytes([key_byte; 32]);
        let refused = matches!(open(&wrong, &name, &sealed), Err(OpenError::WrongKey { .. }));
        prop_assert!(refused);
    }

    /// Arbitrary bytes never open and never panic.
    #[test]
    fn garbage_never_opens(name in ".{0,20}", bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        prop_assert!(open(&key(), &name, &bytes).is_err());
    }
}
