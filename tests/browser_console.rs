//! The web console in a real browser: headless Chromium driven through chromedriver
//! (WebDriver), against the real `grantflow serve`.
//!
//! - a secretariat user signs in and submits a proposal; trying to approve it themselves is
//!   refused in place (four eyes); an approver, in a second browser, approves it;
//! - a finance user records a disbursement beyond the allocation and sees the refusal with
//!   its figures and the typed values kept, then a valid one, and the agency's bar moves;
//! - an auditor's open page updates by itself when a command arrives through the API, and
//!   goes on doing so after the server restarts (same port, same data directory: the page's
//!   session and live stream survive);
//! - the auditor sees no action form, and a forged POST from their browser is refused and
//!   appends nothing;
//! - the portfolio and the grant page fit a laptop and a 390 px phone, and their screenshots
//!   are saved in `target/console-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs them);
//! `GRANTFLOW_CHROMIUM` and `GRANTFLOW_CHROMEDRIVER` name other binaries.

mod util;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use util::{add_token, http_json, lines, spawn_serve, Server, Store};

/// How long the browser gets for each step.
const WAIT: Duration = Duration::from_secs(30);
const LAPTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);
/// The tallest screenshot taken, in pixels.
const SCREENSHOT_HEIGHT_MAX: u32 = 3_000;

fn binary(variable: &str, default: &str) -> String {
    let candidate = std::env::var(variable).unwrap_or_else(|_| default.into());
    let found = Command::new(&candidate)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "this test drives a real browser: install Debian's `chromium` and `chromium-driver` \
         (scripts/test does), or set {variable} to the binary"
    );
    candidate
}

