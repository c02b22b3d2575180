//! The envelope's canonical bytes, its line form and the hash chain.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use grantflow_store::envelope::{now_rfc3339, ChainVerifier};
use grantflow_store::{Envelope, EnvelopeError, ZERO_HASH};
use sha2::{Digest, Sha256};

fn tiny(position: u64, prev_hash: [u8; 32]) -> Envelope {
    let mut envelope = Envelope {
        position,
        stream: "fund-F1".to_string(),
        version: position,
        event_type: "fund.registered".to_string(),
        schema: 1,
        recorded_at: "2024-05-01T10:00:00.000001Z".to_string(),
        actor: "fin\"ance".to_string(),
        command_id: "cmd-1".to_string(),
        correlation_id: "cmd-1".to_string(),
        payload: r#"{"fund":"F1","name":"Caf\u00e9 é"}"#.to_string(),
        prev_hash,
        hash: ZERO_HASH,
    };
    envelope.hash = envelope.compute_hash();
    envelope
}

const TINY_CANONICAL: &str = r#"{"position":1,"stream":"fund-F1","version":1,"type":"fund.registered","schema":1,"recorded_at":"2024-05-01T10:00:00.000001Z","actor":"fin\"ance","command_id":"cmd-1","correlation_id":"cmd-1","payload":{"fund":"F1","name":"Caf\u00e9 é"},"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000"}"#;

#[test]
fn known_answer_hash() {
    let envelope = tiny(1, ZERO_HASH);
    assert_eq!(
        String::from_utf8(envelope.canonical_bytes()).unwrap(),
        TINY_CANONICAL
    );
    let mut hasher = Sha256::new();
    hasher.update([0u8; 32]);
    hasher.update(TINY_CANONICAL.as_bytes());
    let expected: [u8; 32] = hasher.finalize().into();
    assert_eq!(envelope.hash, expected);
    let line = envelope.to_line();
    let expected_line = format!(
        "{},\"hash\":\"{}\"}}",
        &TINY_CANONICAL[..TINY_CANONICAL.len() - 1],
        hex::encode(expected)
    );
    assert_eq!(line, expected_line);
}

#[test]
fn line_round_trip() {
    let first = tiny(1, ZERO_HASH);
    let second = tiny(2, first.hash);
    for envelope in [first, second] {
        let line = envelope.to_line();
        assert_eq!(Envelope::from_line(&line).unwrap(), envelope);
        assert_eq!(
            Envelope::from_line(&format!("{line}\r\n")).unwrap(),
            envelope
        );
        assert_eq!(Envelope::from_line(&format!("{line}\n")).unwrap(), envelope);
    }
}

#[test]
fn tampered_line_names_position() {
    let envelope = tiny(1, ZERO_HASH);
    let second = tiny(2, envelope.hash);
    let line = second.to_line().replace("Caf", "Cof");
    match Envelope::from_line(&line) {
        Err(error @ EnvelopeError::HashMismatch { position: 2, .. }) => {
            assert!(error.to_string().contains("event 2"), "{error}");
            assert_eq!(error.position(), Some(2));
        }
        other => panic!("expected a hash mismatch at 2, got {other:?}"),
    }
}

#[test]
fn non_canonical_lines_refused() {
    let line = tiny(1, ZERO_HASH).to_line();
    let cases = [
        line.replacen(",\"stream\"", ", \"stream\"", 1),
        line.replacen("{\"position\":1", "{ \"position\":1", 1),
        line.replacen("fin\\\"ance", "fin\\u0022ance", 1),
        // stream and version swapped
        line.replacen(
            "\"stream\":\"fund-F1\",\"version\":1",
            "\"version\":1,\"stream\":\"fund-F1\"",
            1,
        ),
        format!("{line} "),
    ];
    for case in cases {
        assert_ne!(case, line);
        match Envelope::from_line(&case) {
            Err(EnvelopeError::NotCanonical { position: 1 }) => {}
            other => panic!("expected NotCanonical for {case}, got {other:?}"),
        }
    }
}

