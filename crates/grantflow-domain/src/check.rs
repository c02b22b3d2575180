//! The rule check of a stored log: every command's events must be the events the decider
//! appends for the command they claim to come from, decided on the world before them.
//!
//! [`check_command`] takes the events one command appended (consecutive envelopes with the
//! same command id), rebuilds the command they come from (its JSON, from the first event's
//! payload), runs it through the real parser ([`parse_command_on`], with the event's
//! recorded date as "today") and [`decide`], and demands that the decider's events equal
//! the stored ones exactly: types, payloads (field by field, then byte for byte), streams
//! and schemas. A refusal by the parser or the decider is reported with its own
//! [`ErrorCode`]; anything the decider could not have written at all is
//! [`RuleCode::EventNotDerivable`]. No rule is written twice: the check is the decider.
//!
//! Logs written by the first release (tests/fixtures/part-one) hold two forms the decider no
//! longer writes; each is accepted by a narrow allowance named `legacy_*` below, and by
//! nothing else.

use serde_json::{Map, Value};

use crate::command::{Command, CommandRequest};
use crate::decide::decide;
use crate::error::ErrorCode;
use crate::event::Event;
use crate::money::Money;
use crate::parse::parse_command_on;
use crate::values::Date;
use crate::world::{Status, World};

/// Why a stored event breaks the rules: a rule of the domain, or not the decider's at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleCode {
    /// The parser or the decider refuses the command the events claim to come from, with
    /// this code (docs/errors.md), e.g. `four_eyes_violation`, `over_disbursement`.
    Rule(ErrorCode),
    /// The decider accepts the command but would not write these events (another type,
    /// another figure, another stream or schema, an event too many or too few, or an event
    /// no command starts with).
    EventNotDerivable,
}

/// The code of [`RuleCode::EventNotDerivable`] as the contract spells it.
pub const EVENT_NOT_DERIVABLE: &str = "event_not_derivable";

impl RuleCode {
    /// The code as the contract spells it, e.g. `"four_eyes_violation"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RuleCode::Rule(code) => code.as_str(),
            RuleCode::EventNotDerivable => EVENT_NOT_DERIVABLE,
        }
    }
}

impl std::fmt::Display for RuleCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored event of a command, as the log holds it, with its decoded event.
#[derive(Debug, Clone, Copy)]
pub struct StoredEvent<'a> {
    /// The envelope's stream.
    pub stream: &'a str,
    /// The envelope's payload schema.
    pub schema: u32,
    /// The payload text, as stored (and hashed).
    pub payload: &'a str,
    /// The payload decoded.
    pub event: &'a Event,
}

/// The first stored event of a command that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach {
    /// Which of the command's events (0 for the first).
    pub index: usize,
    /// The rule's code.
    pub code: RuleCode,
    /// What is wrong, with the figures.
    pub message: String,
}