/// A program's path: as given when it names a file, else found on `PATH`.
fn on_path(program: &str) -> String {
    if program.contains('/') {
        return program.to_string();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .map(|path| path.display().to_string())
        .unwrap_or_else(|| program.to_string())
}

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let program = binary("GRANTFLOW_CHROMEDRIVER", "chromedriver");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < WAIT, "chromedriver does not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A new browser (its own profile: its own cookies) of the given window size.
    async fn browser(&self, (width, height): (u32, u32)) -> Client {
        // chromedriver wants a path, not a name to look up.
        let chromium = on_path(&binary("GRANTFLOW_CHROMIUM", "chromium"));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-sync", "--hide-scrollbars",
                         format!("--window-size={width},{height}")],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a WebDriver session");
        client
            .set_window_size(width, height)
            .await
            .expect("window size");
        client
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One person in one browser.
struct Person {
    client: Client,
    base: String,
}

impl Person {
    async fn sign_in(driver: &Driver, addr: SocketAddr, token: &str, size: (u32, u32)) -> Person {
        let client = driver.browser(size).await;
        let base = format!("http://{addr}");
        client.goto(&format!("{base}/")).await.expect("goto /");
        let input = client
            .find(Locator::Css("input[name=token]"))
            .await
            .expect("the sign-in form");
        input.send_keys(token).await.expect("type the token");
        click(&client, "form.signin button[type=submit]").await;
        if client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("form.signout"))
            .await
            .is_err()
        {
            let page = client.source().await.unwrap_or_default();
            panic!("not signed in: {page}");
        }
        Person { client, base }
    }

    async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("goto");
    }

    /// Opens a command's form and fills it: text typed key by key, dates set (a date
    /// input's typing depends on the locale).
    async fn fill(&self, command: &str, values: &[(&str, &str)]) {
        let form = format!("form[data-command=\"{command}\"]");
        let opened: Value = self
            .script(&format!(
                "const d = document.querySelector('{form}').closest('details'); d.open = true; return d.open;"
            ))
            .await;
        assert_eq!(opened, json!(true));
        for (name, value) in values {
            let selector = format!("{form} [name=\"{name}\"]");
            let input = self
                .client
                .find(Locator::Css(&selector))
                .await
                .unwrap_or_else(|_| panic!("no input {selector}"));
            let kind = input.attr("type").await.expect("type").unwrap_or_default();
            let tag = input.tag_name().await.expect("tag").to_ascii_lowercase();
            if tag == "select" || kind == "checkbox" {
                // Chosen as a person would, by its value (typing into a select depends on
                // the platform).
                let property = if tag == "select" { "value" } else { "checked" };
                let set: Value = self
                    .script(&format!(
                        "const e = document.querySelector('{selector}');
                         e.{property} = {};
                         return String(e.{property});",
                        if tag == "select" {
                            format!("'{value}'")
                        } else {
                            value.to_string()
                        }
                    ))
                    .await;
                assert_eq!(set, json!(value), "{selector}");
            } else if kind == "hidden" {
                // The page fills it in (the page's fund or grant).
                let filled = input
                    .prop("value")
                    .await
                    .expect("value")
                    .unwrap_or_default();
                assert_eq!(&filled, value, "{selector}");
            } else if kind == "date" {
                self.script(&format!(
                    "document.querySelector('{selector}').value = '{value}'; return true;"
                ))
                .await;
            } else {
                input.clear().await.expect("clear");
                input.send_keys(value).await.expect("type");
            }
        }
    }

    /// Fills a command's form, sends it, and waits for the page that says it was done
    /// (panics with the refusal shown in the form, if any).
    async fn act(&self, command: &str, values: &[(&str, &str)]) {
        self.fill(command, values).await;
        let title = self
            .text(&format!(
                "form[data-command=\"{command}\"] button[type=submit]"
            ))
            .await;
        self.script(
            "document.querySelectorAll('main .notice').forEach((e) => e.remove()); return true;",
        )
        .await;
        self.submit(command).await;
        let done = format!("{title}: done");
        let started = Instant::now();
        loop {
            let seen = self
                .script(&format!(
                    "const n = document.querySelector('main .notice');
                     const a = document.querySelector('form[data-command=\"{command}\"] [role=alert]');
                     return [n ? n.textContent : '', a ? a.textContent : ''];"
                ))
                .await;
            let notice = seen[0].as_str().unwrap_or_default();
            let refusal = seen[1].as_str().unwrap_or_default();
            if notice.contains(&done) {
                return;
            }
            assert!(refusal.is_empty(), "{command} refused: {refusal}");
            if started.elapsed() > WAIT {
                let page = self.client.source().await.unwrap_or_default();
                panic!("{command}: no answer, notice {notice:?}, page:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn submit(&self, command: &str) {
        click(
            &self.client,
            &format!("form[data-command=\"{command}\"] button[type=submit]"),
        )
        .await;
    }

    async fn script(&self, source: &str) -> Value {
        self.client
            .execute(source, Vec::new())
            .await
            .expect("a script")
    }

    /// The text of an element, shown or not (a closed form's).
    async fn text(&self, selector: &str) -> String {
        wait_for(&self.client, selector)
            .await
            .prop("textContent")
            .await
            .expect("text")
            .unwrap_or_default()
    }

    async fn value(&self, selector: &str) -> String {
        let element = wait_for(&self.client, selector).await;
        element
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default()
    }

    async fn attr(&self, selector: &str, name: &str) -> String {
        let element = wait_for(&self.client, selector).await;
        element.attr(name).await.expect("attr").unwrap_or_default()
    }

    /// Waits until `selector`'s text contains `expected` (the page may change by itself).
    async fn wait_text(&self, selector: &str, expected: &str) {
        let started = Instant::now();
        loop {
            let text = match self.client.find(Locator::Css(selector)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(expected) {
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "{selector} still reads {text:?}, not {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A screenshot of the whole page at the window's width (the window grows to the page's
    /// height, at most `SCREENSHOT_HEIGHT_MAX`, then returns to `height`).
    async fn screenshot(&self, name: &str, (width, height): (u32, u32)) {
        let page_height = self
            .script("return document.documentElement.scrollHeight;")
            .await
            .as_u64()
            .and_then(|pixels| u32::try_from(pixels).ok())
            .unwrap_or(height)
            .clamp(height, SCREENSHOT_HEIGHT_MAX);
        self.client
            .set_window_size(width, page_height)
            .await
            .expect("resize");
        let png = self.client.screenshot().await.expect("a screenshot");
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("the screenshot");
    }

    /// Whether the page fits the window's width (nothing to scroll sideways).
    async fn fits(&self) -> bool {
        let wide = self
            .script(
                "return [...document.querySelectorAll('body *')]
                   .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1
                                  && !e.closest('.scroll'))
                   .map((e) => e.tagName + '.' + e.className + '#' + e.id).slice(0, 5);",
            )
            .await;
        assert_eq!(wide, json!([]), "wider than the window");
        let fits = self
            .script("return document.documentElement.scrollWidth <= window.innerWidth;")
            .await;
        fits == json!(true)
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

async fn click(client: &Client, selector: &str) {
    wait_for(client, selector)
        .await
        .click()
        .await
        .unwrap_or_else(|error| panic!("click {selector}: {error}"));
}

async fn wait_for(client: &Client, selector: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(selector))
        .await
        .unwrap_or_else(|error| panic!("no {selector}: {error}"))
}

fn head(addr: SocketAddr, auditor: &str) -> u64 {
    let (status, checkpoint) =
        http_json(addr, "GET", "/v1/checkpoint", Some(auditor), None).expect("checkpoint");
    assert_eq!(status, 200, "{checkpoint}");
    checkpoint["position"].as_u64().expect("a position")
}

/// Waits until the page's script says whether it follows the live stream.
async fn wait_live(person: &Person, connected: bool) {
    let started = Instant::now();
    let expected = if connected { "true" } else { "false" };
    while person
        .script("return document.body.dataset.liveConnected;")
        .await
        != json!(expected)
    {
        assert!(
            started.elapsed() < WAIT,
            "the page's live stream never turned {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops the server (SIGTERM) and starts a new one on the same address and data directory,
/// once `watcher`'s page has seen its live stream drop; returns when the page follows the
/// new server's stream.
async fn restart(server: Server, store: &Store, watcher: &Person) -> Server {
    let addr = server.addr;
    let status = server.terminate(WAIT);
    assert!(status.is_some_and(|status| status.success()), "{status:?}");
    wait_live(watcher, false).await;
    let (child, again) = spawn_serve(store, &["serve", "--addr", &addr.to_string()]);
    assert_eq!(again, addr);
    wait_live(watcher, true).await;
    watcher
        .wait_text("#live-status", "Following the log again")
        .await;
    Server { child, addr }
}

fn setup() -> Store {
    let store = Store::new();
    let commands = [
        json!({"command": "register-fund", "fund": "UNTFHS", "name": "UN Trust Fund for Human Security", "currency": "USD", "actor": "fred"}),
        json!({"command": "record-contribution", "fund": "UNTFHS", "donor": "JPN", "amount": "5000000.00", "received_on": "2012-09-01", "actor": "fred"}),
        json!({"command": "submit-proposal", "fund": "UNTFHS", "grant": "MEX-1", "title": "Migrants in transit", "amount": "3209232.40", "country": "MX", "regions": ["Chiapas", "Oaxaca"], "actor": "sam"}),
        json!({"command": "approve-grant", "grant": "MEX-1", "decided_on": "2012-09-27", "actor": "amy"}),
        json!({"command": "assign-agency", "grant": "MEX-1", "agency": "IOM", "allocation": "600000.00", "lead": true, "actor": "sam"}),
        json!({"command": "assign-agency", "grant": "MEX-1", "agency": "UNDP", "allocation": "400000.00", "actor": "sam"}),
        json!({"command": "record-disbursement", "grant": "MEX-1", "agency": "UNDP", "amount": "100000.00", "paid_on": "2012-10-01", "actor": "fred"}),
    ];
    let (results, code) = store.exec(&lines(&commands));
    assert_eq!(code, 0, "{results:?}");
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let store = setup();
    let sam = add_token(&store, "sam", "secretariat,approver");
    let amy = add_token(&store, "amy", "approver");
    let fred = add_token(&store, "fred", "finance");
    let ann = add_token(&store, "ann", "auditor");
    let server = Server::start(&store, WAIT).expect("grantflow serve starts");
    let addr = server.addr;
    let driver = Driver::start();

    // Four eyes: sam submits a proposal, cannot approve it, amy (another browser) does.
    let secretariat = Person::sign_in(&driver, addr, &sam, LAPTOP).await;
    secretariat.open("/").await;
    secretariat
        .fill(
            "submit-proposal",
            &[
                ("fund", "UNTFHS"),
                ("grant", "MEX-2"),
                ("title", "Shelters in Oaxaca"),
                ("amount", "250000.00"),
                ("regions", "Oaxaca"),
            ],
        )
        .await;
    secretariat.submit("submit-proposal").await;
    secretariat
        .wait_text("main .notice", "Submit a proposal: done")
        .await;
    secretariat.open("/grants/MEX-2").await;
    assert!(secretariat
        .text("form[data-command=approve-grant] .four-eyes")
        .await
        .contains("submitted by sam"));
    secretariat
        .fill("approve-grant", &[("decided_on", "2012-10-02")])
        .await;
    secretariat.submit("approve-grant").await;
    let refusal = secretariat
        .text("form[data-command=approve-grant] [role=alert]")
        .await;
    assert!(refusal.contains("four_eyes_violation"), "{refusal}");
    assert_eq!(
        secretariat
            .value("form[data-command=approve-grant] [name=decided_on]")
            .await,
        "2012-10-02"
    );
    let approver = Person::sign_in(&driver, addr, &amy, LAPTOP).await;
    approver.open("/grants/MEX-2").await;
    approver
        .fill("approve-grant", &[("decided_on", "2012-10-02")])
        .await;
    approver.submit("approve-grant").await;
    approver
        .wait_text("main .notice", "Approve the grant: done")
        .await;
    approver.wait_text(".subtitle .status", "approved").await;
    secretariat.close().await;
    approver.close().await;

    // An auditor keeps MEX-1 open while finance works and a command arrives by the API.
    let auditor = Person::sign_in(&driver, addr, &ann, LAPTOP).await;
    auditor.open("/grants/MEX-1").await;
    assert_eq!(
        auditor
            .script("return document.querySelectorAll('form[data-command]').length;")
            .await,
        json!(0),
        "an auditor sees no action form"
    );
    // The page's script has connected to the live stream.
    let started = Instant::now();
    while auditor
        .script("return document.body.dataset.liveConnected === 'true';")
        .await
        != json!(true)
    {
        assert!(started.elapsed() < WAIT, "the page never followed the log");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Finance: over the allocation, refused in place with the typed values kept; then a
    // valid tranche, and the bar moves.
    let finance = Person::sign_in(&driver, addr, &fred, LAPTOP).await;
    finance.open("/grants/MEX-1").await;
    let bar = "article[data-agency=IOM] rect.disbursed";
    assert_eq!(finance.attr(bar, "width").await, "0");
    let over = [
        ("agency", "IOM"),
        ("amount", "700000.00"),
        ("paid_on", "2012-10-15"),
        ("reference", "TR-IOM-1"),
    ];
    finance.fill("record-disbursement", &over).await;
    finance.submit("record-disbursement").await;
    let refusal = finance
        .text("form[data-command=record-disbursement] [role=alert]")
        .await;
    assert!(refusal.contains("over_disbursement"), "{refusal}");
    assert!(refusal.contains("600,000.00 USD"), "the figures: {refusal}");
    assert!(refusal.contains("exceed it by 100,000.00 USD"), "{refusal}");
    for (name, typed) in over {
        let selector = format!("form[data-command=record-disbursement] [name={name}]");
        assert_eq!(finance.value(&selector).await, typed, "{name} kept");
    }
    finance
        .fill("record-disbursement", &[("amount", "150000.00")])
        .await;
    finance.submit("record-disbursement").await;
    finance
        .wait_text("main .notice", "Record a disbursement: done")
        .await;
    // 150,000 of 600,000 is a quarter of the bar's 300 units.
    assert_eq!(finance.attr(bar, "width").await, "75");
    finance.close().await;

    // The auditor's page followed by itself.
    auditor
        .wait_text("#figures [data-figure=disbursed]", "USD 250,000.00")
        .await;
    let (status, result) = http_json(
        addr,
        "POST",
        "/v1/commands",
        Some(&fred),
        Some(
            &json!({"command": "record-disbursement", "grant": "MEX-1", "agency": "UNDP",
                     "amount": "50000.00", "paid_on": "2012-11-01"}),
        ),
    )
    .expect("a command over the API");
    assert_eq!(status, 200, "{result}");
    auditor
        .wait_text("#figures [data-figure=disbursed]", "USD 300,000.00")
        .await;
    auditor
        .wait_text("#live-status", "grant.disbursement_recorded")
        .await;
    assert_eq!(
        auditor
            .attr("article[data-agency=UNDP] rect.disbursed", "width")
            .await,
        "112",
        "150,000 of 400,000: 112.5 units, drawn as 112"
    );

    // The server restarts on the same port and data directory: the open page reconnects to
    // the live stream with its session, and follows a command sent to the new process.
    let server = restart(server, &store, &auditor).await;
    let (status, result) = http_json(
        addr,
        "POST",
        "/v1/commands",
        Some(&fred),
        Some(
            &json!({"command": "record-disbursement", "grant": "MEX-1", "agency": "UNDP",
                     "amount": "25000.00", "paid_on": "2012-11-02"}),
        ),
    )
    .expect("a command over the API");
    assert_eq!(status, 200, "{result}");
    let position = result["events"][0]["position"]
        .as_u64()
        .expect("a position");
    auditor
        .wait_text("#figures [data-figure=disbursed]", "USD 325,000.00")
        .await;
    auditor
        .wait_text("#live-status", &format!("at log position {position}"))
        .await;
    assert_eq!(
        auditor
            .script("return document.querySelectorAll('form.signout').length;")
            .await,
        json!(1),
        "still signed in"
    );

    // A forged POST from the auditor's browser: no CSRF token, then the auditor's own token
    // for a command the role lacks. Nothing is appended.
    let before = head(addr, &ann);
    let forged = auditor
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const csrf = document.querySelector('form.signout [name=csrf]').value;
             const send = (fields) => fetch('/grants/MEX-1', {method: 'POST',
                 body: new URLSearchParams(fields)}).then((r) => r.status);
             const tranche = {command: 'record-disbursement', grant: 'MEX-1', agency: 'IOM',
                 amount: '1.00', paid_on: '2012-12-01'};
             Promise.all([send(tranche), send({...tranche, csrf: 'forged'}),
                          send({...tranche, csrf})]).then(done);",
            Vec::new(),
        )
        .await
        .expect("the forged posts");
    assert_eq!(forged, json!([403, 403, 403]));
    assert_eq!(head(addr, &ann), before, "nothing appended");

    // The portfolio and the grant page at a laptop's and a phone's width.
    for (size, name) in [(LAPTOP, "laptop"), (PHONE, "phone")] {
        auditor
            .client
            .set_window_size(size.0, size.1)
            .await
            .expect("resize");
        auditor.open("/").await;
        wait_for(&auditor.client, "table.grants").await;
        assert!(auditor.fits().await, "the portfolio fits the {name}");
        auditor.screenshot(&format!("portfolio-{name}"), size).await;
        auditor.open("/grants/MEX-1").await;
        wait_for(&auditor.client, "svg.timeline").await;
        assert!(auditor.fits().await, "the grant page fits the {name}");
        auditor.screenshot(&format!("grant-{name}"), size).await;
    }
    auditor.close().await;
    drop(driver);
    let status = server.terminate(WAIT);
    assert!(status.is_some_and(|status| status.success()), "{status:?}");
}

/// An amount as the console shows it: `USD 1,234.50`.
fn usd(amount: &str) -> String {
    let (units, cents) = amount.split_once('.').unwrap_or((amount, "00"));
    let mut grouped = String::new();
    for (index, digit) in units.chars().enumerate() {
        if index > 0 && (units.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("USD {grouped}.{cents}")
}

/// The figures of `selector` (each `[data-figure]` inside it) agree with the API's view.
async fn figures_match(person: &Person, selector: &str, view: &Value, names: &[&str]) {
    for name in names {
        let expected = usd(view[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} in {view}")));
        person
            .wait_text(&format!("{selector} [data-figure={name}]"), &expected)
            .await;
    }
}

/// The worked example of docs/domain.md, every step through the console's forms by the
/// person whose role it is: the fund registered with its terms and IATI organisation
/// identifier, Japan's pledge and contribution, the proposal with its sector, the approval
/// by another person, agencies with budgets, a tranche, a withdrawal, the revision, the
/// annual report scheduled, submitted, returned, submitted again and accepted, the project
/// document, the closure; the pages' figures checked by hand and against the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worked_example_through_the_forms() {
    const GRANT: &str = "MEX-2012-01";
    let store = Store::new();
    let finance_token = add_token(&store, "finance.officer", "finance");
    let secretariat_token = add_token(&store, "secretariat.officer", "secretariat");
    let approver_token = add_token(&store, "fund.manager", "approver");
    let auditor_token = add_token(&store, "auditor", "auditor");
    let server = Server::start(&store, WAIT).expect("grantflow serve starts");
    let addr = server.addr;
    let driver = Driver::start();
    let finance = Person::sign_in(&driver, addr, &finance_token, LAPTOP).await;
    let secretariat = Person::sign_in(&driver, addr, &secretariat_token, LAPTOP).await;
    let approver = Person::sign_in(&driver, addr, &approver_token, LAPTOP).await;

    // Finance registers the fund with its terms and takes Japan's pledge and money.
    finance.open("/").await;
    finance
        .act(
            "register-fund",
            &[
                ("fund", "UNTFHS"),
                ("name", "United Nations Trust Fund for Human Security"),
                ("currency", "USD"),
                ("iati_org_ref", "XI-IATI-UNTFHS-DEMO"),
                ("admin_fee_percent", "1"),
                ("indirect_max_percent", "7"),
                ("tranche_threshold_percent", "70"),
                ("hold_on_overdue_reports", "true"),
            ],
        )
        .await;
    finance.open("/funds/UNTFHS").await;
    finance
        .wait_text("[data-figure=iati_org_ref]", "XI-IATI-UNTFHS-DEMO")
        .await;
    finance
        .act(
            "record-pledge",
            &[
                ("fund", "UNTFHS"),
                ("pledge", "JP-2012"),
                ("donor", "JP-GOV"),
                ("amount", "5000000.00"),
                ("signed_on", "2012-03-15"),
                ("due_on", "2012-04-30"),
            ],
        )
        .await;
    finance
        .act(
            "record-contribution",
            &[
                ("donor", "JP-GOV"),
                ("amount", "5000000.00"),
                ("received_on", "2012-04-02"),
                ("pledge", "JP-2012"),
            ],
        )
        .await;
    finance
        .wait_text("#figures [data-figure=received]", "USD 5,000,000.00")
        .await;
    finance
        .wait_text("#figures [data-figure=fees]", "USD 50,000.00")
        .await;

    // The secretariat submits the proposal, with its sector; another person approves it.
    secretariat.open("/funds/UNTFHS").await;
    secretariat
        .act(
            "submit-proposal",
            &[
                ("fund", "UNTFHS"),
                ("grant", GRANT),
                ("title", "Protection of vulnerable migrants in transit"),
                ("amount", "3209232.40"),
                ("country", "MX"),
                ("regions", "Chiapas, Oaxaca"),
                ("starts_on", "2013-01-01"),
                ("ends_on", "2015-09-30"),
                (
                    "activities",
                    "Strengthen institutions that assist migrants\nStrengthen migrant shelters\nPromote peaceful co-existence",
                ),
                ("sectors", "15190=100"),
            ],
        )
        .await;
    let grant_page = format!("/grants/{GRANT}");
    approver.open(&grant_page).await;
    assert!(approver
        .text("form[data-command=approve-grant] .four-eyes")
        .await
        .contains("submitted by secretariat.officer"));
    approver
        .act(
            "approve-grant",
            &[
                ("grant", GRANT),
                ("decided_on", "2012-09-27"),
                ("reported_equivalent.amount", "260000000"),
                ("reported_equivalent.currency", "JPY"),
            ],
        )
        .await;
    approver.wait_text(".subtitle .status", "approved").await;
    approver
        .wait_text("#figures [data-figure=sectors]", "15190 (100.00%)")
        .await;

    // Agencies with budgets by category (indirect costs at the 7% cap), one without.
    secretariat.open(&grant_page).await;
    secretariat
        .act(
            "assign-agency",
            &[
                ("agency", "IOM"),
                ("allocation", "535000.00"),
                ("lead", "true"),
                ("budget.staff", "400000.00"),
                ("budget.travel", "100000.00"),
                ("budget.indirect", "35000.00"),
            ],
        )
        .await;
    secretariat
        .act(
            "assign-agency",
            &[
                ("agency", "UNDP"),
                ("allocation", "321000.00"),
                ("budget.staff", "300000.00"),
                ("budget.indirect", "21000.00"),
            ],
        )
        .await;
    secretariat
        .act(
            "assign-agency",
            &[("agency", "UNICEF"), ("allocation", "100000.00")],
        )
        .await;
    secretariat
        .wait_text("article[data-agency=IOM] table.budget", "travel")
        .await;

    // Finance pays the first tranche to IOM; the bar moves.
    finance.open(&grant_page).await;
    finance
        .act(
            "record-disbursement",
            &[
                ("agency", "IOM"),
                ("amount", "200000.00"),
                ("paid_on", "2013-01-15"),
                ("reference", "TRANCHE-1-IOM"),
            ],
        )
        .await;
    // 200,000 of 535,000 of the bar's 300 units: 112.1, drawn as 112.
    assert_eq!(
        finance
            .attr("article[data-agency=IOM] rect.disbursed", "width")
            .await,
        "112"
    );

    // UNICEF leaves; the grant is revised (amount, end, sectors).
    secretariat.open(&grant_page).await;
    secretariat
        .act(
            "withdraw-agency",
            &[
                ("agency", "UNICEF"),
                ("reason", "programme revised to fewer agencies"),
            ],
        )
        .await;
    assert_eq!(
        secretariat
            .script("return document.querySelectorAll('article[data-agency=UNICEF]').length;")
            .await,
        json!(0)
    );
    approver.open(&grant_page).await;
    approver
        .act(
            "revise-grant",
            &[
                ("reason", "budget revised (January 2013 to September 2015)"),
                ("amount", "3121707.00"),
                ("ends_on", "2015-09-30"),
                ("decided_on", "2013-03-01"),
                ("sectors", "15190=80\n15110=20"),
            ],
        )
        .await;
    approver
        .wait_text("#figures [data-figure=amount]", "USD 3,121,707.00")
        .await;
    approver
        .wait_text(
            "#figures [data-figure=sectors]",
            "15190 (80.00%), 15110 (20.00%)",
        )
        .await;

    // The annual report: scheduled, submitted, returned, submitted again, accepted.
    secretariat.open(&grant_page).await;
    secretariat
        .act(
            "schedule-report",
            &[
                ("report", "PR-2013"),
                ("kind", "progress"),
                ("period_end", "2013-12-31"),
                ("due_on", "2014-03-31"),
            ],
        )
        .await;
    // Due 2014-03-31 and not submitted: overdue today.
    assert_eq!(
        secretariat.text("#reports tr.overdue .overdue-mark").await,
        "overdue"
    );
    let report_sha256 = "c5040747ec8fc81b5ec69729996c49b5f1a57be828073efcde1b2ccf4cee9d09";
    secretariat
        .act(
            "submit-report",
            &[
                ("report", "PR-2013"),
                ("submitted_on", "2014-03-20"),
                ("document.title", "Annual progress report 2013"),
                ("document.sha256", report_sha256),
            ],
        )
        .await;
    approver.open(&grant_page).await;
    approver
        .act(
            "return-report",
            &[
                ("report", "PR-2013"),
                ("returned_on", "2014-03-28"),
                ("reason", "the results framework is missing"),
            ],
        )
        .await;
    secretariat.open(&grant_page).await;
    secretariat
        .act(
            "submit-report",
            &[
                ("report", "PR-2013"),
                ("submitted_on", "2014-04-10"),
                ("document.title", "Annual progress report 2013 (revised)"),
                ("document.sha256", report_sha256),
            ],
        )
        .await;
    approver.open(&grant_page).await;
    approver
        .act(
            "accept-report",
            &[("report", "PR-2013"), ("accepted_on", "2014-04-15")],
        )
        .await;
    approver.wait_text("#reports tbody tr", "accepted").await;
    assert_eq!(
        approver
            .script("return document.querySelectorAll('#reports tr.overdue').length;")
            .await,
        json!(0),
        "an accepted report is not overdue"
    );

    // The project document, then operational closure.
    secretariat.open(&grant_page).await;
    secretariat
        .act(
            "attach-document",
            &[
                ("document", "PRODOC"),
                ("title", "Project document"),
                ("category", "A02"),
                (
                    "sha256",
                    "0fb9c04ca3b9a64b663c8adc8e80954bcfa27c73b1c1e874e0f2623633e3ed8b",
                ),
                ("issued_on", "2012-09-27"),
            ],
        )
        .await;
    secretariat.wait_text("#documents", "PRODOC").await;
    secretariat
        .act("close-grant", &[("closed_on", "2015-09-30")])
        .await;
    secretariat.wait_text(".subtitle .status", "closed").await;

    // The figures, by hand and as the API gives them.
    let (status, grant) = http_json(
        addr,
        "GET",
        &format!("/v1/grants/{GRANT}"),
        Some(&auditor_token),
        None,
    )
    .expect("the grant's figures");
    assert_eq!(status, 200, "{grant}");
    assert_eq!(grant["status"], "closed");
    assert_eq!(grant["requested"], "3209232.40");
    assert_eq!(grant["amount"], "3121707.00");
    assert_eq!(grant["allocated"], "856000.00");
    assert_eq!(grant["disbursed"], "200000.00");
    assert_eq!(grant["reported_equivalent"]["amount"], "260000000");
    assert_eq!(grant["reports"][0]["status"], "accepted");
    assert_eq!(grant["documents"][0]["document"], "PRODOC");
    let auditor = Person::sign_in(&driver, addr, &auditor_token, LAPTOP).await;
    auditor.open(&grant_page).await;
    figures_match(
        &auditor,
        "#figures",
        &grant,
        &[
            "requested",
            "amount",
            "allocated",
            "unallocated",
            "disbursed",
            "expended",
            "refunded",
        ],
    )
    .await;
    auditor.wait_text("#figures", "Reported as").await;
    let (_, fund) = http_json(addr, "GET", "/v1/funds/UNTFHS", Some(&auditor_token), None)
        .expect("the fund's figures");
    assert_eq!(fund["received"], "5000000.00");
    assert_eq!(fund["fees"], "50000.00");
    assert_eq!(fund["committed"], "3121707.00");
    assert_eq!(fund["available"], "1828293.00");
    auditor.open("/funds/UNTFHS").await;
    figures_match(
        &auditor,
        "#figures",
        &fund,
        &[
            "received",
            "committed",
            "available",
            "cash",
            "fees",
            "pledged",
        ],
    )
    .await;
    // Every step is in the grant's trail, by the person who took it.
    auditor.open(&grant_page).await;
    wait_for(&auditor.client, "#trail li").await;
    let entries = auditor
        .script(
            "return [...document.querySelectorAll('#trail li .entry')].map((e) => e.textContent);",
        )
        .await;
    let entries: Vec<&str> = entries
        .as_array()
        .expect("the trail's entries")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for (command, actor) in [
        ("submit-proposal", "secretariat.officer"),
        ("approve-grant", "fund.manager"),
        ("assign-agency", "secretariat.officer"),
        ("record-disbursement", "finance.officer"),
        ("withdraw-agency", "secretariat.officer"),
        ("revise-grant", "fund.manager"),
        ("return-report", "fund.manager"),
        ("accept-report", "fund.manager"),
        ("attach-document", "secretariat.officer"),
        ("close-grant", "secretariat.officer"),
    ] {
        assert!(
            entries
                .iter()
                .any(|entry| entry.starts_with(command) && entry.contains(&format!("by {actor}"))),
            "{command} by {actor} not in the trail: {entries:?}"
        );
    }
    for person in [finance, secretariat, approver, auditor] {
        person.close().await;
    }
    drop(driver);
    let status = server.terminate(WAIT);
    assert!(status.is_some_and(|status| status.success()), "{status:?}");
}
