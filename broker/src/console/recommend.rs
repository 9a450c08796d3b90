//! The Recommend form: the decision framework's questions (environment,
//! side, needs) and its answer (method, reasons, warnings, limits, next
//! steps, rule ids), exactly what the Recommend RPC answers, under the same
//! policy name (`Recommend`). The form posts with the session's CSRF token.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};

use super::web::{self, pass};
use super::{Console, layout};
use crate::error::{Error, Result};
use crate::gate::{Checked, Describe};
use crate::policy::{Action, Rpc};
use crate::recommend::{self, ClientSdk, Environment, Method, Needs, Recommendation, Side};

/// The form as posted (checkboxes are present only when ticked).
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub(super) struct RecommendForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    environment: String,
    #[serde(default)]
    side: String,
    #[serde(default)]
    client_sdk: String,
    time_limited: Option<String>,
    charge_free: Option<String>,
    needs_account_management: Option<String>,
    least_privilege: Option<String>,
    /// Comma- or space-separated resource names.
    #[serde(default)]
    resources: String,
}

/// The form's needs, checked as the RPC checks its request.
pub(super) struct CheckedNeeds {
    form: RecommendForm,
    needs: Needs,
}

impl Checked for CheckedNeeds {
    fn action(&self) -> Action<'_> {
        Action::new(Rpc::Recommend)
    }
}

impl Describe for RecommendForm {
    const RPC: Rpc = Rpc::Recommend;
    type Checked = CheckedNeeds;
    fn check(self) -> Result<CheckedNeeds> {
        let environment = match self.environment.as_str() {
            "prototype" => Environment::Prototype,
            "test" => Environment::Test,
            "production" => Environment::Production,
            _ => {
                return Err(Error::invalid(
                    "environment",
                    "is required: prototype, test or production",
                ));
            }
        };
        let side = match self.side.as_str() {
            "server" => Side::Server,
            "client" => Side::Client,
            _ => {
                return Err(Error::invalid(
                    "side",
                    "is required: server, or client for a browser or mobile app",
                ));
            }
        };
        let client_sdk = match self.client_sdk.as_str() {
            "" => None,
            "voice" => Some(ClientSdk::Voice),
            "video" => Some(ClientSdk::Video),
            "conversations" => Some(ClientSdk::Conversations),
            "sync" => Some(ClientSdk::Sync),
            _ => {
                return Err(Error::invalid(
                    "client_sdk",
                    "must be voice, video, conversations, sync or empty",
                ));
            }
        };
        let needs = Needs {
            environment,
            side,
            time_limited: self.time_limited.is_some(),
            charge_free: self.charge_free.is_some(),
            needs_account_management: self.needs_account_management.is_some(),
            least_privilege: self.least_privilege.is_some(),
            resources: self
                .resources
                .split([',', ' ', '\n'])
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
            client_sdk,
        };
        needs.validate()?;
        Ok(CheckedNeeds { form: self, needs })
    }
}

/// `GET /recommend`: the empty form (no policy check: it shows nothing).
pub(super) async fn form(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let session = match web::session(&console, &headers) {
        Ok(session) => session,
        Err(refusal) => return refusal,
    };
    let defaults = RecommendForm {
        environment: "production".into(),
        side: "server".into(),
        ..RecommendForm::default()
    };
    let page = layout::page(
        "Recommend",
        &session,
        "/recommend",
        questions(&defaults, &session.csrf),
    );
    axum::response::IntoResponse::into_response(axum::response::Html(page.into_string()))
}

/// `POST /recommend`: the framework's answer under the gate.
pub(super) async fn answer(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    axum::Form(posted): axum::Form<RecommendForm>,
) -> Response {
    let session = match web::session(&console, &headers) {
        Ok(session) => session,
        Err(refusal) => return refusal,
    };
    if let Err(refusal) = web::check_csrf(&session, &posted.csrf) {
        return refusal;
    }
    let shown_to = &session;
    pass(&console, &session, posted, |checked, _| async move {
        let answer = recommend::recommend(&checked.needs)?;
        let body = html! {
            (questions(&checked.form, &shown_to.csrf))
            (render(&answer))
        };
        Ok(layout::page("Recommend", shown_to, "/recommend", body))
    })
    .await
}

