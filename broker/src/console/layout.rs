//! The page shell every view shares: head (the console's own stylesheet
//! and script, nothing inline), the navigation, who is logged in, logout.

use maud::{DOCTYPE, Markup, html};

use super::session::Session;

/// The views in the navigation: path and title.
const VIEWS: [(&str, &str); 5] = [
    ("/credentials", "Credentials"),
    ("/bearer", "Bearer cache"),
    ("/audit", "Audit"),
    ("/health", "Health"),
    ("/recommend", "Recommend"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="no-referrer";
            title { (title) " · twilio-broker console" }
            link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
            link rel="stylesheet" href="/assets/console.css";
            script src="/assets/console.js" defer {}
        }
    }
}

/// A view's page for `session`, with `active` (a path) marked in the navigation.
pub(super) fn page(title: &str, session: &Session, active: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header {
                    p.brand { "twilio-broker console" }
                    nav aria-label="Views" {
                        ul {
                            @for (path, name) in VIEWS {
                                li {
                                    @if path == active {
                                        a href=(path) aria-current="page" { (name) }
                                    } @else {
                                        a href=(path) { (name) }
                                    }
                                }
                            }
                        }
                    }
                    form.logout method="post" action="/logout" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        span.who { "Signed in as " code { (session.caller.principal()) } }
                        " "
                        button type="submit" { "Log out" }
                    }
                }
                main { h1 { (title) } (body) }
                footer { "twilio-broker " (env!("CARGO_PKG_VERSION")) }
            }
        }
    }
}

/// A page without a session (refusals, login problems).
pub(super) fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header { p.brand { "twilio-broker console" } }
                main { (body) }
            }
        }
    }
}
