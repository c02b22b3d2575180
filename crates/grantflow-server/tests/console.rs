//! The web console through the router (`oneshot`): sign-in and sessions, the cookie's flags,
//! the CSP, escaping of hostile text, forms by role, refusals shown in place with what was
//! typed, forged posts that change nothing, the as-of view, the auditor's page.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use common::{harness, Harness, APPROVER, SECRETARIAT};
use grantflow_server::{
    AppState, Tokens, CONTENT_SECURITY_POLICY, SESSIONS_FILE_NAME, SESSION_COOKIE,
};
use serde_json::json;

/// One console answer.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="csrf" value=""#)
            .unwrap_or_else(|| panic!("no CSRF token in\n{}", self.body));
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }

    /// The markup of the form of `command`.
    fn form(&self, command: &str) -> &str {
        let marker = format!(r#"data-command="{command}""#);
        let at = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no {command} form in\n{}", self.body));
        let rest = &self.body[at..];
        &rest[..rest.find("</form>").unwrap()]
    }

    fn forms(&self) -> usize {
        self.body.matches("data-command=").count()
    }

    fn location(&self) -> &str {
        self.headers[header::LOCATION].to_str().unwrap()
    }
}

async fn send(h: &Harness, request: Request<Body>) -> Page {
    send_to(&h.state, request).await
}

