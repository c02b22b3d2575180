//! Command ids that name their own place in the log.
//!
//! A command sent without an id gets one from the engine. Once the engine knows where the
//! command's events go, it makes a *located* id: a version 8 UUID (RFC 9562) whose first 48
//! bits are the position of the command's first event (big-endian, so located ids sort in log
//! order) and whose other 74 free bits are random. A store finds such a command from its id
//! alone, in the log, and keeps no command-index entry for it (in the sled store that entry
//! would be a sled insert per command, most of the indexer's work). Located ids are an
//! optimisation only: a lookup still tries the index first, so an id of that shape that a
//! client chose (and that names another position) is found there.

use uuid::Uuid;

/// The largest position a located id can name (48 bits).
pub const LOCATED_POSITION_MAX: u64 = (1 << 48) - 1;

/// A fresh located id for a command whose first event is at `position`; `None` past
/// [`LOCATED_POSITION_MAX`] (the caller then makes an ordinary id).
pub fn located_command_id(position: u64) -> Option<String> {
    if position == 0 || position > LOCATED_POSITION_MAX {
        return None;
    }
    let mut bytes = *Uuid::new_v4().as_bytes();
    bytes[..6].copy_from_slice(&position.to_be_bytes()[2..]);
    Some(
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .to_string(),
    )
}

/// The position a located id names, if `command_id` is one, exactly as
/// [`located_command_id`] writes them (hyphenated, lower case).
pub fn located_position(command_id: &str) -> Option<u64> {
    let bytes = command_id.as_bytes();
    // xxxxxxxx-xxxx-8xxx-[89ab]xxx-xxxxxxxxxxxx: checked cheaply before parsing.
    if bytes.len() != 36 || bytes[14] != b'8' || bytes[8] != b'-' {
        return None;
    }
    let uuid = Uuid::try_parse(command_id).ok()?;
    if uuid.get_version_num() != 8
        || uuid.get_variant() != uuid::Variant::RFC4122
        || uuid.hyphenated().encode_lower(&mut Uuid::encode_buffer()) != command_id
    {
        return None;
    }
    let mut position = [0u8; 8];
    position[2..].copy_from_slice(&uuid.as_bytes()[..6]);
    Some(u64::from_be_bytes(position)).filter(|position| *position > 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_located_id_is_a_version_8_uuid_naming_its_position() {
        let id = located_command_id(7).unwrap();
        let uuid = Uuid::parse_str(&id).unwrap();
        assert_eq!(uuid.get_version_num(), 8);
        assert!(id.starts_with("00000000-0007-8"), "{id}");
        assert_eq!(located_position(&id), Some(7));
        assert_ne!(located_command_id(7), located_command_id(7), "random bits");
        assert_eq!(located_command_id(0), None);
        assert_eq!(located_command_id(LOCATED_POSITION_MAX + 1), None);
        let last = located_command_id(LOCATED_POSITION_MAX).unwrap();
        assert_eq!(located_position(&last), Some(LOCATED_POSITION_MAX));
    }

    #[test]
    fn other_ids_name_no_position() {
        let id = located_command_id(1234).unwrap();
        for other in [
            id.to_uppercase(),
            id.replace('-', ""),
            format!("{{{id}}}"),
            format!("urn:uuid:{id}"),
            Uuid::new_v4().to_string(),
            Uuid::now_v7().to_string(),
            "00000000-0000-8000-8000-000000000000".to_string(),
            "c1".to_string(),
            String::new(),
        ] {
            assert_eq!(located_position(&other), None, "{other}");
        }
    }

    proptest! {
        #[test]
        fn every_position_round_trips(position in 1..=LOCATED_POSITION_MAX) {
            let id = located_command_id(position).unwrap();
            prop_assert_eq!(located_position(&id), Some(position));
        }

        #[test]
        fn located_ids_sort_in_log_order(
            (a, b) in (1..LOCATED_POSITION_MAX)
                .prop_flat_map(|a| (Just(a), a + 1..=LOCATED_POSITION_MAX))
        ) {
            // Drawn ordered rather than filtered: a filter rejects half the draws, and with
            // many cases (PROPTEST_CASES) proptest gives up on too many rejects.
            prop_assert!(located_command_id(a).unwrap() < located_command_id(b).unwrap());
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,40}") {
            let _ = located_position(&text);
        }
    }
}