#[test]
fn malformed_lines_refused() {
    let line = tiny(1, ZERO_HASH).to_line();
    let hex = hex::encode(tiny(1, ZERO_HASH).hash);
    let cases = [
        ("{}".to_string(), None),
        ("not json".to_string(), None),
        (line.replacen(",\"schema\":1", "", 1), None),
        (
            line.replacen("\"schema\":1", "\"schema\":1,\"extra\":2", 1),
            None,
        ),
        (line.replacen(&hex, &hex.to_uppercase(), 1), Some(1)),
        (line.replacen(&hex, &hex[..62], 1), Some(1)),
        (
            line.replacen("2024-05-01T10:00:00.000001Z", "2024-05-01T10:00:00Z", 1),
            Some(1),
        ),
        (
            line.replacen("{\"fund\":\"F1\",", "{\"fund\": \"F1\",", 1),
            Some(1),
        ),
        (
            line.replacen(r#"{"fund":"F1","name":"Caf\u00e9 é"}"#, "[1]", 1),
            Some(1),
        ),
        (line.replacen(",\"hash\"", ",\"hash\":null,\"x\"", 1), None),
    ];
    for (case, position) in cases {
        match Envelope::from_line(&case) {
            Err(error) => assert_eq!(error.position(), position, "{case}: {error}"),
            Ok(_) => panic!("accepted {case}"),
        }
    }
}

#[test]
fn json_value_has_every_field() {
    let envelope = tiny(1, ZERO_HASH);
    let value = envelope.to_json_value();
    assert_eq!(value["position"], 1);
    assert_eq!(value["type"], "fund.registered");
    assert_eq!(value["payload"]["fund"], "F1");
    assert_eq!(value["hash"], hex::encode(envelope.hash));
    assert_eq!(value["prev_hash"], hex::encode(ZERO_HASH));
    assert_eq!(value.as_object().unwrap().len(), 12);
}

fn chain(count: u64) -> Vec<Envelope> {
    let mut out: Vec<Envelope> = Vec::new();
    for position in 1..=count {
        let prev = out.last().map_or(ZERO_HASH, |e| e.hash);
        let mut envelope = tiny(position, prev);
        envelope.stream = format!("grant-{}", position % 2);
        envelope.version = position.div_ceil(2);
        envelope.hash = envelope.compute_hash();
        out.push(envelope);
    }
    out
}

fn first_error(events: &[Envelope]) -> Option<EnvelopeError> {
    let mut verifier = ChainVerifier::new();
    events.iter().find_map(|e| verifier.check(e).err())
}

#[test]
fn chain_verifier_accepts_a_good_chain() {
    let events = chain(6);
    let mut verifier = ChainVerifier::new();
    for envelope in &events {
        verifier.check(envelope).unwrap();
    }
    assert_eq!(verifier.head(), (6, events[5].hash));
    assert_eq!(verifier.stream_versions()["grant-0"], 3);
}

#[test]
fn chain_verifier_names_first_bad_position() {
    let events = chain(6);
    let check = |events: Vec<Envelope>, position: u64| {
        let error = first_error(&events).expect("refused");
        assert_eq!(error.position(), Some(position), "{error}");
    };
    // dropped
    let mut dropped = events.clone();
    dropped.remove(3);
    check(dropped, 4);
    // duplicated
    let mut duplicated = events.clone();
    duplicated.insert(3, events[2].clone());
    check(duplicated, 4);
    // reordered
    let mut reordered = events.clone();
    reordered.swap(2, 3);
    check(reordered, 3);
    // tampered, hash left alone
    let mut tampered = events.clone();
    tampered[4].actor = "mallory".to_string();
    check(tampered, 5);
    // tampered and re-hashed: the next link breaks
    let mut rehashed = events.clone();
    rehashed[4].actor = "mallory".to_string();
    rehashed[4].hash = rehashed[4].compute_hash();
    check(rehashed, 6);
    // version gap, consistently re-hashed
    let mut gap = events.clone();
    gap[0].version = 2;
    let mut prev = ZERO_HASH;
    for e in &mut gap {
        e.prev_hash = prev;
        e.hash = e.compute_hash();
        prev = e.hash;
    }
    check(gap, 1);
}

#[test]
fn chain_verifier_refuses_time_going_back() {
    let mut events = chain(2);
    events[1].recorded_at = "2024-05-01T09:59:59.999999Z".to_string();
    events[1].hash = events[1].compute_hash();
    let error = first_error(&events).expect("refused");
    assert_eq!(error.position(), Some(2));
}

#[test]
fn now_has_fixed_precision() {
    let now = now_rfc3339();
    assert_eq!(now.len(), 27, "{now}");
    assert!(now.ends_with('Z'));
    assert_eq!(&now[19..20], ".");
}
