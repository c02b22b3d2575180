//! The frame every console page shares (language, viewport, stylesheet, script, header with
//! who is signed in and the sign-out form, the live-update mark), the sign-in page, and
//! small pieces of markup: amounts, alerts, figure lists.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use grantflow_domain::{parse_amount, Currency};
use maud::{html, Markup, DOCTYPE};

use super::forms::CSRF_FIELD;
use super::session::Viewer;
use crate::tokens::Role;

/// What the frame of a page needs.
pub(crate) struct Frame<'a> {
    /// The page's title.
    pub title: &'a str,
    /// The signed-in user (none on the sign-in page).
    pub viewer: Option<&'a Viewer>,
    /// The streams whose events refresh the page (`*` for any); none: the page is a moment
    /// of the past and does not follow the log.
    pub live: Option<String>,
    /// A one-time message (e.g. a command accepted).
    pub notice: Option<String>,
}

/// A whole page: `lang` set, the stylesheet and script of the binary, and `body` in `<main>`.
pub(crate) fn page(frame: Frame<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (frame.title) " · grantflow" }
                link rel="stylesheet" href="/console.css";
                script src="/console.js" defer {}
            }
            body data-live=[frame.live.as_deref()] {
                header class="top" {
                    a class="brand" href="/" { "grantflow" }
                    @if let Some(viewer) = frame.viewer {
                        nav aria-label="Main" {
                            a href="/" { "Portfolio" }
                            @if can_audit(viewer) { a href="/audit" { "Audit" } }
                        }
                        form class="signout" method="post" action="/signout" {
                            span class="who" { (viewer.caller.actor()) " (" (roles(viewer)) ")" }
                            input type="hidden" name=(CSRF_FIELD) value=(viewer.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                p id="live-status" class="live-status" aria-live="polite" {}
                main {
                    @if let Some(notice) = &frame.notice {
                        p class="notice" role="status" { (notice) }
                    }
                    (body)
                }
            }
        }
    }
}

/// Whether the viewer may use the auditor's page (the API's `Access::Audit`).
pub(crate) fn can_audit(viewer: &Viewer) -> bool {
    viewer.caller.token.has_role(Role::Auditor) || viewer.caller.token.has_role(Role::Admin)
}

fn roles(viewer: &Viewer) -> String {
    let names: Vec<&str> = viewer
        .caller
        .token
        .roles
        .iter()
        .map(|role| role.as_str())
        .collect();
    names.join(", ")
}

/// The sign-in page; `next` is where to go once signed in, `problem` why the last try failed.
pub(crate) fn sign_in(next: &str, problem: Option<&str>) -> Markup {
    let frame = Frame {
        title: "Sign in",
        viewer: None,
        live: None,
        notice: None,
    };
    page(
        frame,
        html! {
            h1 { "Sign in" }
            p { "Sign in with your grantflow token (issued with " code { "grantflow token add" } ")." }
            form class="signin" method="post" action="/signin" {
                @if let Some(problem) = problem {
                    div class="refusal" role="alert" { (problem) }
                }
                input type="hidden" name="next" value=(next);
                div class="field" {
                    label for="token" { "Token" }
                    input type="password" id="token" name="token" required autocomplete="off"
                        spellcheck="false" autofocus;
                }
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// An HTML response.
pub(crate) fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, markup).into_response()
}

/// A page that only says what went wrong (`role="alert"`), with its status.
pub(crate) fn problem(viewer: &Viewer, status: StatusCode, code: &str, message: &str) -> Response {
    let frame = Frame {
        title: "Problem",
        viewer: Some(viewer),
        live: None,
        notice: None,
    };
    respond(
        status,
        page(
            frame,
            html! {
                h1 { "This did not work" }
                (alert(code, message))
                p { a href="/" { "Back to the portfolio" } }
            },
        ),
    )
}

/// A refusal: its code and message.
pub(crate) fn alert(code: &str, message: &str) -> Markup {
    html! {
        div class="refusal" role="alert" tabindex="-1" { strong { (code) } ": " (message) }
    }
}

/// An amount of the figures (`"3209232.40"`) as people read it: `USD 3,209,232.40`.
pub(crate) fn money(text: &str, currency: &str) -> String {
    let decimals = Currency::parse(currency).map_or(2, |currency| currency.decimals());
    match parse_amount(text.trim_start_matches('-'), decimals) {
        Ok(amount) if text.starts_with('-') => {
            format!("{currency} -{}", amount.format_human(decimals))
        }
        Ok(amount) => format!("{currency} {}", amount.format_human(decimals)),
        // Zero does not parse as an amount (amounts are positive): print it as it is.
        Err(_) => format!("{currency} {text}"),
    }
}

/// The exact amount of a figure, in minor units (0 when it does not parse, e.g. `"0.00"`).
pub(crate) fn minor(text: &str, currency: &str) -> grantflow_domain::Amount {
    let decimals = Currency::parse(currency).map_or(2, |currency| currency.decimals());
    let negative = text.starts_with('-');
    match parse_amount(text.trim_start_matches('-'), decimals) {
        Ok(amount) if negative => -amount,
        Ok(amount) => amount,
        Err(_) => grantflow_domain::Amount::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_as_people_write_them() {
        assert_eq!(money("3209232.40", "USD"), "USD 3,209,232.40");
        assert_eq!(money("0.00", "USD"), "USD 0.00");
        assert_eq!(money("-5.00", "USD"), "USD -5.00");
        assert_eq!(money("260000000", "JPY"), "JPY 260,000,000");
        assert_eq!(minor("12.34", "USD").0, 1234);
        assert_eq!(minor("-1.00", "USD").0, -100);
        assert_eq!(minor("0.00", "USD").0, 0);
    }
}