/// The form, filled with `form`'s values.
fn questions(form: &RecommendForm, csrf: &str) -> Markup {
    let check = |name: &'static str, text: &'static str, on: bool| {
        html! {
            label { input type="checkbox" name=(name) checked[on]; (text) }
        }
    };
    html! {
        form.recommend-form #recommend method="post" action="/recommend" {
            input type="hidden" name="csrf" value=(csrf);
            label { "Environment"
                select name="environment" {
                    @for env in ["prototype", "test", "production"] {
                        option value=(env) selected[form.environment == env] { (env) }
                    }
                }
            }
            label { "Side"
                select name="side" {
                    option value="server" selected[form.side == "server"] { "server" }
                    option value="client" selected[form.side == "client"] { "client (browser or mobile app)" }
                }
            }
            label { "Client SDK"
                select name="client_sdk" {
                    option value="" selected[form.client_sdk.is_empty()] { "none" }
                    @for sdk in ["voice", "video", "conversations", "sync"] {
                        option value=(sdk) selected[form.client_sdk == sdk] { (sdk) }
                    }
                }
            }
            fieldset {
                legend { "Needs" }
                (check("time_limited", "credentials that expire on their own", form.time_limited.is_some()))
                (check("charge_free", "tests that cost nothing", form.charge_free.is_some()))
                (check("needs_account_management", "calls /Accounts or /Keys", form.needs_account_management.is_some()))
                (check("least_privilege", "only the listed resources", form.least_privilege.is_some()))
            }
            label { "Resources (comma-separated)"
                input type="text" name="resources" value=(form.resources) placeholder="Messages, Calls";
            }
            button type="submit" { "Recommend" }
        }
    }
}

/// The method's name as the API's enum spells it.
fn method_name(method: Method) -> &'static str {
    match method {
        Method::AuthToken => "METHOD_AUTH_TOKEN",
        Method::ApiKey => "METHOD_API_KEY",
        Method::OAuth2 => "METHOD_OAUTH2",
        Method::AccessToken => "METHOD_ACCESS_TOKEN",
        Method::TestCredentials => "METHOD_TEST_CREDENTIALS",
    }
}

/// The answer, every part the RPC returns.
fn render(answer: &Recommendation) -> Markup {
    let list = |id: &'static str, items: &[String]| {
        html! {
            ul id=(id) { @for item in items { li { (item) } } }
        }
    };
    html! {
        section.answer #answer aria-labelledby="answer-title" {
            h2 #answer-title { "Answer" }
            dl {
                dt { "Method" }
                dd #method {
                    code { (method_name(answer.method)) }
                    " — " (recommend::review::describe_recommended(answer.method, answer.key_type))
                }
                @if let Some(key_type) = answer.key_type {
                    dt { "Key type" }
                    dd #key-type { (key_type.as_str()) }
                }
                dt { "Reasons" }
                dd { (list("reasons", &answer.reasons)) }
                dt { "Warnings" }
                dd { (list("warnings", &answer.warnings)) }
                dt { "Limits" }
                dd {
                    ul #limits {
                        @for limit in &answer.limits {
                            li data-id=(limit.id) {
                                code { (limit.id) } ": " (limit.text)
                                @if limit.twilio_error_code != 0 {
                                    " (Twilio error " (limit.twilio_error_code) ")"
                                }
                            }
                        }
                    }
                }
                dt { "Next steps" }
                dd { (list("next-steps", &answer.next_steps)) }
                dt { "Rules" }
                dd #rules { @for rule in &answer.rules { code { (rule) } " " } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(environment: &str, side: &str, sdk: &str) -> RecommendForm {
        RecommendForm {
            environment: environment.into(),
            side: side.into(),
            client_sdk: sdk.into(),
            ..RecommendForm::default()
        }
    }

    #[test]
    fn the_form_asks_what_the_rpc_asks() {
        let checked = form("production", "client", "video")
            .check()
            .map_err(|e| e.to_string())
            .expect("valid");
        let answer = recommend::recommend(&checked.needs).expect("an answer");
        assert_eq!(answer.method, Method::AccessToken);
        let page = render(&answer).into_string();
        assert!(page.contains("METHOD_ACCESS_TOKEN"), "{page}");
        for rule in &answer.rules {
            assert!(page.contains(rule), "rule {rule} shown");
        }
    }

    #[test]
    fn bad_answers_name_their_field() {
        let field = |f: RecommendForm| match f.check() {
            Err(Error::InvalidField { field, .. }) => field,
            _ => panic!("not refused"),
        };
        assert_eq!(field(form("", "server", "")), "environment");
        assert_eq!(field(form("test", "up", "")), "side");
        assert_eq!(field(form("test", "client", "fax")), "client_sdk");
        assert_eq!(field(form("test", "server", "video")), "client_sdk");
    }
}