/// Checks the events one command appended (`events`, in log order, at least one) against
/// the world before them: they must be exactly what `decide(world, actor, command)` appends
/// for the command they come from, as issued by `actor` under `command_id` on `today` (the
/// UTC date the events were recorded). Returns the first breach.
pub fn check_command(
    world: &World,
    actor: &str,
    command_id: &str,
    today: Date,
    events: &[StoredEvent<'_>],
) -> Result<(), Breach> {
    let Some(first) = events.first() else {
        return Ok(());
    };
    let Some(mut body) = command_json(first.event) else {
        return Err(not_derivable(
            0,
            format!(
                "a {} is appended only after the event of the command that causes it, never first",
                first.event.event_type()
            ),
        ));
    };
    body.insert("actor".into(), Value::String(actor.to_string()));
    body.insert("command_id".into(), Value::String(command_id.to_string()));
    let request = parse_command_on(&Value::Object(body), today).map_err(|error| Breach {
        index: 0,
        code: RuleCode::Rule(error.code),
        message: error.message,
    })?;
    if request.actor.as_deref() != Some(actor) {
        return Err(not_derivable(
            0,
            format!(
                "the actor {actor:?} is not in the form the engine stores (trimmed, NFC): {:?}",
                request.actor.unwrap_or_default()
            ),
        ));
    }
    let mut expected = decide_legacy_aware(world, actor, request)?;
    legacy_empty_commitment_revision(world, &expected.0, &mut expected.1, events);
    compare(&expected.1, events)
}

/// `decide`, with the one refusal the first release did not make: a `revise-grant` whose
/// new end lies before the grant's start.
fn decide_legacy_aware(
    world: &World,
    actor: &str,
    mut request: CommandRequest,
) -> Result<(Command, Vec<Event>), Breach> {
    let legacy_end = legacy_end_before_start(world, &mut request.command);
    let mut events = decide(world, actor, &request).map_err(|error| Breach {
        index: 0,
        code: RuleCode::Rule(error.code),
        message: error.message,
    })?;
    if let Some(end) = legacy_end {
        if let Some(Event::GrantRevised { ends_on, .. }) = events.first_mut() {
            *ends_on = Some(end);
        }
    }
    Ok((request.command, events))
}

/// Legacy allowance (the first release): `revise-grant` did not check that a new `ends_on`
/// is on or after the grant's `starts_on`, and wrote it as given. Such a revision is decided
/// without its end (every other rule applies as written) and the end put back in the event,
/// exactly as that release wrote it. Returns the end taken out, if any.
fn legacy_end_before_start(world: &World, command: &mut Command) -> Option<Date> {
    let Command::ReviseGrant { grant, ends_on, .. } = command else {
        return None;
    };
    let starts_on = world.grant(grant)?.starts_on?;
    let end = (*ends_on)?;
    if end >= starts_on {
        return None;
    }
    *ends_on = None;
    Some(end)
}

/// Legacy allowance (the first release): `cancel-grant`, and `finalize-grant` from closed,
/// always appended a `fund.commitment_revised`, even when the commitment did not move (from
/// X to X). The decider now leaves such an empty revision out; when the log holds exactly
/// that event where the first release wrote it (right after the grant's own event, as the
/// command's last event), it is expected as that release wrote it.
fn legacy_empty_commitment_revision(
    world: &World,
    command: &Command,
    expected: &mut Vec<Event>,
    stored: &[StoredEvent<'_>],
) {
    let (grant_id, cause) = match command {
        Command::CancelGrant { grant, .. } => (grant, "cancel-grant"),
        Command::FinalizeGrant { grant } => (grant, "finalize-grant"),
        _ => return,
    };
    let Some(grant) = world.grant(grant_id) else {
        return;
    };
    if cause == "finalize-grant" && grant.status != Status::Closed {
        return;
    }
    let Some(fund) = world.fund(&grant.fund) else {
        return;
    };
    let holds_one_more = expected.len() == 1
        && stored.len() == 2
        && matches!(stored[1].event, Event::CommitmentRevised { .. });
    if !holds_one_more {
        return;
    }
    let commitment = Money::new(grant.commitment(), fund.currency.decimals());
    expected.push(Event::CommitmentRevised {
        fund: fund.fund.clone(),
        grant: grant.grant.clone(),
        previous_commitment: commitment,
        commitment,
        cause: cause.to_string(),
    });
}

fn not_derivable(index: usize, message: String) -> Breach {
    Breach {
        index,
        code: RuleCode::EventNotDerivable,
        message,
    }
}

/// The stored events against the decider's: the first difference.
fn compare(expected: &[Event], stored: &[StoredEvent<'_>]) -> Result<(), Breach> {
    for (index, held) in stored.iter().enumerate() {
        let Some(wanted) = expected.get(index) else {
            return Err(not_derivable(
                index,
                format!(
                    "the command appends {} event(s) ({}); this {} is not one of them",
                    expected.len(),
                    types(expected),
                    held.event.event_type()
                ),
            ));
        };
        compare_one(index, wanted, held)?;
    }
    if stored.len() < expected.len() {
        return Err(not_derivable(
            0,
            format!(
                "the command appends {} event(s) ({}); the log holds only {}",
                expected.len(),
                types(expected),
                stored.len()
            ),
        ));
    }
    Ok(())
}

fn types(events: &[Event]) -> String {
    events
        .iter()
        .map(Event::event_type)
        .collect::<Vec<_>>()
        .join(", ")
}

fn compare_one(index: usize, wanted: &Event, held: &StoredEvent<'_>) -> Result<(), Breach> {
    if wanted.event_type() != held.event.event_type() {
        return Err(not_derivable(
            index,
            format!(
                "the log holds a {} where the command appends a {}",
                held.event.event_type(),
                wanted.event_type()
            ),
        ));
    }
    if wanted != held.event {
        return Err(not_derivable(index, field_difference(wanted, held.event)));
    }
    if wanted.payload_json() != held.payload {
        return Err(not_derivable(
            index,
            format!(
                "the {} payload is not written as the decider writes it (compact JSON, fields in order)",
                wanted.event_type()
            ),
        ));
    }
    let stream = wanted.stream();
    if stream != held.stream {
        return Err(not_derivable(
            index,
            format!(
                "the {} is filed under stream {}; it belongs to stream {stream}",
                wanted.event_type(),
                held.stream
            ),
        ));
    }
    if wanted.schema() != held.schema {
        return Err(not_derivable(
            index,
            format!(
                "the {} has schema {}; its payload is of schema {}",
                wanted.event_type(),
                held.schema,
                wanted.schema()
            ),
        ));
    }
    Ok(())
}

/// Names the first payload field in which `held` differs from `wanted`.
fn field_difference(wanted: &Event, held: &Event) -> String {
    let wanted_payload = payload_value(wanted);
    let held_payload = payload_value(held);
    let keys = wanted_payload.keys().chain(held_payload.keys());
    for key in keys {
        let (a, b) = (wanted_payload.get(key), held_payload.get(key));
        if a != b {
            let shown = |value: Option<&Value>| match value {
                Some(value) => value.to_string(),
                None => "absent".to_string(),
            };
            return format!(
                "the {}'s field `{key}` is {}; the decider writes {}",
                held.event_type(),
                shown(b),
                shown(a)
            );
        }
    }
    format!(
        "the {} differs from what the decider writes",
        held.event_type()
    )
}

/// An event's payload as a JSON object.
fn payload_value(event: &Event) -> Map<String, Value> {
    match serde_json::to_value(event) {
        Ok(Value::Object(mut tagged)) => match tagged.remove("payload") {
            Some(Value::Object(payload)) => payload,
            _ => Map::new(),
        },
        _ => Map::new(),
    }
}

/// The command JSON (without `actor` and `command_id`) that a command's first event comes
/// from: its payload, renamed to the command's fields, without what the decider adds
/// itself. `None` for the events no command starts with.
fn command_json(event: &Event) -> Option<Map<String, Value>> {
    // (command, payload fields the decider derives itself, renames)
    let (command, derived, renamed): (&str, &[&str], &[(&str, &str)]) = match event {
        Event::FundRegistered { .. } => ("register-fund", &[], &[]),
        Event::ContributionRecorded { .. } => ("record-contribution", &[], &[]),
        Event::GrantProposed { .. } => (
            "submit-proposal",
            &["submitted_by"],
            &[("requested", "amount")],
        ),
        Event::GrantRejected { .. } => ("reject-proposal", &[], &[]),
        Event::GrantApproved { .. } => ("approve-grant", &["fund", "amount"], &[]),
        Event::AgencyAssigned { .. } => ("assign-agency", &[], &[]),
        Event::AllocationRevised { .. } => ("revise-allocation", &["previous_allocation"], &[]),
        Event::AgencyWithdrawn { .. } => ("withdraw-agency", &["allocation"], &[]),
        Event::DisbursementRecorded { .. } => ("record-disbursement", &[], &[]),
        Event::ExpenditureRecorded { .. } => ("record-expenditure", &[], &[]),
        Event::RefundRecorded { .. } => ("record-refund", &[], &[]),
        Event::GrantRevised { .. } => (
            "revise-grant",
            &["previous_amount", "previous_ends_on"],
            &[],
        ),
        Event::GrantSuspended { .. } => ("suspend-grant", &[], &[]),
        Event::GrantResumed { .. } => ("resume-grant", &["status"], &[]),
        Event::GrantCancelled { .. } => ("cancel-grant", &[], &[]),
        Event::GrantClosed { .. } => ("close-grant", &[], &[]),
        Event::GrantFinalized { .. } => ("finalize-grant", &[], &[]),
        Event::TermsRevised { .. } => ("revise-fund-terms", &[], &[]),
        Event::PledgeRecorded { .. } => ("record-pledge", &[], &[]),
        Event::IncomeRecorded { .. } => ("record-income", &[], &[]),
        Event::FundDocumentAttached { .. } | Event::GrantDocumentAttached { .. } => {
            ("attach-document", &[], &[])
        }
        Event::ReportScheduled { .. } => ("schedule-report", &[], &[]),
        Event::ReportSubmitted { .. } => ("submit-report", &["submitted_by"], &[]),
        Event::ReportAccepted { .. } => ("accept-report", &[], &[]),
        Event::ReportReturned { .. } => ("return-report", &[], &[]),
        Event::GrantCommitted { .. }
        | Event::CommitmentRevised { .. }
        | Event::FeeCharged { .. } => return None,
    };
    let mut body = Map::new();
    body.insert("command".into(), Value::String(command.into()));
    for (key, value) in payload_value(event) {
        if derived.contains(&key.as_str()) {
            continue;
        }
        let key = renamed
            .iter()
            .find(|(from, _)| *from == key)
            .map_or(key.clone(), |(_, to)| (*to).to_string());
        body.insert(key, value);
    }
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evolve::evolve;
    use crate::parse::parse_command;
    use serde_json::json;

    fn today() -> Date {
        Date::parse("2030-01-01").unwrap()
    }

    /// Decides `body` as `actor`, checks its own events back, and folds them in.
    fn run(world: &mut World, actor: &str, body: Value) -> Vec<Event> {
        let request = parse_command(&body).unwrap();
        let events = decide(world, actor, &request).unwrap();
        let streams: Vec<String> = events.iter().map(Event::stream).collect();
        let payloads: Vec<String> = events.iter().map(Event::payload_json).collect();
        let stored: Vec<StoredEvent> = events
            .iter()
            .enumerate()
            .map(|(i, event)| StoredEvent {
                stream: &streams[i],
                schema: event.schema(),
                payload: &payloads[i],
                event,
            })
            .collect();
        assert_eq!(check_command(world, actor, "c-1", today(), &stored), Ok(()));
        for event in &events {
            evolve(world, 1, event);
        }
        events
    }

    fn check(world: &World, actor: &str, events: &[Event]) -> Result<(), Breach> {
        let streams: Vec<String> = events.iter().map(Event::stream).collect();
        let payloads: Vec<String> = events.iter().map(Event::payload_json).collect();
        let stored: Vec<StoredEvent> = events
            .iter()
            .enumerate()
            .map(|(i, event)| StoredEvent {
                stream: &streams[i],
                schema: event.schema(),
                payload: &payloads[i],
                event,
            })
            .collect();
        check_command(world, actor, "c-1", today(), &stored)
    }

    fn funded() -> World {
        let mut world = World::default();
        run(
            &mut world,
            "a",
            json!({"command": "register-fund", "fund": "F", "name": "F", "currency": "USD",
                   "admin_fee_percent": "1.00"}),
        );
        run(
            &mut world,
            "a",
            json!({"command": "record-contribution", "fund": "F", "donor": "D",
                   "amount": "1000.00", "received_on": "2020-01-01"}),
        );
        run(
            &mut world,
            "sub",
            json!({"command": "submit-proposal", "fund": "F", "grant": "G", "title": "T",
                   "amount": "500.00", "starts_on": "2020-01-01", "ends_on": "2021-01-01"}),
        );
        world
    }

    #[test]
    fn the_deciders_own_events_pass_and_a_forged_approval_does_not() {
        let mut world = funded();
        let approval = {
            let request = parse_command(
                &json!({"command": "approve-grant", "grant": "G", "decided_on": "2020-02-01"}),
            )
            .unwrap();
            decide(&world, "mgr", &request).unwrap()
        };
        let breach = check(&world, "sub", &approval).unwrap_err();
        assert_eq!(breach.code, RuleCode::Rule(ErrorCode::FourEyesViolation));
        assert_eq!(check(&world, "mgr", &approval), Ok(()));
        // The approval without its commitment: an event too few.
        let breach = check(&world, "mgr", &approval[..1]).unwrap_err();
        assert_eq!(breach.code, RuleCode::EventNotDerivable);
        // A commitment first: no command starts with one.
        let breach = check(&world, "mgr", &approval[1..]).unwrap_err();
        assert_eq!(
            (breach.index, breach.code),
            (0, RuleCode::EventNotDerivable)
        );
        run(
            &mut world,
            "mgr",
            json!({"command": "approve-grant", "grant": "G", "decided_on": "2020-02-01"}),
        );
    }

    #[test]
    fn a_changed_figure_is_named_by_its_field() {
        let world = funded();
        let mut events = {
            let request = parse_command(&json!({"command": "record-contribution", "fund": "F",
                "donor": "D", "amount": "100.00", "received_on": "2020-01-01"}))
            .unwrap();
            decide(&world, "a", &request).unwrap()
        };
        assert_eq!(events.len(), 2, "a contribution and its fee");
        if let Event::FeeCharged { amount, .. } = &mut events[1] {
            *amount = Money::new(crate::money::Amount(2), 2);
        }
        let breach = check(&world, "a", &events).unwrap_err();
        assert_eq!(
            (breach.index, breach.code),
            (1, RuleCode::EventNotDerivable)
        );
        assert!(breach.message.contains("`amount`"), "{}", breach.message);
    }

    #[test]
    fn the_legacy_empty_commitment_revision_is_accepted_only_as_written_then() {
        let mut world = funded();
        run(
            &mut world,
            "mgr",
            json!({"command": "approve-grant", "grant": "G", "decided_on": "2020-02-01"}),
        );
        run(
            &mut world,
            "sec",
            json!({"command": "revise-grant", "grant": "G", "reason": "r", "amount": "500.00"}),
        );
        // Nothing disbursed: cancelling moves the commitment from 500 to 0, a real change;
        // grant it a disbursement first, so that the commitment stays.
        run(
            &mut world,
            "sec",
            json!({"command": "assign-agency", "grant": "G", "agency": "A",
                   "allocation": "500.00"}),
        );
        run(
            &mut world,
            "fin",
            json!({"command": "record-disbursement", "grant": "G", "agency": "A",
                   "amount": "500.00", "paid_on": "2020-03-01"}),
        );
        let cancelled = Event::GrantCancelled {
            grant: "G".into(),
            reason: "r".into(),
        };
        assert_eq!(
            check(&world, "sec", std::slice::from_ref(&cancelled)),
            Ok(())
        );
        let usd = |minor: i128| Money::new(crate::money::Amount(minor), 2);
        let empty = Event::CommitmentRevised {
            fund: "F".into(),
            grant: "G".into(),
            previous_commitment: usd(50_000),
            commitment: usd(50_000),
            cause: "cancel-grant".into(),
        };
        assert_eq!(check(&world, "sec", &[cancelled.clone(), empty]), Ok(()));
        let moved = Event::CommitmentRevised {
            fund: "F".into(),
            grant: "G".into(),
            previous_commitment: usd(50_000),
            commitment: usd(40_000),
            cause: "cancel-grant".into(),
        };
        let breach = check(&world, "sec", &[cancelled, moved]).unwrap_err();
        assert_eq!(
            (breach.index, breach.code),
            (1, RuleCode::EventNotDerivable)
        );
    }

    #[test]
    fn the_legacy_end_before_start_keeps_every_other_rule() {
        let mut world = funded();
        run(
            &mut world,
            "mgr",
            json!({"command": "approve-grant", "grant": "G", "decided_on": "2020-02-01"}),
        );
        let usd = |minor: i128| Money::new(crate::money::Amount(minor), 2);
        let early = |amount: i128, date: &str| Event::GrantRevised {
            grant: "G".into(),
            previous_amount: usd(50_000),
            amount: usd(amount),
            previous_ends_on: Date::parse("2021-01-01"),
            ends_on: Date::parse(date),
            reason: "r".into(),
            decided_on: None,
            sectors: None,
        };
        assert_eq!(check(&world, "mgr", &[early(50_000, "2019-06-30")]), Ok(()));
        let breach = check(&world, "sub", &[early(50_000, "2019-06-30")]).unwrap_err();
        assert_eq!(breach.code, RuleCode::Rule(ErrorCode::FourEyesViolation));
    }
}
