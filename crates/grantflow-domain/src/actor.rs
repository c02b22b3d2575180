//! Actors as people: a name is stored in Unicode NFC without surrounding spaces, may hold no
//! control or invisible (format) character, and two names are the same person for the
//! four-eyes rule when they are equal ignoring case (`alice`, `Alice` and `ALICE` are one).

use unicode_normalization::UnicodeNormalization;

/// Whether `c` is a character that prints nothing or changes how text around it shows: the
/// Unicode format characters (soft hyphen, zero-width spaces and joiners, direction marks
/// and overrides, word joiners, the byte-order mark, interlinear annotation marks) and the
/// Mongolian vowel separator.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// Whether `name` is an acceptable actor: not blank, no control or invisible character.
pub fn is_valid_actor(name: &str) -> bool {
    !name.trim().is_empty() && !name.chars().any(|c| c.is_control() || is_invisible(c))
}

/// The stored form of an actor's name: trimmed, in Unicode NFC.
pub fn normalise_actor(name: &str) -> String {
    name.trim().nfc().collect()
}

/// Whether two actor names are the same person: equal once normalised, ignoring case, and
/// with invisible characters left out (a name stored before they were refused).
pub fn same_actor(a: &str, b: &str) -> bool {
    let key = |name: &str| -> String {
        normalise_actor(name)
            .chars()
            .filter(|c| !is_invisible(*c))
            .flat_map(char::to_lowercase)
            .collect::<String>()
            .nfc()
            .collect()
    };
    key(a) == key(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_differ_only_by_case_or_invisible_characters_are_one_person() {
        assert!(same_actor("alice", "Alice"));
        assert!(same_actor("alice", " ALICE "));
        assert!(same_actor("alice", "alice\u{200B}"));
        // "é" precomposed and as "e" + combining acute accent.
        assert!(same_actor("Jos\u{e9}", "jose\u{301}"));
        assert!(!same_actor("alice", "alicia"));
        assert_eq!(normalise_actor("  jose\u{301} "), "jos\u{e9}");
        assert!(!is_valid_actor("alice\u{200B}"));
        assert!(!is_valid_actor("bob\u{202E}"));
        assert!(!is_valid_actor("   "));
        assert!(is_valid_actor("m.ito"));
        assert!(is_valid_actor("José Pérez"));
    }
}
