//! The real `grantflow` binary on a real sled directory: the demo's figures, `exec`,
//! `verify`, `export`/`import`, checkpoints, as-of queries, the audit trail and bad input.

mod util;

use serde_json::{json, Value};
use util::{lines, stderr, stdout, Store};

const GRANT: &str = "MEX-2012-01";

fn setup() -> Vec<Value> {
    vec![
        json!({"command": "register-fund", "fund": "F1", "name": "Test fund", "currency": "USD", "actor": "fin"}),
        json!({"command": "record-contribution", "fund": "F1", "donor": "JP", "amount": "1000000.00", "received_on": "2012-04-02", "actor": "fin"}),
        json!({"command": "submit-proposal", "fund": "F1", "grant": "G1", "title": "Migrants", "amount": "600000.00", "actor": "sec"}),
        json!({"command": "approve-grant", "grant": "G1", "decided_on": "2012-09-27", "actor": "boss"}),
        json!({"command": "assign-agency", "grant": "G1", "agency": "IOM", "allocation": "500000.00", "lead": true, "actor": "sec"}),
    ]
}

#[test]
fn demo_loads_the_worked_example_with_its_figures() {
    let store = Store::new();
    let output = store.run(&["demo"]);
    assert!(output.status.success(), "demo failed: {}", stderr(&output));
    assert!(stdout(&output).contains("3,121,707.00"));

    let grant = store.json(&["grant", "show", GRANT, "--json"]);
    assert_eq!(grant["status"], "active");
    assert_eq!(grant["currency"], "USD");
    assert_eq!(grant["requested"], "3209232.40");
    assert_eq!(grant["amount"], "3121707.00");
    assert_eq!(grant["allocated"], "3121707.00");
    assert_eq!(grant["unallocated"], "0.00");
    assert_eq!(grant["disbursed"], "900000.00");
    assert_eq!(grant["expended"], "110000.00");
    assert_eq!(
        grant["reported_equivalent"],
        json!({"amount": "260000000", "currency": "JPY"})
    );
    assert_eq!(
        grant["sectors"],
        json!([{"code": "15190", "percentage": "100.00"}])
    );
    let agencies = grant["agencies"].as_array().expect("agencies");
    let names: Vec<&str> = agencies
        .iter()
        .map(|a| a["agency"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["IOM", "UNDP", "UNFPA", "UNHCR", "UNODC"]);
    assert_eq!(agencies[0]["lead"], true);
    assert_eq!(agencies[0]["allocation"], "1121707.00");
    assert_eq!(agencies[0]["balance"], "300000.00");
    // UNDP: the second tranche, released once it had spent 110,000.00 of 150,000.00.
    assert_eq!(agencies[1]["disbursed"], "250000.00");
    assert_eq!(agencies[1]["expended"], "110000.00");
    let budget = agencies[1]["budget"].as_array().expect("UNDP's budget");
    assert_eq!(
        budget[0],
        json!({"category": "staff", "budget": "186915.92", "expended": "60000.00"})
    );
    assert_eq!(
        budget[7],
        json!({"category": "indirect", "budget": "32710.28", "expended": "0.00"})
    );
    assert_eq!(
        grant["reports"],
        json!([{"report": "PR-2013", "kind": "progress", "period_end": "2013-12-31", "due_on": "2014-03-31",
            "status": "accepted", "submitted_on": "2014-04-10", "accepted_on": "2014-04-15"}])
    );
    assert_eq!(grant["documents"][0]["document"], "PRODOC");

    let fund = store.json(&["fund", "show", "UNTFHS", "--json"]);
    assert_eq!(fund["received"], "5000000.00");
    assert_eq!(fund["committed"], "3121707.00");
    // available = received + income - fees - committed; cash = ... - disbursed + refunded.
    assert_eq!(fund["available"], "1840638.67");
    assert_eq!(fund["disbursed"], "900000.00");
    assert_eq!(fund["cash"], "4062345.67");
    assert_eq!(fund["pledged"], "5000000.00");
    assert_eq!(fund["pledges_outstanding"], "0.00");
    assert_eq!(fund["fees"], "50000.00");
    assert_eq!(fund["income"], "12345.67");
    assert_eq!(
        fund["terms"],
        json!({"admin_fee_percent": "1.00", "indirect_max_percent": "7.00", "tranche_threshold_percent": "70.00", "hold_on_overdue_reports": true})
    );
    assert_eq!(fund["grants"], 1);
    assert_eq!(fund["iati_org_ref"], "XI-IATI-UNTFHS-DEMO");
    let text = stdout(&output);
    assert!(
        text.contains("rejected [tranche_condition_unmet]"),
        "{text}"
    );
    assert!(text.contains("illustrative"), "{text}");

    // The demo's command ids make it idempotent; the one refusal it expects is refused again.
    let before = store.events().len();
    let again = store.run(&["demo", "--json"]);
    assert!(again.status.success());
    for line in stdout(&again).lines() {
        assert!(
            line.contains("\"replayed\":true") || line.contains("\"tranche_condition_unmet\""),
            "{line}"
        );
    }
    assert_eq!(store.events().len(), before);
    assert!(store.run(&["verify"]).status.success());
}

#[test]
fn a_reader_that_stops_early_ends_the_output_quietly() {
    use std::io::Read;
    let store = Store::new();
    assert!(store.run(&["demo"]).status.success());
    for args in [
        vec!["audit", GRANT, "--json"],
        vec!["export", "--format", "csv"],
        vec!["events"],
    ] {
        let mut child = store
            .command(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        // Read a little, then close the pipe, as `| head -c 100` does.
        let mut stdout = child.stdout.take().expect("stdout");
        let mut first = [0u8; 100];
        stdout.read_exact(&mut first).expect("some output");
        drop(stdout);
        let output = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            matches!(output.status.code(), Some(0) | Some(141)),
            "{args:?}: {:?} {stderr}",
            output.status
        );
    }
}

#[test]
fn hostile_text_fakes_no_line_and_no_formula() {
    let store = Store::new();
    let mut steps = setup();
    steps[2]["title"] = json!("=HYPERLINK(\"http://evil.example\",\"click\")");
    steps.push(json!({"command": "suspend-grant", "grant": "G1", "reason": "field visit\n#999 2099-01-01T00:00:00Z  forged   approve-grant", "actor": "sec"}));
    let (results, code) = store.exec(&lines(&steps));
    assert_eq!(code, 0, "{results:?}");
    let human = stdout(&store.run(&["audit", "G1"]));
    assert!(human.contains("reason: field visit\\n#999"), "{human}");
    assert!(
        !human.lines().any(|line| line.starts_with("#999")),
        "{human}"
    );
    let csv = stdout(&store.run(&["audit", "G1", "--csv"]));
    assert!(csv.contains("'=HYPERLINK"), "{csv}");
    assert!(
        !csv.contains(",=HYPERLINK") && !csv.contains("\"=HYPERLINK"),
        "{csv}"
    );
    let export = stdout(&store.run(&["export", "--format", "csv"]));
    assert!(export.contains("'=HYPERLINK"), "{export}");
    assert!(
        !export.contains(",=HYPERLINK") && !export.contains("\"=HYPERLINK"),
        "{export}"
    );
    let shown = stdout(&store.run(&["grant", "show", "G1"]));
    assert!(shown.contains("title     =HYPERLINK"), "{shown}");
}

#[test]
fn money_dated_after_today_is_refused_at_the_door() {
    let store = Store::new();
    let (results, code) = store.exec(&lines(&setup()));
    assert_eq!(code, 0, "{results:?}");
    let before = store.events().len();
    let future = json!({"command": "record-disbursement", "grant": "G1", "agency": "IOM", "amount": "1.00", "paid_on": "2031-03-01", "actor": "fin"});
    let (results, code) = store.exec(&lines(&[future]));
    assert_eq!(code, 1);
    assert_eq!(results[0]["error"]["code"], "future_date", "{results:?}");
    let message = results[0]["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("paid_on") && message.contains("2031-03-01"),
        "{message}"
    );
    assert_eq!(store.events().len(), before, "nothing appended");
    // A date that plans may lie ahead.
    let planned = json!({"command": "revise-grant", "grant": "G1", "ends_on": "2031-12-31", "reason": "extended", "actor": "boss"});
    let (results, code) = store.exec(&lines(&[planned]));
    assert_eq!(code, 0, "{results:?}");
}

#[test]
fn report_list_shows_every_report_or_those_overdue_on_a_date() {
    let store = Store::new();
    assert!(store.run(&["demo"]).status.success());
    let all = store.json(&["report", "list", "--json"]);
    assert_eq!(
        all,
        json!([{"grant": GRANT, "report": "PR-2013", "kind": "progress", "period_end": "2013-12-31", "due_on": "2014-03-31", "status": "accepted"}])
    );
    // Returned on 2014-03-28, due 2014-03-31, submitted again on 2014-04-10.
    for (date, overdue) in [
        ("2014-03-31", false),
        ("2014-04-01", true),
        ("2014-04-09", true),
        ("2014-04-10", false),
    ] {
        let listed = store.json(&["report", "list", "--overdue-on", date, "--json"]);
        assert_eq!(
            listed.as_array().map(Vec::len),
            Some(usize::from(overdue)),
            "{date}"
        );
    }
    let human = store.run(&["report", "list", "--overdue-on", "2014-04-05"]);
    assert!(stdout(&human).contains("PR-2013") && stdout(&human).contains("overdue on 2014-04-05"));
    let by_grant = store.json(&["report", "list", "--grant", GRANT, "--json"]);
    assert_eq!(by_grant.as_array().map(Vec::len), Some(1));
    let by_fund = store.json(&["report", "list", "--fund", "UNTFHS", "--json"]);
    assert_eq!(by_fund, all);
    let unknown = store.run(&["report", "list", "--grant", "NOPE"]);
    assert_eq!(unknown.status.code(), Some(1));
    let bad_date = store.run(&["report", "list", "--overdue-on", "2014-02-30"]);
    assert_eq!(bad_date.status.code(), Some(2));
    assert!(stderr(&bad_date).contains("2014-02-30"));
}

#[test]
fn the_new_commands_run_as_subcommands_with_flags_of_the_same_names() {
    let store = Store::new();
    let run = |args: &[&str]| {
        let output = store.run(args);
        assert!(
            output.status.success(),
            "{args:?}: {}{}",
            stdout(&output),
            stderr(&output)
        );
    };
    run(&[
        "--actor",
        "fin",
        "register-fund",
        "--fund",
        "F",
        "--name",
        "Fund",
        "--currency",
        "USD",
        "--admin-fee-percent",
        "1",
        "--hold-on-overdue-reports",
        "true",
    ]);
    run(&[
        "--actor",
        "boss",
        "revise-fund-terms",
        "--fund",
        "F",
        "--reason",
        "agreement",
        "--tranche-threshold-percent",
        "70",
    ]);
    run(&[
        "--actor",
        "fin",
        "record-pledge",
        "--fund",
        "F",
        "--pledge",
        "P1",
        "--donor",
        "JP",
        "--amount",
        "1000.00",
        "--signed-on",
        "2012-01-01",
    ]);
    run(&[
        "--actor",
        "fin",
        "record-contribution",
        "--fund",
        "F",
        "--donor",
        "JP",
        "--amount",
        "1000.00",
        "--received-on",
        "2012-02-01",
        "--pledge",
        "P1",
    ]);
    run(&[
        "--actor",
        "fin",
        "record-income",
        "--fund",
        "F",
        "--kind",
        "interest",
        "--amount",
        "5.00",
        "--received-on",
        "2012-12-31",
    ]);
    run(&[
        "--actor",
        "sec",
        "submit-proposal",
        "--fund",
        "F",
        "--grant",
        "G",
        "--title",
        "T",
        "--amount",
        "500.00",
    ]);
    run(&[
        "--actor",
        "boss",
        "approve-grant",
        "--grant",
        "G",
        "--decided-on",
        "2012-03-01",
    ]);
    run(&[
        "--actor",
        "sec",
        "assign-agency",
        "--grant",
        "G",
        "--agency",
        "A",
        "--allocation",
        "107.00",
        "--lead",
        "--budget",
        "staff=100.00",
        "--budget",
        "indirect=7.00",
    ]);
    run(&[
        "--actor",
        "sec",
        "revise-allocation",
        "--grant",
        "G",
        "--agency",
        "A",
        "--allocation",
        "214.00",
        "--reason",
        "more",
        "--budget",
        r#"{"staff": "200.00", "indirect": "14.00"}"#,
    ]);
    run(&[
        "--actor",
        "fin",
        "record-disbursement",
        "--grant",
        "G",
        "--agency",
        "A",
        "--amount",
        "100.00",
        "--paid-on",
        "2012-04-01",
    ]);
    run(&[
        "--actor",
        "fin",
        "record-expenditure",
        "--grant",
        "G",
        "--agency",
        "A",
        "--amount",
        "80.00",
        "--period-end",
        "2012-06-30",
        "--category",
        "staff",
    ]);
    run(&[
        "--actor",
        "sec",
        "schedule-report",
        "--grant",
        "G",
        "--report",
        "R1",
        "--kind",
        "progress",
        "--period-end",
        "2012-12-31",
        "--due-on",
        "2013-03-31",
    ]);
    run(&[
        "--actor",
        "sec",
        "submit-report",
        "--grant",
        "G",
        "--report",
        "R1",
        "--submitted-on",
        "2013-03-01",
        "--document-title",
        "Report",
        "--document-sha256",
        &"ab".repeat(32),
    ]);
    run(&[
        "--actor",
        "boss",
        "return-report",
        "--grant",
        "G",
        "--report",
        "R1",
        "--returned-on",
        "2013-03-02",
        "--reason",
        "incomplete",
    ]);
    run(&[
        "--actor",
        "sec",
        "submit-report",
        "--grant",
        "G",
        "--report",
        "R1",
        "--submitted-on",
        "2013-03-03",
    ]);
    run(&[
        "--actor",
        "boss",
        "accept-report",
        "--grant",
        "G",
        "--report",
        "R1",
        "--accepted-on",
        "2013-03-04",
    ]);
    run(&[
        "--actor",
        "sec",
        "attach-document",
        "--grant",
        "G",
        "--document",
        "D1",
        "--title",
        "Prodoc",
        "--category",
        "A02",
        "--sha256",
        &"cd".repeat(32),
        "--url",
        "https://example.org/d1.pdf",
    ]);
    run(&[
        "--actor",
        "sec",
        "attach-document",
        "--fund",
        "F",
        "--document",
        "D1",
        "--title",
        "Agreement",
        "--category",
        "A09",
        "--sha256",
        &"ef".repeat(32),
    ]);
    let fund = store.json(&["fund", "show", "F", "--json"]);
    assert_eq!(fund["fees"], "10.00");
    assert_eq!(fund["income"], "5.00");
    assert_eq!(fund["available"], "495.00");
    assert_eq!(fund["terms"]["tranche_threshold_percent"], "70.00");
    assert_eq!(fund["terms"]["hold_on_overdue_reports"], true);
    let grant = store.json(&["grant", "show", "G", "--json"]);
    assert_eq!(grant["agencies"][0]["budget"][0]["expended"], "80.00");
    assert_eq!(grant["reports"][0]["status"], "accepted");
    assert_eq!(grant["documents"][0]["url"], "https://example.org/d1.pdf");
    let refused = store.run(&[
        "--actor",
        "fin",
        "record-disbursement",
        "--grant",
        "G",
        "--agency",
        "A",
        "--amount",
        "200.00",
        "--paid-on",
        "2013-04-01",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    let both = format!("{}{}", stdout(&refused), stderr(&refused));
    assert!(
        both.contains("over_disbursement") || both.contains("tranche_condition_unmet"),
        "{both}"
    );
    let bad_bool = store.run(&[
        "--actor",
        "boss",
        "revise-fund-terms",
        "--fund",
        "F",
        "--reason",
        "r",
        "--hold-on-overdue-reports",
        "yes",
    ]);
    assert!(format!("{}{}", stdout(&bad_bool), stderr(&bad_bool)).contains("malformed_command"));
    let audit = store.run(&["audit", "G"]);
    let trail = stdout(&audit);
    assert!(
        trail.contains("grant.report_returned") && trail.contains("reports.R1.status"),
        "{trail}"
    );
    let csv = stdout(&store.run(&["audit", "F", "--csv"]));
    assert!(
        csv.contains("fund.fee_charged") && csv.contains("fees"),
        "{csv}"
    );
    assert!(store.run(&["verify"]).status.success());
}

#[test]
fn approval_as_of_the_past_shows_the_original_figures() {
    let store = Store::new();
    assert!(store.run(&["demo"]).status.success());
    let events = store.events();
    let approved = events
        .iter()
        .find(|e| e["type"] == "grant.approved")
        .expect("an approval");
    let at = approved["position"].as_u64().expect("position").to_string();
    let past = store.json(&["grant", "show", GRANT, "--at", &at, "--json"]);
    assert_eq!(past["status"], "approved");
    assert_eq!(past["amount"], "3209232.40");
    assert_eq!(past["allocated"], "0.00");
    assert!(past["position"].as_u64() <= approved["position"].as_u64());

    let committed = events
        .iter()
        .find(|e| e["type"] == "fund.grant_committed")
        .and_then(|e| e["position"].as_u64())
        .expect("a commitment");
    let fund = store.json(&[
        "fund",
        "show",
        "UNTFHS",
        "--at",
        &committed.to_string(),
        "--json",
    ]);
    assert_eq!(fund["committed"], "3209232.40");
    // 5,000,000.00 received, less the 1% fee, less the commitment (the interest came later).
    assert_eq!(fund["available"], "1740767.60");

    let before_anything = store.run(&["grant", "show", GRANT, "--at", "1", "--json"]);
    assert_eq!(before_anything.status.code(), Some(1));
}

#[test]
fn as_of_a_recorded_time_shows_what_was_known_then() {
    let store = Store::new();
    let (results, code) = store.exec(&lines(&setup()));
    assert_eq!(code, 0, "{results:?}");
    let first = store.events();
    let then = first.last().expect("events")["recorded_at"]
        .as_str()
        .expect("recorded_at")
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let tranche = store
        .command(&[
            "record-disbursement",
            "--grant",
            "G1",
            "--agency",
            "IOM",
            "--amount",
            "100.00",
            "--paid-on",
            "2012-10-01",
        ])
        .env("GRANTFLOW_ACTOR", "fin")
        .output()
        .expect("runs");
    assert!(tranche.status.success(), "{}", stdout(&tranche));
    let past = store.json(&["grant", "show", "G1", "--as-of", &then, "--json"]);
    assert_eq!(past["disbursed"], "0.00");
    assert_eq!(past["status"], "approved");
    let now = store.json(&["grant", "show", "G1", "--json"]);
    assert_eq!(now["disbursed"], "100.00");
    let before = store.run(&["grant", "show", "G1", "--as-of", "2001-01-01T00:00:00Z"]);
    assert_eq!(before.status.code(), Some(1), "the grant did not exist yet");
    let bad = store.run(&["grant", "show", "G1", "--as-of", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn exec_answers_each_line_in_order_and_rejections_leave_the_log_untouched() {
    let store = Store::new();
    let mut commands = setup();
    commands.push(json!({"command": "record-disbursement", "grant": "G1", "agency": "IOM", "amount": "600000.00", "paid_on": "2012-10-01", "actor": "fin"}));
    commands.push(json!({"command": "record-disbursement", "grant": "G1", "agency": "IOM", "amount": "100000.00", "paid_on": "2012-10-01", "actor": "fin", "command_id": "t-1"}));
    commands.push(json!({"command": "approve-grant", "grant": "NOPE", "decided_on": "2012-09-27", "actor": "boss"}));
    let mut input = lines(&commands);
    input.push_str("this is not json\r\n\n");
    input.push_str(&format!("{}\n", json!({"command": "record-disbursement", "grant": "G1", "agency": "IOM", "amount": "100000.00", "paid_on": "2012-10-01", "actor": "fin", "command_id": "t-1"})));
    input.push_str(&format!("{}\n", json!({"command": "record-disbursement", "grant": "G1", "agency": "IOM", "amount": "1.00", "paid_on": "2012-10-01", "actor": "fin", "command_id": "t-1"})));
    let (results, code) = store.exec(&input);
    assert_eq!(code, 1, "a rejected command makes exit 1");
    assert_eq!(results.len(), 11);
    for result in &results[..5] {
        assert_eq!(result["ok"], true, "{result}");
    }
    assert_eq!(results[5]["error"]["code"], "over_disbursement");
    assert!(results[5]["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("500,000.00"));
    assert_eq!(results[6]["ok"], true);
    assert_eq!(results[6]["command_id"], "t-1");
    assert_eq!(results[7]["error"]["code"], "unknown_grant");
    assert_eq!(results[8]["error"]["code"], "malformed_command");
    assert_eq!(results[9]["replayed"], true);
    assert_eq!(results[9]["events"], results[6]["events"]);
    assert_eq!(results[10]["error"]["code"], "command_id_conflict");

    let events = store.events();
    let positions: Vec<u64> = events
        .iter()
        .filter_map(|e| e["position"].as_u64())
        .collect();
    assert_eq!(positions, (1..=positions.len() as u64).collect::<Vec<_>>());
    let accepted: usize = results
        .iter()
        .filter(|r| r["ok"] == true && r.get("replayed").is_none())
        .map(|r| r["events"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(events.len(), accepted);
    let grant = store.json(&["grant", "show", "G1", "--json"]);
    assert_eq!(grant["disbursed"], "100000.00");
    assert_eq!(grant["status"], "active");
}

#[test]
fn subcommands_take_flags_and_the_actor_from_the_environment() {
    let store = Store::new();
    let run = |actor: &str, args: &[&str]| {
        store
            .command(args)
            .env("GRANTFLOW_ACTOR", actor)
            .output()
            .expect("runs")
    };
    assert!(run(
        "fin",
        &[
            "register-fund",
            "--fund",
            "F",
            "--name",
            "Fund",
            "--currency",
            "MXN"
        ]
    )
    .status
    .success());
    let rejected = run(
        "fin",
        &[
            "record-contribution",
            "--fund",
            "F",
            "--donor",
            "D",
            "--amount",
            "1.234",
            "--received-on",
            "2020-01-01",
        ],
    );
    assert_eq!(rejected.status.code(), Some(1));
    assert!(stdout(&rejected).contains("invalid_amount"));
    let json_out = run(
        "fin",
        &[
            "record-contribution",
            "--fund",
            "F",
            "--donor",
            "D",
            "--amount",
            "10.50",
            "--received-on",
            "2020-01-01",
            "--json",
        ],
    );
    let result: Value = serde_json::from_slice(&json_out.stdout).expect("json");
    assert_eq!(result["events"][0]["type"], "fund.contribution_recorded");
    assert_eq!(result["events"][0]["stream"], "fund-F");
    assert_eq!(result["events"][0]["version"], 2);
    let no_actor = store.run(&[
        "submit-proposal",
        "--fund",
        "F",
        "--grant",
        "G",
        "--title",
        "T",
        "--amount",
        "5.00",
    ]);
    assert_eq!(no_actor.status.code(), Some(1));
    assert!(stdout(&no_actor).contains("malformed_command"));
    let proposal = run(
        "sec",
        &[
            "submit-proposal",
            "--fund",
            "F",
            "--grant",
            "G",
            "--title",
            "T",
            "--amount",
            "5.00",
            "--regions",
            "Chiapas",
            "--regions",
            "Oaxaca",
        ],
    );
    assert!(proposal.status.success(), "{}", stdout(&proposal));
    let same_person = run(
        "sec",
        &[
            "approve-grant",
            "--grant",
            "G",
            "--decided-on",
            "2020-01-02",
        ],
    );
    assert!(stdout(&same_person).contains("four_eyes_violation"));
    let fund = store.json(&["fund", "show", "F", "--json"]);
    assert_eq!(fund["received"], "10.50");
    assert_eq!(fund["currency"], "MXN");
}

#[test]
fn verify_export_import_and_checkpoints_prove_the_log() {
    let store = Store::new();
    assert!(store.run(&["demo"]).status.success());
    let verified = store.run(&["verify"]);
    assert!(verified.status.success(), "{}", stdout(&verified));
    assert!(stdout(&verified).contains("ok"));

    let checkpoint = store.run(&["checkpoint"]);
    assert!(checkpoint.status.success());
    let checkpoint_text = stdout(&checkpoint);
    let checkpoint_json: Value = serde_json::from_str(checkpoint_text.trim()).expect("checkpoint");
    std::fs::write(store.path("cp.json"), &checkpoint_text).expect("write");

    let more = setup();
    let (results, code) = store.exec(&lines(&more));
    assert_eq!(code, 0, "{results:?}");
    let cp = store.path("cp.json");
    let cp = cp.to_str().expect("utf-8 path");
    assert!(store.run(&["verify", "--checkpoint", cp]).status.success());

    let mut forged = checkpoint_json.clone();
    forged["hash"] = json!("00".repeat(32));
    std::fs::write(store.path("forged.json"), forged.to_string()).expect("write");
    let forged_path = store.path("forged.json");
    let bad = store.run(&[
        "verify",
        "--checkpoint",
        forged_path.to_str().expect("utf-8"),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stdout(&bad).contains(&format!("position {}", checkpoint_json["position"])));

    // Export, re-import into a fresh store: same head.
    let export = store.path("log.jsonl");
    let export_path = export.to_str().expect("utf-8");
    assert!(store
        .run(&["export", "--format", "jsonl", "--output", export_path])
        .status
        .success());
    let copy = Store::new();
    let imported = copy.run(&["import", export_path]);
    assert!(imported.status.success(), "{}", stderr(&imported));
    let head_a: Value = serde_json::from_slice(&store.run(&["checkpoint"]).stdout).expect("json");
    let head_b: Value = serde_json::from_slice(&copy.run(&["checkpoint"]).stdout).expect("json");
    assert_eq!(head_a["hash"], head_b["hash"]);
    assert!(copy.run(&["verify"]).status.success());
    assert_eq!(
        copy.json(&["grant", "show", GRANT, "--json"]),
        store.json(&["grant", "show", GRANT, "--json"])
    );

    // Each line of the export can be checked with nothing but SHA-256.
    let text = util::read(&export);
    let first = text.lines().next().expect("a line");
    let (body, hash) = first.rsplit_once(",\"hash\":\"").expect("a hash field");
    assert_eq!(hash.len(), 64 + 2);
    assert!(body.starts_with("{\"position\":1,\"stream\":"));
}

#[test]
fn a_tampered_export_is_named_at_its_first_bad_position_and_refused() {
    let store = Store::new();
    assert!(store.run(&["demo"]).status.success());
    let export = store.path("log.jsonl");
    let export_path = export.to_str().expect("utf-8");
    assert!(store
        .run(&["export", "--output", export_path])
        .status
        .success());
    let text = util::read(&export);
    let tampered: Vec<String> = text
        .lines()
        .map(|line| {
            if line.contains("\"position\":10,") {
                line.replacen("900000.00", "990000.00", 1)
            } else {
                line.to_string()
            }
        })
        .collect();
    assert_ne!(tampered.join("\n"), text.trim_end());
    let bad = store.path("bad.jsonl");
    std::fs::write(&bad, tampered.join("\n") + "\n").expect("write");
    let bad_path = bad.to_str().expect("utf-8");

    let verified = store.run(&["verify", "--export", bad_path]);
    assert_eq!(verified.status.code(), Some(1));
    assert!(
        stdout(&verified).contains("position 10"),
        "{}",
        stdout(&verified)
    );

    let copy = Store::new();
    let refused = copy.run(&["import", bad_path]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("position 10"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(copy.run(&["events"]).stdout.len(), 0, "nothing imported");

    // A dropped event and a duplicated one are refused as well.
    let dropped: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("\"position\":4,"))
        .collect();
    std::fs::write(&bad, dropped.join("\n")).expect("write");
    let refused = Store::new().run(&["import", bad_path]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("position 4"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn audit_trail_shows_every_change_with_before_and_after() {
    let store = Store::new();
    assert!(store.run(&["demo"]).status.success());
    let trail = store.json(&["audit", GRANT, "--json"]);
    let entries = trail.as_array().expect("entries");
    assert!(entries
        .iter()
        .all(|e| e["actor"].is_string() && e["recorded_at"].is_string()));
    let approval = entries
        .iter()
        .find(|e| e["type"] == "grant.approved")
        .expect("approval");
    assert_eq!(approval["command"], "approve-grant");
    assert_eq!(approval["actor"], "fund.manager");
    assert_eq!(approval["before"]["amount"], "0.00");
    assert_eq!(approval["after"]["amount"], "3209232.40");
    let revision = entries
        .iter()
        .find(|e| e["type"] == "grant.revised")
        .expect("revision");
    assert!(revision["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .any(|c| c["field"] == "amount"
            && c["before"] == "3209232.40"
            && c["after"] == "3121707.00"));

    let csv = store.run(&["audit", GRANT, "--csv"]);
    assert!(csv.status.success());
    let text = stdout(&csv);
    assert!(text.starts_with("position,recorded_at,actor,command,type"));
    assert!(text.contains("grant.revised"));

    let fund_trail = store.json(&["audit", "UNTFHS", "--json"]);
    assert!(fund_trail
        .as_array()
        .expect("entries")
        .iter()
        .any(|e| e["type"] == "fund.grant_committed"));
    assert_eq!(store.run(&["audit", "NOPE"]).status.code(), Some(1));
}

#[test]
fn events_filter_by_position_stream_and_limit() {
    let store = Store::new();
    assert!(store.run(&["demo"]).status.success());
    let output = store.run(&["events", "--from", "3", "--limit", "2"]);
    let events: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["position"], 3);
    let output = store.run(&["events", "--stream", "fund-UNTFHS"]);
    let events: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(events.iter().all(|e| e["stream"] == "fund-UNTFHS"));
    let versions: Vec<u64> = events
        .iter()
        .filter_map(|e| e["version"].as_u64())
        .collect();
    assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>());
    let keys: Vec<String> = events[0]
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys.len(), 12);
}

#[test]
fn replay_rebuilds_and_reports_speed() {
    let store = Store::new();
    assert!(store.run(&["demo"]).status.success());
    let report = store.json(&["replay", "--json"]);
    assert_eq!(report["events"].as_u64(), Some(store.events().len() as u64));
    assert!(store.run(&["verify"]).status.success());
}

#[test]
fn a_directory_that_is_not_a_store_is_a_clear_error() {
    let store = Store::new();
    std::fs::create_dir_all(store.data()).expect("dir");
    std::fs::write(store.data().join("notes.txt"), "hello").expect("write");
    let output = store.run(&["grant", "list"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("not a grantflow store"),
        "{}",
        stderr(&output)
    );
    let missing = Store::new();
    let output = missing.run(&["fund", "show", "X"]);
    assert_eq!(output.status.code(), Some(2));
}

/// A client that writes one command and waits for its answer before writing the next (a
/// coprocess) gets each answer while its standard input is still open: exec flushes its
/// output whenever no further command waits for an answer.
#[test]
fn exec_answers_a_command_before_the_next_one_is_written() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::Duration;

    let store = Store::new();
    let mut child = store
        .command(&["exec", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("grantflow exec starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (answers_tx, answers) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if answers_tx.send(line).is_err() {
                return;
            }
        }
    });
    let commands = setup();
    let mut appended = 0;
    for (index, command) in commands.iter().enumerate() {
        writeln!(stdin, "{command}").expect("write a command");
        stdin.flush().expect("flush");
        // A generous bound: the answer comes within milliseconds; without it, never.
        let answer = answers
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no answer to command {index} while the input is open"));
        let answer: Value = serde_json::from_str(&answer).expect("a JSON result line");
        assert_eq!(answer["ok"], true, "command {index}: {answer}");
        appended += answer["events"].as_array().map_or(0, Vec::len);
    }
    drop(stdin);
    assert!(child.wait().expect("exec ends").success());
    reader.join().expect("reader thread");
    assert!(answers.try_recv().is_err(), "one answer per command");
    assert_eq!(store.events().len(), appended);
}

#[test]
fn an_over_long_line_is_refused_and_exec_goes_on() {
    let store = Store::new();
    let mut input = String::from("{\"command\":\"register-fund\",\"name\":\"");
    input.push_str(&"x".repeat(1024 * 1024 + 10));
    input.push_str("\"}\n");
    input.push_str(&lines(&setup()[..1]));
    let (results, code) = store.exec(&input);
    assert_eq!(code, 1);
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["error"]["code"], "malformed_command");
    assert_eq!(results[1]["ok"], true);
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn key_generate_writes_a_private_key_0600_and_never_overwrites() {
    let store = Store::new();
    let key = store.path("signer");
    let key_text = key.to_str().expect("utf-8");
    let made = store.run(&["key", "generate", "--out", key_text]);
    assert!(made.status.success(), "{}", stderr(&made));
    assert_eq!(mode_of(&key), 0o600);
    let public = util::read(&store.path("signer.pub"));
    assert_eq!(public.lines().count(), 1, "{public}");
    assert!(public.starts_with("grantflow-ed25519 "), "{public}");
    assert_eq!(public.trim().len(), "grantflow-ed25519 ".len() + 64);
    let secret = std::fs::read(&key).expect("the private key");

    // Again on the same path: refused, neither file touched.
    let again = store.run(&["key", "generate", "--out", key_text]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("never overwritten"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read(&key).expect("the private key"), secret);
    assert_eq!(util::read(&store.path("signer.pub")), public);

    // A PATH.pub that exists already refuses too, and leaves no private key behind.
    std::fs::write(store.path("other.pub"), "mine\n").expect("write");
    let other = store.path("other");
    let refused = store.run(&["key", "generate", "--out", other.to_str().expect("utf-8")]);
    assert!(!refused.status.success());
    assert!(!other.exists());
    assert_eq!(util::read(&store.path("other.pub")), "mine\n");

    // A private key others may read is refused when signing.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(store.run(&["demo"]).status.success());
    let loose = store.run(&["checkpoint", "--sign", key_text]);
    assert!(!loose.status.success());
    assert!(stderr(&loose).contains("chmod 600"), "{}", stderr(&loose));
}

#[test]
fn a_signed_checkpoint_verifies_with_its_key_and_nothing_else() {
    let store = Store::new();
    assert!(store.run(&["demo"]).status.success());
    let key = store.path("signer");
    let key = key.to_str().expect("utf-8");
    assert!(store
        .run(&["key", "generate", "--out", key])
        .status
        .success());
    let trusted = format!("{key}.pub");
    let signed = store.json(&["checkpoint", "--sign", key]);
    // The checkpoint's fields, extended by the signer's key id and the signature.
    for field in ["position", "hash", "recorded_at", "key_id", "signature"] {
        assert!(signed.get(field).is_some(), "{field} missing in {signed}");
    }
    assert_eq!(signed["key_id"].as_str().map(str::len), Some(16));
    assert_eq!(signed["signature"].as_str().map(str::len), Some(128));
    let unsigned = store.json(&["checkpoint"]);
    assert_eq!(signed["position"], unsigned["position"]);
    assert_eq!(signed["hash"], unsigned["hash"]);

    let write = |name: &str, value: &Value| {
        let path = store.path(name);
        std::fs::write(&path, format!("{value}\n")).expect("write");
        path.to_str().expect("utf-8").to_string()
    };
    let verify = |checkpoint: &str, trust: &str| {
        store.run(&["verify", "--checkpoint", checkpoint, "--trust", trust])
    };

    let good = write("cp.json", &signed);
    let ok = verify(&good, &trusted);
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
    // The log grows: the checkpoint still holds.
    let (results, code) = store.exec(&lines(&setup()));
    assert_eq!(code, 0, "{results:?}");
    assert!(verify(&good, &trusted).status.success());

    // Another key: refused.
    let other = store.path("other");
    let other = other.to_str().expect("utf-8");
    assert!(store
        .run(&["key", "generate", "--out", other])
        .status
        .success());
    let wrong_key = verify(&good, &format!("{other}.pub"));
    assert_eq!(wrong_key.status.code(), Some(1), "{}", stdout(&wrong_key));
    assert!(stdout(&wrong_key).contains("not by the trusted key"));

    // Any field changed: the signature no longer holds.
    let position = signed["position"].as_u64().expect("position");
    let changes = [
        ("position", json!(position - 1)),
        ("hash", json!("00".repeat(32))),
        ("recorded_at", json!("2000-01-01T00:00:00Z")),
        ("key_id", json!("0000000000000000")),
    ];
    for (field, value) in changes {
        let mut changed = signed.clone();
        changed[field] = value;
        let path = write(&format!("changed-{field}.json"), &changed);
        let refused = verify(&path, &trusted);
        assert_eq!(
            refused.status.code(),
            Some(1),
            "{field}: {}",
            stdout(&refused)
        );
        assert!(
            stdout(&refused).contains("not trusted"),
            "{}",
            stdout(&refused)
        );
    }
    // A signature with one bit flipped, and one that is not a signature.
    let signature = signed["signature"].as_str().expect("signature").to_string();
    let flipped = format!(
        "{}{}",
        if signature.starts_with('0') { "1" } else { "0" },
        &signature[1..]
    );
    for (name, bad) in [("flipped", flipped), ("short", "abcd".to_string())] {
        let mut forged = signed.clone();
        forged["signature"] = json!(bad);
        let path = write(&format!("sig-{name}.json"), &forged);
        let refused = verify(&path, &trusted);
        assert_eq!(
            refused.status.code(),
            Some(1),
            "{name}: {}",
            stdout(&refused)
        );
    }
    // Without a signature, --trust refuses it (plain verify --checkpoint still reads it).
    let bare = write("bare.json", &unsigned);
    let refused = verify(&bare, &trusted);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stdout(&refused).contains("no signature"),
        "{}",
        stdout(&refused)
    );
    let refused_json = store.run(&[
        "verify",
        "--checkpoint",
        &bare,
        "--trust",
        &trusted,
        "--json",
    ]);
    assert_eq!(refused_json.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&refused_json.stdout).expect("json");
    assert_eq!(report["ok"], false);
    assert!(store
        .run(&["verify", "--checkpoint", &bare])
        .status
        .success());
    // --trust needs --checkpoint.
    assert!(!store.run(&["verify", "--trust", &trusted]).status.success());

    // A rewritten log: the same number of events, another history. The signature holds, the
    // log does not extend the checkpoint.
    let rewritten = Store::new();
    let mut commands = setup();
    while (commands.len() as u64) < position + 5 {
        let n = commands.len();
        commands.push(
            json!({"command": "record-contribution", "fund": "F1", "donor": "JP",
            "amount": format!("{n}.00"), "received_on": "2012-05-02", "actor": "fin"}),
        );
    }
    let (results, code) = rewritten.exec(&lines(&commands));
    assert_eq!(code, 0, "{results:?}");
    let forged = rewritten.run(&["verify", "--checkpoint", &good, "--trust", &trusted]);
    assert_eq!(forged.status.code(), Some(1), "{}", stdout(&forged));
    assert!(
        stdout(&forged).contains("does not extend the checkpoint"),
        "{}",
        stdout(&forged)
    );
}

/// Every entry under `dir` (itself included): path, whether a directory, permission bits.
fn tree_modes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, bool, u32)> {
    let meta = std::fs::symlink_metadata(dir).expect("metadata");
    let mut found = vec![(dir.to_path_buf(), meta.is_dir(), mode_of(dir))];
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            found.extend(tree_modes(&entry.expect("entry").path()));
        }
    }
    found
}

#[test]
fn a_new_data_directory_is_its_owners_only_and_a_loose_token_file_is_refused() {
    let store = Store::new();
    // The umask the binary is started with most often: 022.
    let run = |args: &[&str]| {
        let command = store.command(args);
        // The umask is inherited: the child is started through a shell that sets it.
        let mut shell = std::process::Command::new("sh");
        shell.arg("-c").arg("umask 022 && exec \"$@\"").arg("sh");
        shell.arg(command.get_program());
        shell.args(command.get_args());
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => shell.env(key, value),
                None => shell.env_remove(key),
            };
        }
        shell.output().expect("grantflow runs")
    };
    assert!(run(&["demo"]).status.success());
    let token = run(&["--actor", "ann", "token", "add", "--role", "auditor"]);
    assert!(token.status.success(), "{}", stderr(&token));
    assert!(run(&["checkpoint"]).status.success());
    let data = store.data();
    let found = tree_modes(&data);
    let names: Vec<String> = found
        .iter()
        .map(|(path, ..)| {
            path.strip_prefix(&data)
                .expect("under data")
                .display()
                .to_string()
        })
        .collect();
    for expected in [
        "GRANTFLOW",
        "redo-0",
        "redo-1",
        "db/db",
        "db/conf",
        "tokens.json",
        "tokens.lock",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} missing: {names:?}"
        );
    }
    for (path, is_dir, mode) in &found {
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{} has mode {mode:04o}", path.display());
    }

    // A registry others may write is refused by the token verbs and by serve.
    use std::os::unix::fs::PermissionsExt;
    let tokens = data.join("tokens.json");
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let listed = run(&["token", "list"]);
    assert_eq!(listed.status.code(), Some(2), "{}", stdout(&listed));
    assert!(
        stderr(&listed).contains("writable by its group or by others"),
        "{}",
        stderr(&listed)
    );
    assert!(stderr(&listed).contains("chmod 600"), "{}", stderr(&listed));
    let added = run(&["--actor", "eve", "token", "add", "--role", "admin"]);
    assert!(!added.status.success());
    let served = std::process::Command::new(util::binary())
        .args([
            "--data",
            data.to_str().expect("utf-8"),
            "serve",
            "--addr",
            "127.0.0.1:0",
        ])
        .output()
        .expect("serve runs");
    assert_eq!(served.status.code(), Some(2), "{}", stdout(&served));
    assert!(
        stderr(&served).contains("refusing the token registry"),
        "{}",
        stderr(&served)
    );
    assert!(
        !stdout(&served).contains("listening on"),
        "{}",
        stdout(&served)
    );
    // Group-writable alone is refused too; owner-only is accepted again.
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o620)).expect("chmod");
    assert_eq!(run(&["token", "list"]).status.code(), Some(2));
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert!(run(&["token", "list"]).status.success());
}
