//! Shared test helpers: command builders and the given/when/then `check`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use grantflow_domain::{decide, evolve, parse_command, DomainError, Event, World};
use serde_json::{json, Value};

/// Default actor of commands that name none (the secretariat).
pub const SECRETARIAT: &str = "sec";
/// The approver, another person than the submitter.
pub const APPROVER: &str = "boss";

/// A world and its log.
#[derive(Default, Clone)]
pub struct Log {
    pub world: World,
    pub events: Vec<Event>,
}

impl Log {
    /// Runs one command: parse, decide with the body's actor (or the secretariat), evolve.
    pub fn run(&mut self, command: &Value) -> Result<Vec<Event>, DomainError> {
        let request = parse_command(command)?;
        let actor = request
            .actor
            .clone()
            .unwrap_or_else(|| SECRETARIAT.to_string());
        let events = decide(&self.world, &actor, &request)?;
        for event in &events {
            self.events.push(event.clone());
            evolve(&mut self.world, self.events.len() as u64, event);
        }
        Ok(events)
    }

    /// Runs commands that must all be accepted.
    pub fn given(commands: &[Value]) -> Log {
        let mut log = Log::default();
        for command in commands {
            if let Err(error) = log.run(command) {
                panic!(
                    "given command {command} was rejected: {} {}",
                    error.code.as_str(),
                    error.message
                );
            }
        }
        log
    }
}

/// Given accepted commands, when one more, then either the event types it appends
/// (space-separated, e.g. "grant.approved fund.grant_committed") or an error code.
/// Returns the error message (or the empty string) for further checks.
pub fn check(given: &[Value], when: Value, then: &str) -> String {
    let mut log = Log::given(given);
    let before = log.world.clone();
    match log.run(&when) {
        Ok(events) => {
            let types: Vec<&str> = events.iter().map(Event::event_type).collect();
            assert_eq!(types.join(" "), then, "when {when}");
            String::new()
        }
        Err(error) => {
            assert_eq!(error.code.as_str(), then, "when {when}: {}", error.message);
            assert_eq!(log.world, before, "a rejected command changed the world");
            assert!(!error.message.is_empty());
            error.message
        }
    }
}

pub fn fund() -> Value {
    json!({"command": "register-fund", "fund": "F", "name": "Trust Fund", "currency": "USD"})
}

pub fn contribute(amount: &str) -> Value {
    json!({"command": "record-contribution", "fund": "F", "donor": "JP", "amount": amount, "received_on": "2012-01-10"})
}

pub fn propose(grant: &str, amount: &str) -> Value {
    json!({"command": "submit-proposal", "fund": "F", "grant": grant, "title": "Migrants in transit", "amount": amount})
}

pub fn approve(grant: &str) -> Value {
    json!({"command": "approve-grant", "grant": grant, "decided_on": "2012-09-27", "actor": APPROVER})
}

pub fn assign(grant: &str, agency: &str, allocation: &str) -> Value {
    json!({"command": "assign-agency", "grant": grant, "agency": agency, "allocation": allocation})
}

pub fn assign_lead(grant: &str, agency: &str, allocation: &str) -> Value {
    json!({"command": "assign-agency", "grant": grant, "agency": agency, "allocation": allocation, "lead": true})
}

pub fn disburse(grant: &str, agency: &str, amount: &str) -> Value {
    json!({"command": "record-disbursement", "grant": grant, "agency": agency, "amount": amount, "paid_on": "2013-01-15"})
}

pub fn expend(grant: &str, agency: &str, amount: &str) -> Value {
    json!({"command": "record-expenditure", "grant": grant, "agency": agency, "amount": amount, "period_end": "2013-06-30"})
}

pub fn refund(grant: &str, agency: &str, amount: &str) -> Value {
    json!({"command": "record-refund", "grant": grant, "agency": agency, "amount": amount, "received_on": "2013-07-01"})
}

pub fn simple(command: &str, grant: &str) -> Value {
    json!({"command": command, "grant": grant, "reason": "because"})
}

pub fn close(grant: &str) -> Value {
    json!({"command": "close-grant", "grant": grant, "closed_on": "2015-09-30"})
}

pub fn finalize(grant: &str) -> Value {
    json!({"command": "finalize-grant", "grant": grant})
}

pub fn revise(grant: &str, amount: &str) -> Value {
    json!({"command": "revise-grant", "grant": grant, "amount": amount, "reason": "budget", "actor": APPROVER})
}

/// Adds a field to a command object.
pub fn with(mut command: Value, field: &str, value: Value) -> Value {
    command
        .as_object_mut()
        .unwrap()
        .insert(field.to_string(), value);
    command
}

/// Removes a field from a command object.
pub fn without(mut command: Value, field: &str) -> Value {
    command.as_object_mut().unwrap().remove(field);
    command
}

/// A fund with 1,000.00 USD and an approved grant G of 600.00.
pub fn approved() -> Vec<Value> {
    vec![
        fund(),
        contribute("1000.00"),
        propose("G", "600.00"),
        approve("G"),
    ]
}

/// `approved()` plus agency A (lead, 400.00) and B (200.00), and 100.00 disbursed to A.
pub fn active() -> Vec<Value> {
    let mut steps = approved();
    steps.extend([
        assign_lead("G", "A", "400.00"),
        assign("G", "B", "200.00"),
        disburse("G", "A", "100.00"),
    ]);
    steps
}

/// Concatenates step lists.
pub fn plus(base: Vec<Value>, more: &[Value]) -> Vec<Value> {
    let mut steps = base;
    steps.extend(more.iter().cloned());
    steps
}
