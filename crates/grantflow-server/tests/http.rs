//! The HTTP API through `oneshot` (no socket): every route's statuses, the role matrix,
//! limits, idempotency, revocation and the OpenAPI description.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use grantflow_server::{app, Limits, Tokens, REQUEST_BODY_BYTES_MAX};
use grantflow_store::Envelope;
use serde_json::{json, Value};
use tower::ServiceExt;

fn error_code(body: &Value) -> &str {
    assert_eq!(body["ok"], false, "{body}");
    assert!(body.get("command_id").is_some(), "Results shape: {body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    body["error"]["code"].as_str().unwrap()
}

async fn head(h: &Harness) -> u64 {
    let (status, checkpoint) = h
        .call("GET", "/v1/checkpoint", Some(h.token("auditor")), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    checkpoint["position"].as_u64().unwrap()
}

#[tokio::test]
async fn commands_answer_every_status_with_the_results_shape() {
    let h = harness().await;
    h.seed().await;
    let accepted = h
        .ok(
            "secretariat",
            json!({"command": "assign-agency", "grant": "G", "agency": "IOM", "allocation": "600.00", "lead": true, "command_id": "assign-iom"}),
        )
        .await;
    assert_eq!(accepted["ok"], true);
    assert_eq!(accepted["command_id"], "assign-iom");
    assert_eq!(accepted["events"][0]["type"], "grant.agency_assigned");
    assert_eq!(accepted["events"][0]["stream"], "grant-G");

    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "secretariat",
            json!(["not", "an", "object"]),
            StatusCode::BAD_REQUEST,
            "malformed_command",
        ),
        (
            "secretariat",
            json!({"grant": "G"}),
            StatusCode::BAD_REQUEST,
            "malformed_command",
        ),
        // An unknown command is malformed before any role check, even for a read-only role.
        (
            "auditor",
            json!({"command": "delete-grant", "grant": "G"}),
            StatusCode::BAD_REQUEST,
            "malformed_command",
        ),
        (
            "secretariat",
            json!({"command": "suspend-grant", "grant": "G", "reason": "x", "actor": "mallory"}),
            StatusCode::BAD_REQUEST,
            "malformed_command",
        ),
        (
            "secretariat",
            json!({"command": "suspend-grant", "grant": "G", "reason": "x", "color": "red"}),
            StatusCode::BAD_REQUEST,
            "malformed_command",
        ),
        (
            "finance",
            json!({"command": "record-disbursement", "grant": "G", "agency": "IOM", "amount": 10, "paid_on": "2013-01-10"}),
            StatusCode::BAD_REQUEST,
            "invalid_amount",
        ),
        (
            "approver",
            json!({"command": "register-fund", "fund": "H", "name": "x", "currency": "USD"}),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "admin",
            json!({"command": "approve-grant", "grant": "G", "decided_on": "2012-09-27"}),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "secretariat",
            json!({"command": "suspend-grant", "grant": "G", "reason": "x", "expected_version": 1}),
            StatusCode::CONFLICT,
            "version_conflict",
        ),
        (
            "secretariat",
            json!({"command": "suspend-grant", "grant": "G", "reason": "other", "command_id": "assign-iom"}),
            StatusCode::CONFLICT,
            "command_id_conflict",
        ),
        (
            "secretariat",
            json!({"command": "assign-agency", "grant": "G", "agency": "UNDP", "allocation": "500.00"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "over_allocation",
        ),
        (
            "finance",
            json!({"command": "record-disbursement", "grant": "G", "agency": "UNDP", "amount": "1.00", "paid_on": "2013-01-10"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "agency_not_assigned",
        ),
        (
            "secretariat",
            json!({"command": "reject-proposal", "grant": "nope", "reason": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_grant",
        ),
        (
            "finance",
            json!({"command": "register-fund", "fund": "F", "name": "again", "currency": "USD"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "fund_exists",
        ),
    ];
    let before = head(&h).await;
    for (role, body, status, code) in cases {
        let (got, result) = h.command(role, body.clone()).await;
        assert_eq!(
            (got, error_code(&result)),
            (status, code),
            "{role} {body} -> {result}"
        );
    }
    assert_eq!(head(&h).await, before, "rejected commands append nothing");

    // The command id comes back in an error body too.
    let (_, result) = h
        .command("approver", json!({"command": "register-fund", "fund": "H", "name": "x", "currency": "USD", "command_id": "c-1"}))
        .await;
    assert_eq!(result["command_id"], "c-1");

    // A body that is not JSON at all.
    let (status, bytes) = h
        .call_raw(
            "POST",
            "/v1/commands",
            Some(h.token("finance")),
            Some(b"command=x".to_vec()),
        )
        .await;
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "malformed_command")
    );

    // No token, a wrong token, a malformed header.
    let (status, body) = h
        .call(
            "POST",
            "/v1/commands",
            None,
            Some(json!({"command": "finalize-grant", "grant": "G"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, body) = h
        .call(
            "POST",
            "/v1/commands",
            Some("gf_00000000_nope"),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let request = Request::post("/v1/commands")
        .header("authorization", format!("Basic {}", h.token("finance")))
        .body(Body::from("{}"))
        .unwrap();
    let response = app(h.state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
}

#[tokio::test]
async fn the_actor_is_the_tokens_and_four_eyes_holds_over_http() {
    let h = harness().await;
    h.seed().await;
    let (status, events) = h
        .call(
            "GET",
            "/v1/events?stream=grant-G",
            Some(h.token("auditor")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let actors: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors, vec![SECRETARIAT, APPROVER]);

    // One person holding both roles still cannot approve their own proposal.
    let (_, solo) = Tokens::add(h.dir.path(), "solo", &["secretariat,approver"]).unwrap();
    let (status, _) = h
        .call("POST", "/v1/commands", Some(&solo), Some(json!({"command": "submit-proposal", "fund": "F", "grant": "S", "title": "Solo", "amount": "10.00"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = h
        .call(
            "POST",
            "/v1/commands",
            Some(&solo),
            Some(json!({"command": "approve-grant", "grant": "S", "decided_on": "2012-10-01"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "four_eyes_violation")
    );
}

#[tokio::test]
async fn an_idempotent_command_retried_appends_once() {
    let h = harness().await;
    h.seed().await;
    let body = json!({"command": "assign-agency", "grant": "G", "agency": "IOM", "allocation": "100.00", "command_id": "retry-me"});
    let first = h.ok("secretariat", body.clone()).await;
    let position = head(&h).await;
    let second = h.ok("secretariat", body.clone()).await;
    assert_eq!(second["replayed"], true);
    assert!(first.get("replayed").is_none());
    assert_eq!(first["events"], second["events"]);
    assert_eq!(head(&h).await, position, "the retry appended nothing");
    // The same id with the same body from another actor is another body: a conflict.
    let (_, other) = Tokens::add(h.dir.path(), "someone.else", &["secretariat"]).unwrap();
    let (status, result) = h
        .call("POST", "/v1/commands", Some(&other), Some(body))
        .await;
    assert_eq!(
        (status, error_code(&result)),
        (StatusCode::CONFLICT, "command_id_conflict")
    );
}

#[tokio::test]
async fn a_revoked_token_is_refused_without_a_restart() {
    let h = harness().await;
    let (info, token) = Tokens::add(h.dir.path(), "temp", &["auditor"]).unwrap();
    let (status, _) = h.call("GET", "/v1/checkpoint", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    Tokens::revoke(h.dir.path(), &info.id).unwrap();
    let (status, body) = h.call("GET", "/v1/checkpoint", Some(&token), None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    // Other tokens still work; a token added while serving works at once.
    let (status, _) = h
        .call("GET", "/v1/checkpoint", Some(h.token("auditor")), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, fresh) = Tokens::add(h.dir.path(), "fresh", &["admin"]).unwrap();
    let (status, _) = h.call("GET", "/metrics", Some(&fresh), None).await;
    assert_eq!(status, StatusCode::OK);
    let listed = Tokens::list(h.dir.path()).unwrap();
    assert!(listed.iter().any(|t| t.id == info.id && t.revoked));
}

/// Each command with a body that passes the shape checks.
fn every_command() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "register-fund",
            "finance",
            json!({"fund": "M", "name": "Matrix", "currency": "USD"}),
        ),
        (
            "record-contribution",
            "finance",
            json!({"fund": "F", "donor": "D", "amount": "1.00", "received_on": "2013-01-01"}),
        ),
        (
            "submit-proposal",
            "secretariat",
            json!({"fund": "F", "grant": "P", "title": "t", "amount": "1.00"}),
        ),
        (
            "reject-proposal",
            "secretariat",
            json!({"grant": "P", "reason": "r"}),
        ),
        (
            "approve-grant",
            "approver",
            json!({"grant": "G", "decided_on": "2013-01-01"}),
        ),
        (
            "assign-agency",
            "secretariat",
            json!({"grant": "G", "agency": "A", "allocation": "1.00"}),
        ),
        (
            "revise-allocation",
            "secretariat",
            json!({"grant": "G", "agency": "A", "allocation": "2.00", "reason": "r"}),
        ),
        (
            "withdraw-agency",
            "secretariat",
            json!({"grant": "G", "agency": "A", "reason": "r"}),
        ),
        (
            "record-disbursement",
            "finance",
            json!({"grant": "G", "agency": "A", "amount": "1.00", "paid_on": "2013-01-01"}),
        ),
        (
            "record-expenditure",
            "finance",
            json!({"grant": "G", "agency": "A", "amount": "1.00", "period_end": "2013-01-01"}),
        ),
        (
            "record-refund",
            "finance",
            json!({"grant": "G", "agency": "A", "amount": "1.00", "received_on": "2013-01-01"}),
        ),
        (
            "revise-grant",
            "approver",
            json!({"grant": "G", "reason": "r", "amount": "900.00"}),
        ),
        (
            "suspend-grant",
            "secretariat",
            json!({"grant": "G", "reason": "r"}),
        ),
        (
            "resume-grant",
            "secretariat",
            json!({"grant": "G", "reason": "r"}),
        ),
        (
            "cancel-grant",
            "secretariat",
            json!({"grant": "G", "reason": "r"}),
        ),
        (
            "close-grant",
            "secretariat",
            json!({"grant": "G", "closed_on": "2013-01-01"}),
        ),
        ("finalize-grant", "finance", json!({"grant": "G"})),
        (
            "revise-fund-terms",
            "approver",
            json!({"fund": "F", "reason": "r", "admin_fee_percent": "1"}),
        ),
        (
            "record-pledge",
            "finance",
            json!({"fund": "F", "pledge": "P", "donor": "D", "amount": "1.00", "signed_on": "2013-01-01"}),
        ),
        (
            "record-income",
            "finance",
            json!({"fund": "F", "kind": "interest", "amount": "1.00", "received_on": "2013-01-01"}),
        ),
        (
            "schedule-report",
            "secretariat",
            json!({"grant": "G", "report": "R", "kind": "progress", "period_end": "2013-12-31", "due_on": "2014-03-31"}),
        ),
        (
            "submit-report",
            "secretariat",
            json!({"grant": "G", "report": "R", "submitted_on": "2014-03-01"}),
        ),
        (
            "accept-report",
            "approver",
            json!({"grant": "G", "report": "R", "accepted_on": "2014-03-02"}),
        ),
        (
            "return-report",
            "approver",
            json!({"grant": "G", "report": "R", "returned_on": "2014-03-02", "reason": "r"}),
        ),
        (
            "attach-document",
            "secretariat",
            json!({"grant": "G", "document": "D", "title": "t", "category": "A02", "sha256": "ab".repeat(32)}),
        ),
    ]
}

#[tokio::test]
async fn a_future_business_date_is_a_400_and_appends_nothing() {
    let h = harness().await;
    h.seed().await;
    let (_, before) = h
        .call("GET", "/v1/events", Some(h.token("auditor")), None)
        .await;
    let (status, result) = h
        .command(
            "finance",
            json!({"command": "record-contribution", "fund": "F", "donor": "JPN", "amount": "1.00", "received_on": "2999-01-01"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{result}");
    assert_eq!(error_code(&result), "future_date");
    assert!(result["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("received_on"));
    let (_, after) = h
        .call("GET", "/v1/events", Some(h.token("auditor")), None)
        .await;
    assert_eq!(before["events"], after["events"]);
}

#[tokio::test]
async fn reports_are_listed_with_their_status_or_when_overdue() {
    let h = harness().await;
    h.seed().await;
    for (role, body) in [
        (
            "secretariat",
            json!({"command": "schedule-report", "grant": "G", "report": "R2", "kind": "financial", "period_end": "2013-12-31", "due_on": "2014-06-30"}),
        ),
        (
            "secretariat",
            json!({"command": "schedule-report", "grant": "G", "report": "R1", "kind": "progress", "period_end": "2013-12-31", "due_on": "2014-03-31"}),
        ),
        (
            "secretariat",
            json!({"command": "submit-report", "grant": "G", "report": "R1", "submitted_on": "2014-03-30"}),
        ),
    ] {
        h.ok(role, body).await;
    }
    // Any role may read them.
    for role in ROLE_NAMES {
        let (status, body) = h
            .call("GET", "/v1/reports", Some(h.token(role)), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{role}: {body}");
        assert_eq!(
            body,
            json!({"reports": [
                {"grant": "G", "report": "R1", "kind": "progress", "period_end": "2013-12-31", "due_on": "2014-03-31", "status": "submitted"},
                {"grant": "G", "report": "R2", "kind": "financial", "period_end": "2013-12-31", "due_on": "2014-06-30", "status": "scheduled"}
            ]})
        );
    }
    let token = Some(h.token("auditor"));
    let (_, overdue) = h
        .call("GET", "/v1/reports?overdue_on=2014-07-01", token, None)
        .await;
    assert_eq!(overdue["reports"].as_array().map(Vec::len), Some(1));
    assert_eq!(overdue["reports"][0]["report"], "R2");
    let (_, none) = h
        .call(
            "GET",
            "/v1/reports?overdue_on=2014-06-30&fund=F&grant=G",
            token,
            None,
        )
        .await;
    assert_eq!(none, json!({"reports": []}));
    let (status, bad) = h
        .call("GET", "/v1/reports?overdue_on=2014-02-30", token, None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    let (status, _) = h.call("GET", "/v1/reports?grant=NOPE", token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = h.call("GET", "/v1/reports", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The figures carry the reports, and the accept-report four-eyes rule holds over HTTP.
    let (status, result) = h
        .command("approver", json!({"command": "accept-report", "grant": "G", "report": "R1", "accepted_on": "2014-04-01"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    let (_, grant) = h.call("GET", "/v1/grants/G", token, None).await;
    assert_eq!(grant["reports"][0]["status"], "accepted");
}

const ROLE_NAMES: [&str; 6] = [
    "secretariat",
    "approver",
    "finance",
    "auditor",
    "integrator",
    "admin",
];

#[tokio::test]
async fn role_matrix_for_every_command() {
    let h = harness().await;
    h.seed().await;
    assert_eq!(every_command().len(), grantflow_domain::COMMAND_NAMES.len());
    for (command, owner, fields) in every_command() {
        let mut body = fields.clone();
        body["command"] = json!(command);
        for role in ROLE_NAMES {
            let (status, result) = h.command(role, body.clone()).await;
            if role == owner {
                assert_ne!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{role} may {command}: {result}"
                );
                assert_ne!(status, StatusCode::UNAUTHORIZED);
            } else {
                assert_eq!(
                    (status, error_code(&result)),
                    (StatusCode::FORBIDDEN, "forbidden"),
                    "{role} may not {command}: {result}"
                );
            }
        }
    }
    // Roles add up: admin with finance may register a fund.
    let (_, both) = Tokens::add(h.dir.path(), "ops", &["admin", "finance"]).unwrap();
    let (status, result) = h
        .call(
            "POST",
            "/v1/commands",
            Some(&both),
            Some(json!({"command": "register-fund", "fund": "Z", "name": "z", "currency": "JPY"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
}

#[tokio::test]
async fn role_matrix_for_every_read_route() {
    let h = harness().await;
    h.seed().await;
    let any = &ROLE_NAMES[..];
    let events = &["auditor", "integrator", "admin"][..];
    let audit = &["auditor", "admin"][..];
    let routes: Vec<(&str, &[&str])> = vec![
        ("/v1/grants", any),
        ("/v1/reports", any),
        ("/v1/grants/G", any),
        ("/v1/grants/G/audit", any),
        ("/v1/funds/F", any),
        ("/v1/funds/F/audit", any),
        ("/v1/events", events),
        ("/v1/events/stream", events),
        ("/v1/checkpoint", audit),
        ("/v1/verify", audit),
        ("/v1/export/iati", audit),
        ("/v1/export/iati-org", audit),
        ("/metrics", &["admin"][..]),
    ];
    for (route, allowed) in routes {
        for role in ROLE_NAMES {
            let request = Request::get(route)
                .header("authorization", format!("Bearer {}", h.token(role)))
                .body(Body::empty())
                .unwrap();
            // Only the status: an event stream's body never ends.
            let response = app(h.state.clone()).oneshot(request).await.unwrap();
            let expected = if allowed.contains(&role) {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(response.status(), expected, "{role} GET {route}");
        }
        let (status, body) = h.call("GET", route, None, None).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{route}"
        );
    }
    for open in ["/healthz", "/openapi.json"] {
        let (status, _) = h.call("GET", open, None, None).await;
        assert_eq!(status, StatusCode::OK, "{open} needs no token");
    }
}

#[tokio::test]
async fn figures_now_and_as_of_with_their_errors() {
    let h = harness().await;
    h.seed().await;
    let token = h.token("integrator");
    let (status, grant) = h.call("GET", "/v1/grants/G", Some(token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(grant["status"], "approved");
    assert_eq!(grant["amount"], "1000.00");
    assert_eq!(grant["unallocated"], "1000.00");
    let keys: Vec<&String> = grant.as_object().unwrap().keys().collect();
    assert_eq!(keys[..3], ["grant", "fund", "title"]);

    let (status, grant) = h.call("GET", "/v1/grants/G?at=3", Some(token), None).await;
    assert_eq!(
        (status, grant["status"].as_str()),
        (StatusCode::OK, Some("proposed"))
    );
    let (status, body) = h.call("GET", "/v1/grants/G?at=2", Some(token), None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, body) = h
        .call(
            "GET",
            "/v1/grants/G?as_of=2000-01-01T00:00:00%2B02:00",
            Some(token),
            None,
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, grant) = h
        .call(
            "GET",
            "/v1/grants/G?as_of=2999-01-01T00:00:00Z",
            Some(token),
            None,
        )
        .await;
    assert_eq!(
        (status, grant["status"].as_str()),
        (StatusCode::OK, Some("approved"))
    );
    for bad in [
        "/v1/grants/G?at=1&as_of=2999-01-01T00:00:00Z",
        "/v1/grants/G?as_of=yesterday",
        "/v1/grants/G?at=-1",
        "/v1/grants/G?when=now",
        "/v1/grants?status=sleeping",
        "/v1/events?limit=0",
        "/v1/funds/F?at=x",
    ] {
        let (status, body) = h.call("GET", bad, Some(token), None).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{bad}"
        );
    }
    for missing in [
        "/v1/grants/nope",
        "/v1/funds/nope",
        "/v1/grants/nope/audit",
        "/v1/funds/nope/audit",
        "/v1/funds/G",
    ] {
        let (status, body) = h.call("GET", missing, Some(token), None).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{missing}"
        );
    }

    let (status, fund) = h.call("GET", "/v1/funds/F", Some(token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            fund["received"].as_str(),
            fund["committed"].as_str(),
            fund["available"].as_str()
        ),
        (Some("5000.00"), Some("1000.00"), Some("4000.00"))
    );
    let (_, fund) = h.call("GET", "/v1/funds/F?at=2", Some(token), None).await;
    assert_eq!(fund["committed"], "0.00");

    let (status, list) = h
        .call(
            "GET",
            "/v1/grants?fund=F&status=approved",
            Some(token),
            None,
        )
        .await;
    assert_eq!(
        (status, list.as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );
    let (_, list) = h
        .call("GET", "/v1/grants?status=active", Some(token), None)
        .await;
    assert_eq!(list, json!([]));

    let (status, trail) = h.call("GET", "/v1/grants/G/audit", Some(token), None).await;
    assert_eq!(status, StatusCode::OK);
    let trail = trail.as_array().unwrap();
    assert_eq!(trail.len(), 2);
    assert_eq!(trail[1]["command"], "approve-grant");
    assert_eq!(trail[1]["actor"], APPROVER);
    let (status, trail) = h.call("GET", "/v1/funds/F/audit", Some(token), None).await;
    assert_eq!(
        (status, trail.as_array().unwrap().len()),
        (StatusCode::OK, 3)
    );
}

#[tokio::test]
async fn event_pages_continue_with_next_and_hash_check() {
    let h = harness().await;
    h.seed().await;
    for index in 0..5 {
        h.ok("secretariat", json!({"command": "assign-agency", "grant": "G", "agency": format!("A{index}"), "allocation": "1.00"})).await;
    }
    let total = head(&h).await;
    assert_eq!(total, 10);
    let token = h.token("integrator");
    let mut from = 1;
    let mut seen = Vec::new();
    loop {
        let (bytes_status, bytes) = h
            .call_raw(
                "GET",
                &format!("/v1/events?from={from}&limit=3"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(bytes_status, StatusCode::OK);
        let page: Value = serde_json::from_slice(&bytes).unwrap();
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            assert_eq!(page["next"], total + 1);
            break;
        }
        assert!(events.len() <= 3);
        for event in events {
            // The exact printed bytes: hash-checkable, fields in contract order.
            let line = serde_json::to_string(event).unwrap();
            let envelope = Envelope::from_line(&line).unwrap();
            assert!(String::from_utf8_lossy(&bytes).contains(&line));
            seen.push(envelope.position);
        }
        from = page["next"].as_u64().unwrap();
    }
    assert_eq!(seen, (1..=total).collect::<Vec<_>>());

    let (_, page) = h
        .call(
            "GET",
            "/v1/events?stream=grant-G&limit=2",
            Some(token),
            None,
        )
        .await;
    let positions: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, vec![3, 4]);
    assert_eq!(page["next"], 5);
    let (_, page) = h
        .call("GET", "/v1/events?stream=fund-F&from=5", Some(token), None)
        .await;
    let positions: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, vec![5]);
    assert_eq!(page["next"], total + 1);
    let (_, page) = h
        .call("GET", "/v1/events?limit=100000", Some(token), None)
        .await;
    assert_eq!(page["events"].as_array().unwrap().len() as u64, total);
    let (_, page) = h
        .call("GET", "/v1/events?from=500", Some(token), None)
        .await;
    assert_eq!(
        (
            page["events"].as_array().unwrap().len(),
            page["next"].as_u64()
        ),
        (0, Some(500))
    );
}

#[tokio::test]
async fn checkpoint_and_verify_as_the_cli() {
    let h = harness().await;
    h.seed().await;
    let token = h.token("auditor");
    let (status, checkpoint) = h.call("GET", "/v1/checkpoint", Some(token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(checkpoint["position"], 5);
    assert_eq!(checkpoint["hash"].as_str().unwrap().len(), 64);
    assert!(checkpoint["recorded_at"].as_str().unwrap().ends_with('Z'));

    let (status, report) = h.call("GET", "/v1/verify", Some(token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["events"], 5);
    assert_eq!(report["head"], checkpoint);
    assert_eq!(report["checkpoint_checked"], false);

    let uri = format!(
        "/v1/verify?position=5&hash={}",
        checkpoint["hash"].as_str().unwrap()
    );
    let (_, report) = h.call("GET", &uri, Some(token), None).await;
    assert_eq!(
        (
            report["ok"].as_bool(),
            report["checkpoint_checked"].as_bool()
        ),
        (Some(true), Some(true))
    );
    let uri = format!(
        "/v1/verify?position=4&hash={}",
        checkpoint["hash"].as_str().unwrap()
    );
    let (status, report) = h.call("GET", &uri, Some(token), None).await;
    assert_eq!(
        (status, report["ok"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    assert_eq!(report["failure"]["position"], 4);
    for bad in ["/v1/verify?position=5", "/v1/verify?position=5&hash=xyz"] {
        let (status, body) = h.call("GET", bad, Some(token), None).await;
        assert_eq!(
            (status, error_code(&body)),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn metrics_health_and_unknown_routes() {
    let h = harness().await;
    h.seed().await;
    h.command(
        "secretariat",
        json!({"command": "assign-agency", "grant": "G", "agency": "A", "allocation": "5000.00"}),
    )
    .await;
    h.ok("secretariat", json!({"command": "assign-agency", "grant": "G", "agency": "A", "allocation": "1.00", "command_id": "m"})).await;
    h.ok("secretariat", json!({"command": "assign-agency", "grant": "G", "agency": "A", "allocation": "1.00", "command_id": "m"})).await;
    let (status, text) = h
        .call_raw("GET", "/metrics", Some(h.token("admin")), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(text).unwrap();
    for line in [
        "grantflow_commands_accepted_total 5",
        "grantflow_commands_replayed_total 1",
        "grantflow_commands_rejected_total{code=\"over_allocation\"} 1",
        "grantflow_append_latency_seconds_count 5",
        "grantflow_append_latency_seconds_bucket{le=\"+Inf\"} 5",
        "grantflow_head_position 6",
        "grantflow_open_streams 0",
        "# TYPE grantflow_append_latency_seconds histogram",
        "# TYPE grantflow_batch_commands histogram",
        "grantflow_batch_commands_sum 5",
        "grantflow_batch_commands_bucket{le=\"2048\"} 5",
        "grantflow_events_appended_total 6",
        "grantflow_append_conflicts_total 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }

    let (status, body) = h.call("GET", "/healthz", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"ok": true})));
    let (status, body) = h
        .call("GET", "/v2/nothing", Some(h.token("admin")), None)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, body) = h
        .call("DELETE", "/v1/grants/G", Some(h.token("admin")), None)
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let h = harness().await;
    let mut big = vec![b' '; REQUEST_BODY_BYTES_MAX + 1];
    big[0] = b'{';
    let last = big.len() - 1;
    big[last] = b'}';
    let (status, bytes) = h
        .call_raw("POST", "/v1/commands", Some(h.token("finance")), Some(big))
        .await;
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    // Just under the limit is read (and then judged as a command).
    let mut fits = vec![b' '; REQUEST_BODY_BYTES_MAX];
    fits[0] = b'{';
    fits[REQUEST_BODY_BYTES_MAX - 1] = b'}';
    let (status, _) = h
        .call_raw("POST", "/v1/commands", Some(h.token("finance")), Some(fits))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Without a Content-Length (a streamed body), too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..(REQUEST_BODY_BYTES_MAX / 4096 + 2))
        .map(|_| Ok(vec![b' '; 4096]))
        .collect();
    let request = Request::post("/v1/commands")
        .header("authorization", format!("Bearer {}", h.token("finance")))
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    let response = app(h.state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_slow_request_is_answered_503_timeout() {
    let h = harness_with(Limits {
        request_timeout: Duration::ZERO,
        ..Limits::default()
    })
    .await;
    // A body that never ends: the request cannot finish whatever the machine's speed (a
    // quick command could beat a zero timeout, whose timer fires at the runtime's next tick).
    let never = futures::stream::pending::<Result<Vec<u8>, std::io::Error>>();
    let request = Request::post("/v1/commands")
        .header("authorization", format!("Bearer {}", h.token("finance")))
        .header("content-type", "application/json")
        .body(Body::from_stream(never))
        .unwrap();
    let (status, bytes) = h.send(request).await;
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "timeout")
    );
    assert_eq!(h.state.engine().store().head().await.unwrap().position, 0);
}

#[tokio::test]
async fn streams_over_the_cap_are_503() {
    let h = harness_with(Limits {
        streams_max: 1,
        ..Limits::default()
    })
    .await;
    let open = |token: String| {
        let state = h.state.clone();
        async move {
            let request = Request::get("/v1/events/stream")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            app(state).oneshot(request).await.unwrap()
        }
    };
    let first = open(h.token("integrator").to_string()).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(h.state.open_streams(), 1);
    let second = open(h.token("integrator").to_string()).await;
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(second.into_body(), 4096)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(error_code(&body), "too_many_streams");
    drop(first);
    assert_eq!(h.state.open_streams(), 0);
    let third = open(h.token("integrator").to_string()).await;
    assert_eq!(third.status(), StatusCode::OK);
    let (status, body) = h
        .call(
            "GET",
            "/v1/events/stream",
            Some(h.token("integrator")),
            None,
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "too_many_streams")
    );
    drop(third);
    let request = Request::get("/v1/events/stream")
        .header("authorization", format!("Bearer {}", h.token("auditor")))
        .header("last-event-id", "five")
        .body(Body::empty())
        .unwrap();
    let response = app(h.state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn iati_export_over_http_as_the_cli() {
    let h = harness().await;
    h.seed().await;
    let (status, body) = h
        .call_raw("GET", "/v1/export/iati", Some(h.token("auditor")), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let xml = String::from_utf8(body).unwrap();
    assert!(xml.contains("<iati-activities version=\"2.03\""), "{xml}");
    assert!(xml.contains("<iati-identifier>"));
    let (status, body) = h
        .call_raw(
            "GET",
            "/v1/export/iati?grant=G&reporting_org=XM-DAC-7",
            Some(h.token("admin")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8(body).unwrap().contains("XM-DAC-7-G"));
    let (status, body) = h
        .call_raw("GET", "/v1/export/iati-org", Some(h.token("auditor")), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let xml = String::from_utf8(body).unwrap();
    assert!(
        xml.contains("<iati-organisations version=\"2.03\""),
        "{xml}"
    );
    assert!(
        xml.contains("<organisation-identifier>XM-DAC-41301</organisation-identifier>"),
        "{xml}"
    );
    let (status, _) = h
        .call_raw(
            "GET",
            "/v1/export/iati-org?reporting_org=NOT-AN-AGENCY-1",
            Some(h.token("auditor")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = h
        .call(
            "GET",
            "/v1/export/iati?grant=NOPE",
            Some(h.token("auditor")),
            None,
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    let (status, body) = h
        .call(
            "GET",
            "/v1/export/iati?at=1&as_of=2020-01-01T00:00:00Z",
            Some(h.token("auditor")),
            None,
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let (status, body) = h
        .call(
            "GET",
            "/v1/export/iati?at=0",
            Some(h.token("auditor")),
            None,
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found"),
        "nothing yet"
    );
}

#[tokio::test]
async fn openapi_describes_every_route_of_the_router() {
    let h = harness().await;
    let (status, spec) = h.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let paths = spec["paths"].as_object().unwrap();
    let contract = [
        ("post", "/v1/commands"),
        ("get", "/v1/grants"),
        ("get", "/v1/reports"),
        ("get", "/v1/grants/{id}"),
        ("get", "/v1/grants/{id}/audit"),
        ("get", "/v1/funds/{id}"),
        ("get", "/v1/funds/{id}/audit"),
        ("get", "/v1/events"),
        ("get", "/v1/events/stream"),
        ("get", "/v1/checkpoint"),
        ("get", "/v1/verify"),
        ("get", "/v1/export/iati"),
        ("get", "/v1/export/iati-org"),
        ("get", "/healthz"),
        ("get", "/openapi.json"),
        ("get", "/metrics"),
        ("get", "/v1/schemas"),
        ("get", "/v1/schemas/envelope"),
        ("get", "/v1/schemas/{type}/{version}"),
        ("get", "/asyncapi.json"),
    ];
    for (method, path) in contract {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    // And every described operation is served by the router (not the 404 fallback).
    let mut operations = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            operations += 1;
            let uri = path.replace("{id}", "X");
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let response = app(h.state.clone()).oneshot(request).await.unwrap();
            let status = response.status();
            if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
                let body = axum::body::to_bytes(response.into_body(), 65536)
                    .await
                    .unwrap();
                let body: Value = serde_json::from_slice(&body).unwrap();
                assert_ne!(
                    error_code(&body),
                    "not_found",
                    "{method} {path} is not routed"
                );
                panic!("{method} {path}: {status}");
            }
        }
    }
    assert_eq!(operations, contract.len());
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn a_browser_event_source_may_pass_the_token_in_the_query() {
    let h = harness().await;
    let uri = format!(
        "/v1/events/stream?from=1&access_token={}",
        h.token("integrator")
    );
    let request = Request::get(uri).body(Body::empty()).unwrap();
    let response = app(h.state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    drop(response);
    // Only there: other routes want the header.
    let uri = format!("/v1/events?access_token={}", h.token("integrator"));
    let (status, _) = h.call("GET", &uri, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let uri = format!("/v1/events/stream?access_token={}", h.token("approver"));
    let (status, _) = h.call("GET", &uri, None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_event_stream_speaks_cloudevents_when_asked() {
    use futures::StreamExt;
    let h = harness().await;
    h.seed().await;
    let request = Request::get("/v1/events/stream?from=1&format=cloudevents")
        .header("authorization", format!("Bearer {}", h.token("integrator")))
        .body(Body::empty())
        .unwrap();
    let response = app(h.state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    let mut text = String::new();
    let mut events = Vec::new();
    while events.len() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("an event within 5 s")
            .expect("the stream goes on")
            .expect("a chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
        events = text
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .map(|data| serde_json::from_str::<Value>(data).expect("JSON data"))
            .collect();
    }
    let source = events[0]["source"].as_str().expect("a source").to_string();
    assert!(source.starts_with("urn:grantflow:log:"), "{source}");
    for (index, event) in events.iter().enumerate() {
        let position = index as u64 + 1;
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["id"], position.to_string());
        assert_eq!(event["source"], source.as_str());
        let envelope = Envelope::from_line(&event["data"].to_string()).expect("an envelope");
        assert_eq!(envelope.position, position);
        assert_eq!(event["type"], envelope.event_type);
        assert_eq!(event["subject"], envelope.stream);
        assert_eq!(event["time"], envelope.recorded_at);
    }
    // The source is the first event's hash, from wherever the stream starts.
    let first = &events[0]["data"]["hash"];
    assert_eq!(
        source,
        format!("urn:grantflow:log:{}", first.as_str().unwrap_or_default())
    );
    let (status, body) = h
        .call(
            "GET",
            "/v1/events/stream?format=xml",
            Some(h.token("integrator")),
            None,
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
}

#[tokio::test]
async fn positions_past_openapis_int64_are_refused_not_clamped() {
    let h = harness().await;
    h.seed().await;
    let integrator = h.token("integrator");
    let largest = i64::MAX as u64;
    for (path, ok) in [
        (format!("/v1/events?from={largest}"), true),
        (format!("/v1/events?from={}", largest + 1), false),
        (format!("/v1/events?limit={largest}"), true),
        (format!("/v1/events?limit={}", largest + 1), false),
        (format!("/v1/grants/MEX-1?at={}", largest + 1), false),
        (
            format!(
                "/v1/verify?position={}&hash={}",
                largest + 1,
                "0".repeat(64)
            ),
            false,
        ),
    ] {
        let token = if path.starts_with("/v1/verify") {
            h.token("auditor")
        } else {
            integrator
        };
        let (status, body) = h.call("GET", &path, Some(token), None).await;
        if ok {
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
        } else {
            assert_eq!(
                (status, error_code(&body)),
                (StatusCode::BAD_REQUEST, "bad_request"),
                "{path}: {body}"
            );
        }
    }
    // Past int64, empty or not a number: a Last-Event-ID that is given names a position.
    for last in [(largest + 1).to_string(), String::new(), "x".to_string()] {
        let request = Request::get("/v1/events/stream")
            .header("authorization", format!("Bearer {integrator}"))
            .header("last-event-id", &last)
            .body(Body::empty())
            .unwrap();
        let response = app(h.state.clone()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{last:?}");
    }
}

/// The OpenAPI description's command body: a `oneOf` of every command of the parser,
/// discriminated by `command`, without `actor`; its examples parse.
#[tokio::test]
async fn openapi_commands_are_every_command_discriminated_by_name() {
    use grantflow_domain::command_schema::member_name;
    let spec = grantflow_server::openapi();
    let schemas = &spec["components"]["schemas"];
    let command = &schemas["Command"];
    assert_eq!(command["discriminator"]["propertyName"], "command");
    let mapping = command["discriminator"]["mapping"].as_object().unwrap();
    let members = command["oneOf"].as_array().unwrap();
    assert_eq!(mapping.len(), grantflow_domain::COMMAND_NAMES.len());
    assert_eq!(members.len(), grantflow_domain::COMMAND_NAMES.len());
    for name in grantflow_domain::COMMAND_NAMES {
        let reference = format!("#/components/schemas/{}", member_name(name));
        assert_eq!(mapping[*name], json!(reference), "{name}");
        let member = &schemas[member_name(name)];
        assert_eq!(member["properties"]["command"]["const"], json!(name));
        assert!(
            member["properties"].get("actor").is_none(),
            "{name}: over HTTP the actor is the token's"
        );
    }
    assert!(
        !spec.to_string().contains("#/$defs/"),
        "a reference left outside components"
    );
    let body = &spec["paths"]["/v1/commands"]["post"]["requestBody"]["content"]["application/json"];
    assert_eq!(body["schema"]["$ref"], "#/components/schemas/Command");
    let examples = body["examples"].as_object().unwrap();
    assert!(!examples.is_empty());
    for (name, example) in examples {
        let value = &example["value"];
        assert_eq!(value["command"], json!(name));
        grantflow_domain::parse_command(value)
            .unwrap_or_else(|error| panic!("the example {name} does not parse: {error:?}"));
    }
}

/// Every operation documents the error statuses it can answer, each with the error body and an
/// example naming its code; 401 carries `WWW-Authenticate`; every link names an operation of
/// the description and the parameters it takes.
#[tokio::test]
async fn openapi_documents_every_status_and_links_to_real_operations() {
    let spec = grantflow_server::openapi();
    let mut operations = std::collections::BTreeMap::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations.insert(
                operation["operationId"].as_str().unwrap().to_string(),
                (path.clone(), method.clone(), operation.clone()),
            );
        }
    }
    for (id, (path, _, operation)) in &operations {
        let responses = operation["responses"].as_object().unwrap();
        let secured = operation.get("security").is_some();
        let has_query = operation["parameters"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["in"] == "query"));
        let mut expected = vec!["200", "500", "503"];
        if secured {
            expected.push("401");
        }
        if has_query || path == "/v1/commands" {
            expected.push("400");
        }
        for status in expected {
            assert!(responses.contains_key(status), "{id}: no {status}");
        }
        for (status, response) in responses {
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{id} {status}: no description"
            );
            if status.starts_with('2') {
                assert!(response.get("content").is_some(), "{id}: no 200 content");
                continue;
            }
            let media = &response["content"]["application/json"];
            assert_eq!(
                media["schema"]["$ref"], "#/components/schemas/ErrorBody",
                "{id} {status}"
            );
            let code = media["example"]["error"]["code"].as_str();
            assert!(
                code.is_some_and(|c| !c.is_empty()),
                "{id} {status}: no example code"
            );
        }
        if secured {
            assert!(
                responses["401"]["headers"]["WWW-Authenticate"].is_object(),
                "{id}"
            );
        }
        for (name, link) in responses["200"]["links"].as_object().into_iter().flatten() {
            let target = link["operationId"].as_str().unwrap();
            let (_, _, target_operation) = operations
                .get(target)
                .unwrap_or_else(|| panic!("{id}: link {name} to no operation {target}"));
            let names: Vec<&str> = target_operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["name"].as_str())
                .collect();
            for parameter in link["parameters"].as_object().unwrap().keys() {
                assert!(
                    names.contains(&parameter.as_str()),
                    "{id}: link {name}: {parameter}"
                );
            }
        }
    }
    for (list, read) in [
        ("list_grants", "get_grant"),
        ("list_reports", "get_grant"),
        ("get_fund", "fund_audit"),
        ("checkpoint", "verify"),
        ("list_events", "list_events"),
    ] {
        let links = &operations[list].2["responses"]["200"]["links"];
        assert!(
            links
                .as_object()
                .unwrap()
                .values()
                .any(|l| l["operationId"] == read),
            "{list} links to {read}"
        );
    }
}

/// The answers of a seeded server validate against the schemas the description gives them.
#[tokio::test]
async fn answers_match_their_openapi_schemas() {
    let h = harness().await;
    h.seed().await;
    let spec = grantflow_server::openapi();
    let auditor = h.token("auditor");
    let accepted = h
        .ok(
            "secretariat",
            json!({"command": "assign-agency", "grant": "G", "agency": "IOM", "allocation": "600.00", "lead": true, "budget": {"staff": "600.00"}}),
        )
        .await;
    let mut answers = vec![("post", "/v1/commands", "200".to_string(), accepted)];
    for (uri, path) in [
        ("/v1/grants", "/v1/grants"),
        ("/v1/grants/G", "/v1/grants/{id}"),
        ("/v1/grants/G?at=4", "/v1/grants/{id}"),
        ("/v1/grants/G/audit", "/v1/grants/{id}/audit"),
        ("/v1/funds/F", "/v1/funds/{id}"),
        ("/v1/funds/F/audit", "/v1/funds/{id}/audit"),
        ("/v1/reports", "/v1/reports"),
        ("/v1/events?limit=3", "/v1/events"),
        ("/v1/checkpoint", "/v1/checkpoint"),
        ("/v1/verify", "/v1/verify"),
        ("/v1/schemas", "/v1/schemas"),
        ("/healthz", "/healthz"),
        ("/v1/grants/NOPE", "/v1/grants/{id}"),
        (
            "/v1/grants/G?at=1&as_of=2012-01-01T00:00:00Z",
            "/v1/grants/{id}",
        ),
    ] {
        let (status, body) = h.call("GET", uri, Some(auditor), None).await;
        answers.push(("get", path, status.as_str().to_string(), body));
    }
    let (status, body) = h
        .call(
            "POST",
            "/v1/commands",
            Some(auditor),
            Some(json!({"command": "finalize-grant", "grant": "G"})),
        )
        .await;
    answers.push(("post", "/v1/commands", status.as_str().to_string(), body));
    for (method, path, status, body) in answers {
        let media = &spec["paths"][path][method]["responses"][status.as_str()]["content"]
            ["application/json"];
        assert!(
            media.is_object(),
            "{method} {path}: {status} not documented"
        );
        let schema = json!({
            "$ref": media["schema"]["$ref"].as_str().map(str::to_string)
                .unwrap_or_else(|| "#/x-answer".into()),
            "x-answer": media["schema"],
            "components": spec["components"],
        });
        let validator = jsonschema::draft202012::options()
            .build(&schema)
            .unwrap_or_else(|error| panic!("{method} {path} {status}: {error}"));
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {status}: {errors:?}\n{body}"
        );
    }
}