/// A request to the router of `state` (another server on the same data directory).
async fn send_to(state: &AppState, request: Request<Body>) -> Page {
    let response = tower::ServiceExt::oneshot(grantflow_server::app(state.clone()), request)
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Page {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn get(h: &Harness, path: &str, cookie: Option<&str>) -> Page {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    send(h, request.body(Body::empty()).unwrap()).await
}

async fn post(h: &Harness, path: &str, cookie: Option<&str>, pairs: &[(&str, &str)]) -> Page {
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        body.append_pair(name, value);
    }
    let mut request =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    send(h, request.body(Body::from(body.finish())).unwrap()).await
}

/// Signs `token` in; the `Cookie` header value of its session.
async fn sign_in_token(h: &Harness, token: &str) -> String {
    let page = post(h, "/signin", None, &[("token", token), ("next", "/")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let set = page.headers[header::SET_COOKIE].to_str().unwrap();
    let pair = set.split(';').next().unwrap().trim();
    assert!(pair.starts_with(&format!("{SESSION_COOKIE}=")), "{set}");
    pair.to_string()
}

async fn sign_in(h: &Harness, role: &str) -> String {
    sign_in_token(h, h.token(role)).await
}

async fn head(h: &Harness) -> u64 {
    h.state.engine().store().head().await.unwrap().position
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_session_cookie_and_sign_out_ends_it() {
    let h = harness().await;
    let page = get(&h, "/", None).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains(r#"name="token""#), "{}", page.body);
    assert!(page.body.contains(r#"<html lang="en">"#));
    assert_eq!(
        page.headers[header::CONTENT_SECURITY_POLICY],
        CONTENT_SECURITY_POLICY
    );
    // Under `no-referrer` a browser sends `Origin: null` with the console's own forms.
    assert_eq!(page.headers[header::REFERRER_POLICY], "same-origin");
    assert!(CONTENT_SECURITY_POLICY.contains("default-src 'self'"));
    assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));

    let refused = post(&h, "/signin", None, &[("token", "gf_00000000_nope")]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body.contains(r#"role="alert""#));
    assert!(refused.headers.get(header::SET_COOKIE).is_none());

    let page = post(
        &h,
        "/signin",
        None,
        &[("token", h.token("secretariat")), ("next", "/grants/G")],
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/grants/G");
    let set = page.headers[header::SET_COOKIE].to_str().unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(set.contains(flag), "{flag} missing in {set}");
    }
    // `next` never leads to another site.
    let away = post(
        &h,
        "/signin",
        None,
        &[
            ("token", h.token("secretariat")),
            ("next", "//evil.example/"),
        ],
    )
    .await;
    assert_eq!(away.location(), "/");

    let cookie = sign_in(&h, "secretariat").await;
    let page = get(&h, "/", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(SECRETARIAT));
    let csrf = page.csrf();

    // Sign-out needs the session's CSRF token.
    let forged = post(&h, "/signout", Some(&cookie), &[]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(get(&h, "/", Some(&cookie)).await.status, StatusCode::OK);
    let out = post(&h, "/signout", Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let cleared = out.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let page = get(&h, "/", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains(r#"name="token""#));
}

#[tokio::test]
async fn a_revoked_token_ends_its_sessions_at_the_next_request() {
    let h = harness().await;
    let cookie = sign_in(&h, "auditor").await;
    assert_eq!(get(&h, "/", Some(&cookie)).await.status, StatusCode::OK);
    assert_eq!(h.state.session_count(), 1);
    let token = h.token("auditor").to_string();
    Tokens::revoke(h.dir.path(), &token).unwrap();
    let page = get(&h, "/", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains(r#"name="token""#));
    assert_eq!(h.state.session_count(), 0, "the session was ended");
    let again = post(&h, "/signin", None, &[("token", &token)]).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
}

/// A form post to the router of `state`.
async fn post_to(state: &AppState, path: &str, cookie: &str, pairs: &[(&str, &str)]) -> Page {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie)
        .body(Body::from(body))
        .unwrap();
    send_to(state, request).await
}

async fn get_from(state: &AppState, path: &str, cookie: &str) -> Page {
    let request = Request::get(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    send_to(state, request).await
}

#[tokio::test]
async fn sessions_outlive_the_server_and_the_file_holds_only_hashes() {
    let h = harness().await;
    h.seed().await;
    let finance = sign_in(&h, "finance").await;
    let auditor = sign_in(&h, "auditor").await;
    let csrf = get(&h, "/grants/G", Some(&finance)).await.csrf();
    let path = h.dir.path().join(SESSIONS_FILE_NAME);
    let mode = std::fs::metadata(&path).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let cookie_value = |cookie: &str| cookie.split_once('=').unwrap().1.to_string();
    for secret in [
        cookie_value(&finance),
        cookie_value(&auditor),
        csrf.clone(),
        h.token("finance").to_string(),
        h.token("auditor").to_string(),
    ] {
        assert!(!text.contains(&secret), "{secret} in {text}");
    }
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["sessions"].as_array().unwrap().len(), 2, "{text}");

    // A new server on the same directory: both sessions go on, with the same CSRF token.
    let restarted = AppState::new(h.engine.clone(), h.dir.path());
    assert_eq!(restarted.session_count(), 2);
    let page = get_from(&restarted, "/grants/G", &finance).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.csrf(), csrf);
    let before = head(&h).await;
    let page = post_to(
        &restarted,
        "/funds/F",
        &finance,
        &[
            ("csrf", &csrf),
            ("command", "record-contribution"),
            ("fund", "F"),
            ("donor", "D"),
            ("amount", "1.00"),
            ("received_on", "2012-09-03"),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(head(&h).await, before + 1);
    let request = Request::get("/live")
        .header(header::COOKIE, &auditor)
        .body(Body::empty())
        .unwrap();
    let live = tower::ServiceExt::oneshot(grantflow_server::app(restarted.clone()), request)
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK, "the live stream reconnects");

    // Signing out on the new server ends the session on disk too.
    let auditor_csrf = get_from(&restarted, "/", &auditor).await.csrf();
    let out = post_to(&restarted, "/signout", &auditor, &[("csrf", &auditor_csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let again = AppState::new(h.engine.clone(), h.dir.path());
    assert_eq!(again.session_count(), 1);
    assert_eq!(
        get_from(&again, "/", &auditor).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get_from(&again, "/", &finance).await.status, StatusCode::OK);
}

#[tokio::test]
async fn expired_sessions_are_not_read_back_and_leave_the_file() {
    let h = harness().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = grantflow_server::tokens::token_hash(h.token("auditor"));
    let hash = grantflow_server::tokens::token_hash;
    let file = json!({"format": 1, "sessions": [
        {"id_sha256": hash("expired"), "token_sha256": token, "expires_at": now - 1},
        {"id_sha256": hash("alive"), "token_sha256": token, "expires_at": now + 3600},
    ]});
    std::fs::write(h.dir.path().join(SESSIONS_FILE_NAME), file.to_string()).unwrap();
    let state = AppState::new(h.engine.clone(), h.dir.path());
    assert_eq!(state.session_count(), 1);
    let expired = format!("{SESSION_COOKIE}=expired");
    let alive = format!("{SESSION_COOKIE}=alive");
    assert_eq!(
        get_from(&state, "/", &expired).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get_from(&state, "/", &alive).await.status, StatusCode::OK);
    // The next write (a sign-in) leaves the expired session out.
    let request = Request::post("/signin")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={}", h.token("finance"))))
        .unwrap();
    assert_eq!(send_to(&state, request).await.status, StatusCode::SEE_OTHER);
    let text = std::fs::read_to_string(h.dir.path().join(SESSIONS_FILE_NAME)).unwrap();
    assert!(!text.contains(&hash("expired")), "{text}");
    assert!(text.contains(&hash("alive")), "{text}");
    // An unreadable file signs everyone out and the server still starts.
    std::fs::write(h.dir.path().join(SESSIONS_FILE_NAME), "{not json").unwrap();
    let state = AppState::new(h.engine.clone(), h.dir.path());
    assert_eq!(state.session_count(), 0);
    assert_eq!(
        get_from(&state, "/", &alive).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn hostile_text_is_escaped_on_every_page() {
    let h = harness().await;
    h.seed().await;
    let hostile = r#"<script>alert("x")</script><img src=x onerror=alert(1)>"#;
    h.ok(
        "secretariat",
        json!({"command": "submit-proposal", "fund": "F", "grant": "H", "title": hostile,
               "amount": "10.00", "regions": ["<b>Chiapas</b>"]}),
    )
    .await;
    h.ok(
        "secretariat",
        json!({"command": "reject-proposal", "grant": "H", "reason": "</li><script>bad()</script>"}),
    )
    .await;
    let cookie = sign_in(&h, "auditor").await;
    for path in ["/", "/grants/H", "/funds/F", "/?q=%3Cscript%3E"] {
        let page = get(&h, path, Some(&cookie)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_eq!(
            page.headers[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY,
            "{path}"
        );
        // The only script is the console's file; the hostile text is shown as text.
        assert_eq!(page.body.matches("<script").count(), 1, "{path}");
        assert!(page
            .body
            .contains(r#"<script src="/console.js" defer></script>"#));
        assert!(!page.body.contains("<img src=x"), "{path}");
        assert!(!page.body.contains("<b>Chiapas"), "{path}");
        if path != "/funds/F" {
            assert!(
                page.body
                    .contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"),
                "{path}: {}",
                page.body
            );
        }
    }
    let grant = get(&h, "/grants/H", Some(&cookie)).await;
    assert!(grant
        .body
        .contains("&lt;/li&gt;&lt;script&gt;bad()&lt;/script&gt;"));
    assert!(grant.body.contains("&lt;b&gt;Chiapas&lt;/b&gt;"));
}

#[tokio::test]
async fn every_page_names_its_parts_for_people_and_machines() {
    let h = harness().await;
    h.seed().await;
    for (role, body) in [
        (
            "secretariat",
            json!({"command": "assign-agency", "grant": "G", "agency": "IOM", "allocation": "600.00", "lead": true,
            "budget": {"staff": "500.00", "indirect": "35.00", "operating": "65.00"}}),
        ),
        (
            "finance",
            json!({"command": "record-disbursement", "grant": "G", "agency": "IOM", "amount": "250.00", "paid_on": "2012-10-01"}),
        ),
        (
            "finance",
            json!({"command": "record-disbursement", "grant": "G", "agency": "IOM", "amount": "100.00", "paid_on": "2013-01-15"}),
        ),
        (
            "secretariat",
            json!({"command": "schedule-report", "grant": "G", "report": "R1", "kind": "progress", "period_end": "2012-12-31", "due_on": "2013-01-31"}),
        ),
    ] {
        h.ok(role, body).await;
    }
    let cookie = sign_in(&h, "auditor").await;
    let page = get(&h, "/grants/G", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    // Figures, the agency's bars and budget, the chart, the overdue report, the trail, the head.
    assert!(
        body.contains(r#"<dd data-figure="disbursed">USD 350.00</dd>"#),
        "{body}"
    );
    assert!(body.contains("<title>IOM: of USD 600.00 allocated, USD 350.00 disbursed"));
    assert!(body.contains("Budget by category"));
    assert!(body.contains(r#"<svg class="timeline" role="img""#));
    assert!(body.contains("<title>Net disbursements of G over time"));
    assert!(body.contains("2013-01-15: USD 350.00"));
    assert!(body.contains(r#"<tr class="overdue">"#));
    assert!(body.contains("overdue-mark"));
    assert!(body.contains("record-disbursement"));
    assert!(body.contains(r#"data-figure="head-position">9<"#));
    assert!(body.contains(r#"data-live="grant-G fund-F""#));
    // Every input has its label.
    let secretariat = sign_in(&h, "secretariat").await;
    let page = get(&h, "/grants/G", Some(&secretariat)).await;
    for chunk in page.body.split("<input").skip(1) {
        let tag = &chunk[..chunk.find('>').unwrap()];
        if tag.contains(r#"type="hidden""#) {
            continue;
        }
        let id = tag
            .split(r#"id=""#)
            .nth(1)
            .map(|rest| &rest[..rest.find('"').unwrap()]);
        let id = id.unwrap_or_else(|| panic!("an input without id: {tag}"));
        assert!(
            page.body.contains(&format!(r#"<label for="{id}""#)),
            "no label for {id}"
        );
    }
}

#[tokio::test]
async fn auditors_and_integrators_see_no_form_and_each_role_its_own() {
    let h = harness().await;
    h.seed().await;
    for role in ["auditor", "integrator", "admin"] {
        let cookie = sign_in(&h, role).await;
        for path in ["/", "/grants/G", "/funds/F"] {
            let page = get(&h, path, Some(&cookie)).await;
            assert_eq!(page.status, StatusCode::OK, "{role} {path}");
            assert_eq!(page.forms(), 0, "{role} sees a form on {path}");
        }
    }
    let cookie = sign_in(&h, "secretariat").await;
    let page = get(&h, "/grants/G", Some(&cookie)).await;
    for command in [
        "assign-agency",
        "schedule-report",
        "suspend-grant",
        "attach-document",
    ] {
        let form = page.form(command);
        assert!(form.contains(r#"name="grant" value="G""#), "{form}");
        assert!(form.contains(r#"name="csrf""#));
    }
    assert!(!page.body.contains(r#"data-command="record-disbursement""#));
    assert!(!page.body.contains(r#"data-command="approve-grant""#));
    assert!(page
        .form("assign-agency")
        .contains(r#"name="budget.staff""#));
    let cookie = sign_in(&h, "finance").await;
    let page = get(&h, "/grants/G", Some(&cookie)).await;
    let form = page.form("record-disbursement");
    for field in ["agency", "amount", "paid_on", "reference"] {
        assert!(
            form.contains(&format!(r#"name="{field}""#)),
            "{field}: {form}"
        );
    }
    assert!(!page.body.contains(r#"data-command="assign-agency""#));
    let page = get(&h, "/funds/F", Some(&cookie)).await;
    page.form("record-contribution");
    page.form("record-pledge");
    page.form("record-income");
}

#[tokio::test]
async fn a_refusal_is_shown_in_its_form_with_what_was_typed() {
    let h = harness().await;
    h.seed().await;
    h.ok(
        "secretariat",
        json!({"command": "assign-agency", "grant": "G", "agency": "IOM", "allocation": "600.00"}),
    )
    .await;
    let cookie = sign_in(&h, "finance").await;
    let csrf = get(&h, "/grants/G", Some(&cookie)).await.csrf();
    let before = head(&h).await;
    let page = post(
        &h,
        "/grants/G",
        Some(&cookie),
        &[
            ("csrf", &csrf),
            ("command", "record-disbursement"),
            ("grant", "G"),
            ("agency", "IOM"),
            ("amount", "750.00"),
            ("paid_on", "2012-10-01"),
            ("reference", "TR-<7>"),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    let form = page.form("record-disbursement");
    assert!(form.contains(r#"role="alert""#), "{form}");
    assert!(
        form.contains("<strong>over_disbursement</strong>"),
        "{form}"
    );
    assert!(form.contains("600.00"), "the message's figures: {form}");
    assert!(form.contains(r#"value="750.00""#), "{form}");
    assert!(form.contains(r#"value="2012-10-01""#));
    assert!(form.contains(r#"value="TR-&lt;7&gt;""#));
    assert!(page.body.contains("<details class=\"command\" open"));
    assert_eq!(head(&h).await, before, "nothing appended");

    let page = post(
        &h,
        "/grants/G",
        Some(&cookie),
        &[
            ("csrf", &csrf),
            ("command", "record-disbursement"),
            ("grant", "G"),
            ("agency", "IOM"),
            ("amount", "250.00"),
            ("paid_on", "2012-10-01"),
            ("reference", ""),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/grants/G");
    assert_eq!(head(&h).await, before + 1);
    // A live page's own refresh (its script, racing the redirect) leaves the notice alone.
    let refresh = Request::get("/grants/G")
        .header(header::COOKIE, &cookie)
        .header("grantflow-refresh", "1")
        .body(Body::empty())
        .unwrap();
    let page = send(&h, refresh).await;
    assert!(page
        .body
        .contains(r#"<dd data-figure="disbursed">USD 250.00</dd>"#));
    assert!(!page.body.contains("Record a disbursement: done"));
    let page = get(&h, "/grants/G", Some(&cookie)).await;
    assert!(page
        .body
        .contains("Record a disbursement: done (log position"));
    assert!(page
        .body
        .contains(r#"<dd data-figure="disbursed">USD 250.00</dd>"#));
    // The notice is shown once.
    let page = get(&h, "/grants/G", Some(&cookie)).await;
    assert!(!page.body.contains("Record a disbursement: done"));
}

#[tokio::test]
async fn four_eyes_shows_the_submitter_and_refuses_them_in_place() {
    let h = harness().await;
    h.seed().await;
    let (_, both) = Tokens::add(h.dir.path(), "sue.both", &["secretariat,approver"]).unwrap();
    let cookie = sign_in_token(&h, &both).await;
    let csrf = get(&h, "/", Some(&cookie)).await.csrf();
    let page = post(
        &h,
        "/",
        Some(&cookie),
        &[
            ("csrf", &csrf),
            ("command", "submit-proposal"),
            ("fund", "F"),
            ("grant", "P"),
            ("title", "Shelters"),
            ("amount", "300.00"),
            ("regions", "Chiapas, Oaxaca"),
            ("activities", "one\ntwo"),
            ("sectors", "15190=60\r\n15110=40\r\n"),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let view = h
        .call("GET", "/v1/grants/P", Some(h.token("auditor")), None)
        .await
        .1;
    assert_eq!(view["status"], "proposed");
    assert_eq!(
        view["sectors"],
        json!([{"code": "15190", "percentage": "60.00"}, {"code": "15110", "percentage": "40.00"}])
    );
    let page = get(&h, "/grants/P", Some(&cookie)).await;
    assert!(
        page.body
            .contains(r#"<dd data-figure="sectors">15190 (60.00%), 15110 (40.00%)</dd>"#),
        "{}",
        page.body
    );
    let form = page.form("approve-grant");
    assert!(
        form.contains("Proposal submitted by <strong>sue.both</strong>"),
        "{form}"
    );
    assert!(form.contains("You submitted it"));
    let page = post(
        &h,
        "/grants/P",
        Some(&cookie),
        &[
            ("csrf", &csrf),
            ("command", "approve-grant"),
            ("grant", "P"),
            ("decided_on", "2012-10-02"),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    let form = page.form("approve-grant");
    assert!(
        form.contains("<strong>four_eyes_violation</strong>"),
        "{form}"
    );
    assert!(form.contains(r#"value="2012-10-02""#));

    let approver = sign_in(&h, "approver").await;
    let page = get(&h, "/grants/P", Some(&approver)).await;
    assert!(!page.form("approve-grant").contains("You submitted it"));
    let csrf = page.csrf();
    let page = post(
        &h,
        "/grants/P",
        Some(&approver),
        &[
            ("csrf", &csrf),
            ("command", "approve-grant"),
            ("grant", "P"),
            ("decided_on", "2012-10-02"),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let view = h
        .call("GET", "/v1/grants/P", Some(h.token("auditor")), None)
        .await
        .1;
    assert_eq!(view["status"], "approved");
    let trail = h
        .call("GET", "/v1/grants/P/audit", Some(h.token("auditor")), None)
        .await
        .1;
    assert_eq!(trail[1]["actor"], APPROVER);
}

#[tokio::test]
async fn forged_posts_change_nothing() {
    let h = harness().await;
    h.seed().await;
    h.ok(
        "secretariat",
        json!({"command": "assign-agency", "grant": "G", "agency": "IOM", "allocation": "600.00"}),
    )
    .await;
    let finance = sign_in(&h, "finance").await;
    let csrf = get(&h, "/grants/G", Some(&finance)).await.csrf();
    let disbursement = |csrf: &'static str| {
        vec![
            ("csrf", csrf),
            ("command", "record-disbursement"),
            ("grant", "G"),
            ("agency", "IOM"),
            ("amount", "10.00"),
            ("paid_on", "2012-10-01"),
        ]
    };
    let before = head(&h).await;
    // No session, no token, a wrong token, another site.
    let page = post(&h, "/grants/G", None, &disbursement("x")).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    let mut missing = disbursement("");
    missing.remove(0);
    let page = post(&h, "/grants/G", Some(&finance), &missing).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains(r#"role="alert""#));
    let page = post(&h, "/grants/G", Some(&finance), &disbursement("0000")).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let csrf: &'static str = Box::leak(csrf.into_boxed_str());
    let request = Request::post("/grants/G")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, &finance)
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::ORIGIN, "http://evil.example")
        .body(Body::from(
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(disbursement(csrf))
                .finish(),
        ))
        .unwrap();
    assert_eq!(send(&h, request).await.status, StatusCode::FORBIDDEN);
    // Another session's token.
    let other = sign_in(&h, "finance").await;
    let other_csrf = get(&h, "/", Some(&other)).await.csrf();
    assert_ne!(other_csrf, csrf);
    let other_csrf: &'static str = Box::leak(other_csrf.into_boxed_str());
    let page = post(&h, "/grants/G", Some(&finance), &disbursement(other_csrf)).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    // A role that lacks the right, with its own valid token: refused as the API refuses.
    let auditor = sign_in(&h, "auditor").await;
    let auditor_csrf = get(&h, "/", Some(&auditor)).await.csrf();
    let auditor_csrf: &'static str = Box::leak(auditor_csrf.into_boxed_str());
    let page = post(&h, "/grants/G", Some(&auditor), &disbursement(auditor_csrf)).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.body.contains("<strong>forbidden</strong>"),
        "{}",
        page.body
    );
    assert_eq!(page.forms(), 0);
    assert_eq!(head(&h).await, before, "nothing appended");
    // The same form with the right session and token goes through.
    let page = post(&h, "/grants/G", Some(&finance), &disbursement(csrf)).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(head(&h).await, before + 1);
}

#[tokio::test]
async fn the_portfolio_filters_searches_and_pages() {
    let h = harness().await;
    h.seed().await;
    for n in 1..=60 {
        h.ok(
            "secretariat",
            json!({"command": "submit-proposal", "fund": "F", "grant": format!("Q{n:02}"),
                   "title": format!("Water point {n}"), "amount": "1.00"}),
        )
        .await;
    }
    let cookie = sign_in(&h, "auditor").await;
    let page = get(&h, "/", Some(&cookie)).await;
    assert!(
        page.body.contains("61 grants, page 1 of 2"),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains(r#"<dd data-figure="received">USD 5,000.00</dd>"#));
    assert!(page
        .body
        .contains(r#"<dd data-figure="committed">USD 1,000.00</dd>"#));
    assert!(page.body.contains(r#"href="/?page=2""#));
    let page = get(&h, "/?page=2", Some(&cookie)).await;
    assert!(page.body.contains("href=\"/grants/Q60\""));
    assert!(!page.body.contains("href=\"/grants/Q01\""));
    let page = get(&h, "/?status=approved", Some(&cookie)).await;
    assert!(page.body.contains("1 grants"), "{}", page.body);
    assert!(page.body.contains("href=\"/grants/G\""));
    let page = get(&h, "/?q=water+point+1&status=proposed", Some(&cookie)).await;
    // 1, 10 to 19: 11 grants.
    assert!(page.body.contains("11 grants"), "{}", page.body);
    let page = get(&h, "/?q=q07", Some(&cookie)).await;
    assert!(page.body.contains("1 grants"));
    assert!(page.body.contains("Water point 7"));
    let page = get(&h, "/?status=bogus", Some(&cookie)).await;
    assert!(page.body.contains("unknown status"));
}

#[tokio::test]
async fn the_grant_as_of_an_earlier_position_shows_then_and_offers_no_form() {
    let h = harness().await;
    h.seed().await;
    let cookie = sign_in(&h, "approver").await;
    // Position 3: the proposal, before the approval.
    let page = get(&h, "/grants/G?at=3", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("as of position 3"));
    assert!(
        page.body.contains(r#"data-live-text="status">proposed<"#),
        "{}",
        page.body
    );
    assert_eq!(page.forms(), 0);
    assert!(!page.body.contains("data-live=\""));
    let page = get(&h, "/grants/G", Some(&cookie)).await;
    assert!(page.body.contains(r#"data-live-text="status">approved<"#));
    let page = get(&h, "/grants/G?at=2", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let page = get(&h, "/grants/G?at=x", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let page = get(&h, "/grants/G?as_of=2000-01-01T00:00:00Z", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let page = get(&h, "/grants/NOPE", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains(r#"role="alert""#));
}

#[tokio::test]
async fn overdue_marks_follow_the_moment_shown() {
    // A log recorded on 2013-01-15 (re-dated, re-hashed and imported into a new store):
    // report R1 of grant G due on 2013-01-31.
    let source = harness().await;
    source.seed().await;
    source
        .ok(
            "secretariat",
            json!({"command": "schedule-report", "grant": "G", "report": "R1", "kind": "progress",
                   "period_end": "2012-12-31", "due_on": "2013-01-31"}),
        )
        .await;
    let mut events = source.engine.store().read(1, 100).await.unwrap();
    let mut prev = grantflow_store::ZERO_HASH;
    for (index, event) in events.iter_mut().enumerate() {
        event.recorded_at = format!("2013-01-15T10:00:{index:02}.000000Z");
        event.prev_hash = prev;
        event.hash = event.compute_hash();
        prev = event.hash;
    }
    let last = events.last().unwrap().position;
    let dir = tempfile::tempdir().unwrap();
    {
        let store = grantflow_store_sled::SledStore::open(dir.path()).unwrap();
        grantflow_store::EventStore::import(&store, events)
            .await
            .unwrap();
    }
    let tokens = common::issue_tokens(dir.path());
    let engine = common::open_engine(dir.path()).await;
    let state = AppState::new(engine.clone(), dir.path());
    let h = Harness {
        dir,
        engine,
        state,
        tokens,
    };
    let cookie = sign_in(&h, "auditor").await;
    let overdue_row = r#"<tr class="overdue">"#;

    // Today R1 is overdue; as of its last event (recorded 2013-01-15) it was not yet.
    let page = get(&h, "/grants/G", Some(&cookie)).await;
    assert!(page.body.contains(overdue_row), "{}", page.body);
    let page = get(&h, &format!("/grants/G?at={last}"), Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains(r#"data-figure="overdue-on">2013-01-15</time>"#),
        "{}",
        page.body
    );
    assert!(!page.body.contains(overdue_row), "{}", page.body);
    assert!(!page.body.contains("overdue-mark"));
    // As of a time: the day asked for (UTC).
    let page = get(
        &h,
        "/grants/G?as_of=2013-01-31T23:00:00-02:00",
        Some(&cookie),
    )
    .await;
    assert!(
        page.body
            .contains(r#"data-figure="overdue-on">2013-02-01</time>"#),
        "{}",
        page.body
    );
    assert!(page.body.contains(overdue_row), "{}", page.body);
    let page = get(&h, "/grants/G?as_of=2013-01-20T00:00:00Z", Some(&cookie)).await;
    assert!(page
        .body
        .contains(r#"data-figure="overdue-on">2013-01-20</time>"#));
    assert!(!page.body.contains(overdue_row), "{}", page.body);
}

#[tokio::test]
async fn the_auditors_page_verifies_and_downloads() {
    let h = harness().await;
    h.seed().await;
    let secretariat = sign_in(&h, "secretariat").await;
    assert_eq!(
        get(&h, "/audit", Some(&secretariat)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&h, "/audit/export.jsonl", Some(&secretariat))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let cookie = sign_in(&h, "auditor").await;
    let page = get(&h, "/audit?verify=1", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("<strong>Verified</strong>: 5 events"),
        "{}",
        page.body
    );
    let checkpoint = get(&h, "/audit/checkpoint.json", Some(&cookie)).await;
    let checkpoint: serde_json::Value = serde_json::from_str(&checkpoint.body).unwrap();
    assert_eq!(checkpoint["position"], 5);
    let export = get(&h, "/audit/export.jsonl", Some(&cookie)).await;
    assert_eq!(export.status, StatusCode::OK);
    let lines: Vec<&str> = export.body.lines().collect();
    assert_eq!(lines.len(), 5);
    let events = h
        .call_raw("GET", "/v1/events", Some(h.token("auditor")), None)
        .await
        .1;
    let events: serde_json::Value = serde_json::from_slice(&events).unwrap();
    let last: serde_json::Value = serde_json::from_str(lines[4]).unwrap();
    assert_eq!(last, events["events"][4]);
    let csv = get(&h, "/audit/events.csv", Some(&cookie)).await;
    assert_eq!(csv.body.lines().count(), 6, "a header and 5 rows");
    let iati = get(&h, "/audit/iati.xml", Some(&cookie)).await;
    assert!(iati.body.contains("<iati-activities"), "{}", iati.body);
    let page = get(&h, "/audit", Some(&cookie)).await;
    assert!(page.body.contains(r#"href="/audit/iati-org.xml""#));
    let org = get(&h, "/audit/iati-org.xml", Some(&cookie)).await;
    assert_eq!(org.status, StatusCode::OK, "{}", org.body);
    assert!(org.body.contains("<iati-organisations"), "{}", org.body);
    assert!(org.body.contains("XM-DAC-41301"), "{}", org.body);
    let (_, api) = h
        .call_raw("GET", "/v1/export/iati-org", Some(h.token("auditor")), None)
        .await;
    // The same file as the API's (its generated time aside).
    let strip = |text: &str| {
        text.split("generated-datetime=\"")
            .enumerate()
            .map(|(index, part)| match part.split_once('"') {
                Some((_, rest)) if index > 0 => rest.to_string(),
                _ => part.to_string(),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&org.body), strip(&String::from_utf8(api).unwrap()));
    let fund = get(&h, "/funds/F", Some(&cookie)).await;
    assert!(
        fund.body
            .contains(r#"<dd data-figure="iati_org_ref">XM-DAC-41301</dd>"#),
        "{}",
        fund.body
    );
    // Overdue reports on a chosen date.
    h.ok(
        "secretariat",
        json!({"command": "schedule-report", "grant": "G", "report": "R1", "kind": "progress", "period_end": "2012-12-31", "due_on": "2013-01-31"}),
    )
    .await;
    let page = get(&h, "/audit?overdue_on=2013-01-31", Some(&cookie)).await;
    assert!(page.body.contains("No report overdue on 2013-01-31"));
    let page = get(&h, "/audit?overdue_on=2013-02-01", Some(&cookie)).await;
    assert!(page.body.contains("overdue-mark"), "{}", page.body);
}

#[tokio::test]
async fn the_live_stream_needs_a_session_and_names_new_events() {
    let h = harness().await;
    h.seed().await;
    assert_eq!(
        get(&h, "/live", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let cookie = sign_in(&h, "secretariat").await;
    let request = Request::get("/live")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(grantflow_server::app(h.state.clone()), request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    h.ok(
        "finance",
        json!({"command": "record-contribution", "fund": "F", "donor": "D", "amount": "1.00", "received_on": "2012-09-02"}),
    )
    .await;
    let mut body = response.into_body().into_data_stream();
    let mut text = String::new();
    while !text.contains("event: change") {
        let chunk = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            futures::StreamExt::next(&mut body),
        )
        .await
        .expect("an event within 10 s")
        .expect("the stream goes on")
        .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let more = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !text.contains("\n\n") || !text.contains(r#""stream":"fund-F""#) {
            let chunk = futures::StreamExt::next(&mut body).await.unwrap().unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    })
    .await
    .unwrap();
    assert!(more.contains("id: 6"), "{more}");
    assert!(
        more.contains(r#""type":"fund.contribution_recorded""#),
        "{more}"
    );
}

#[tokio::test]
async fn the_script_and_stylesheet_come_from_the_binary() {
    let h = harness().await;
    let script = get(&h, "/console.js", None).await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script.body.contains("new EventSource(\"/live\")"));
    let style = get(&h, "/console.css", None).await;
    assert!(style.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    // The API keeps answering JSON, with or without a session cookie.
    let cookie = sign_in(&h, "admin").await;
    let (status, _) = h.call("GET", "/v1/grants", None, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a cookie is never a bearer token"
    );
    let page = get(&h, "/v1/grants", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
}
