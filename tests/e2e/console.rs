//! The operator console (issue 19) in a real headless Chromium, driven over
//! WebDriver (Debian's `chromium` and `chromium-driver`, installed by
//! `scripts/setup-test-deps`), against a real daemon with a policy,
//! credentials of every kind holding canary secrets, and an audit file.
//!
//! What a user sees: `twilio-broker console open` prints a link that logs
//! the browser in once; the credentials view pages and filters under the
//! policy; the Recommend form answers exactly as the RPC does; a caller
//! without the rule is refused and audited; no page has a console error or
//! a CSP violation; axe-core finds no serious accessibility violation; no
//! canary secret reaches a page, an asset, a cookie or browser storage.
//! Screenshots of each view (1280×800) go to `target/console-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use twilio_broker_api::v1 as pb;

use crate::harness::{Broker, Fixtures, Options, free_port, run_cli, uid};
use crate::oracles;

/// Bulk credentials beside the four named ones: more than one page of 100.
const BULK: usize = 120;

/// chromedriver, running until dropped.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver and chromium, or None (skipped loudly; a failure under CI).
fn driver() -> Option<(Driver, PathBuf)> {
    let chromedriver = oracles::tool("chromedriver")?;
    let chromium = oracles::tool("chromium")?;
    let port = free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let profile = tempfile::tempdir().unwrap();
    Some((
        Driver {
            child,
            port,
            _profile: profile,
        },
        chromium,
    ))
}

/// A fresh headless browser session at 1280×800, its console logged.
async fn browser(driver: &Driver, chromium: &Path) -> Client {
    let profile = driver._profile.path().join(format!("p{}", free_port()));
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,800",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    let webdriver = format!("http://127.0.0.1:{}", driver.port);
    let mut last = None;
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&webdriver)
            .await
        {
            Ok(client) => {
                // The window size includes the browser's own frame: grow it
                // until the page's viewport is exactly 1280×800.
                let frame = client
                    .execute(
                        "return [window.outerWidth - window.innerWidth, \
                         window.outerHeight - window.innerHeight];",
                        vec![],
                    )
                    .await
                    .unwrap();
                let extra = |i: usize| u32::try_from(frame[i].as_u64().unwrap_or(0)).unwrap();
                client
                    .set_window_size(1280 + extra(0), 800 + extra(1))
                    .await
                    .unwrap();
                return client;
            }
            Err(err) => last = Some(err.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no WebDriver session: {last:?}");
}

/// chromedriver's browser log since the last call (console messages,
/// CSP violations, failed loads).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// Console errors and CSP violations since the last call.
async fn problems(client: &Client) -> Vec<String> {
    let log = client.issue_cmd(BrowserLog).await.expect("browser log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|entry| {
            entry["level"] == "SEVERE"
                || entry["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Content Security Policy"))
        })
        .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Where screenshots go.
fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes the page as `name.png` and checks it is 1280×800.
async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 800), "{name}: the viewport");
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// axe-core's source (npm, pinned in tests/oracles/package.json).
fn axe_source() -> Option<String> {
    let mut places =
        vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/oracles/node_modules")];
    if let Some(dir) = std::env::var_os("TWILIO_BROKER_TEST_NODE_MODULES") {
        places.push(PathBuf::from(dir));
    }
    for dir in places {
        if let Ok(source) = std::fs::read_to_string(dir.join("axe-core/axe.min.js")) {
            return Some(source);
        }
    }
    assert!(
        !oracles::in_ci(),
        "axe-core is not installed; CI must run scripts/setup-test-deps"
    );
    eprintln!("\n!!!!!!!! SKIPPED: axe-core is not installed (scripts/setup-test-deps) !!!!!!!!\n");
    None
}

/// axe-core's serious and critical violations on the current page. The
/// source is injected by WebDriver, which the page's CSP does not govern.
async fn accessibility(client: &Client, axe: &str) -> Vec<String> {
    client.execute(axe, vec![]).await.expect("inject axe-core");
    let found = client
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document).then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, \
             help: v.help, nodes: v.nodes.length})))).catch(e => done([{id: 'axe-error', \
             impact: 'critical', help: String(e), nodes: 0}]));",
            vec![],
        )
        .await
        .expect("axe.run");
    found
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
        .map(Value::to_string)
        .collect()
}

async fn texts(client: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for element in client.find_all(Locator::Css(css)).await.unwrap() {
        out.push(element.text().await.unwrap());
    }
    out
}

async fn row_names(client: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for row in client
        .find_all(Locator::Css("#credentials tbody tr"))
        .await
        .unwrap()
    {
        out.push(row.attr("data-name").await.unwrap().unwrap_or_default());
    }
    out
}

/// `console open` through `addr`: the login link on stdout.
fn open_link(addr: &str) -> String {
    let out = run_cli(&["console", "open"], "", &[("TWILIO_BROKER_ADDR", addr)]);
    assert!(
        out.status.success(),
        "console open: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Everything the browser can read that is not the page: cookies it can
/// see, local and session storage.
async fn storage(client: &Client) -> String {
    let scripted = client
        .execute(
            "return JSON.stringify([document.cookie, Object.entries(localStorage), \
             Object.entries(sessionStorage)]);",
            vec![],
        )
        .await
        .unwrap();
    let cookies: Vec<String> = client
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect();
    format!("{scripted} {}", cookies.join(" "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let Some((driver, chromium)) = driver() else {
        return;
    };
    let Some(axe) = axe_source() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("broker.sock");
    let audit = dir.path().join("audit.jsonl");
    let policy = dir.path().join("policy.toml");
    let me = uid();
    // Local tools (anonymous, TCP loopback) are the operators; this uid
    // over the Unix socket may open the console and list prod-* only.
    std::fs::write(
        &policy,
        format!(
            "version = 2\n\
             [[rule]]\nname = \"operators\"\ncallers = [\"anonymous\"]\nadmin = true\n\
             [[rule]]\nname = \"viewer\"\ncallers = [\"uid:{me}\"]\nadmin = true\n\
             rpcs = [\"OpenConsole\", \"ListCredentials\"]\ncredentials = [\"app-prod-*\"]\n"
        ),
    )
    .unwrap();
    // The Twilio stand-in issues bearers for one OAuth client; the broker
    // holds a second one it does not know (rejected).
    let f = Fixtures::new();
    let standin = twilio_standin::start(twilio_standin::Config {
        clients: vec![twilio_standin::Client {
            client_id: f.client_id.clone(),
            client_secret: f.client_secret.clone(),
            account_sid: f.account_sid.clone(),
        }],
        ..twilio_standin::Config::default()
    })
    .await
    .unwrap();
    let console_port = free_port();
    let broker = Broker::start(Options {
        env: vec![("TWILIO_BROKER_OAUTH_TOKEN_URL".into(), standin.token_url())],
        dev: false,
        args: vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--listen".into(),
            format!("unix:{}", socket.display()),
            "--policy".into(),
            policy.display().to_string(),
            "--audit-file".into(),
            audit.display().to_string(),
            "--state-file".into(),
            dir.path().join("state").display().to_string(),
            "--console-listen".into(),
            format!("127.0.0.1:{console_port}"),
        ],
        ..Options::default()
    });
    let console = format!("http://127.0.0.1:{console_port}");

    // Credentials of every kind, each holding canary secrets.
    let mut admin = broker.admin().await;
    let labelled = |mut put: pb::PutCredentialRequest, env: &str| {
        put.labels.insert("environment".into(), env.into());
        put
    };
    for put in [
        labelled(f.auth_token("app-prod-auth"), "production"),
        labelled(f.api_key("app-prod-main", pb::KeyType::Main), "production"),
        labelled(f.oauth_client("app-prod-oauth"), "production"),
        labelled(f.test("app-test"), "test"),
    ] {
        admin.put_credential(put).await.unwrap();
    }
    let mut unknown = f.oauth_client("app-prod-unknown-client");
    if let Some(pb::put_credential_request::Credential::OauthClient(c)) = &mut unknown.credential {
        c.client_id = crate::harness::random_sid("OQ");
    }
    admin.put_credential(unknown).await.unwrap();
    for i in 0..BULK {
        let put = f.api_key(&format!("bulk-{i:03}"), pb::KeyType::Standard);
        admin.put_credential(put).await.unwrap();
    }
    let mut seen = String::new();
    // A bearer from the stand-in (and one refused), so the cache has both.
    let mut grpc = broker.broker().await;
    let bearer = grpc
        .get_bearer(pb::GetBearerRequest {
            credential: "app-prod-oauth".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let refused = grpc
        .get_bearer(pb::GetBearerRequest {
            credential: "app-prod-unknown-client".into(),
            ..Default::default()
        })
        .await;
    assert!(refused.is_err(), "the stand-in does not know that client");

    // The login link works once and lands on the credentials view.
    let link = open_link(&broker.addr);
    assert!(
        link.starts_with(&format!("{console}/login?token=")),
        "{link}"
    );
    let client = browser(&driver, &chromium).await;
    client.goto(&link).await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/credentials");
    let names = row_names(&client).await;
    assert_eq!(names.len(), 100, "a page of 100");
    assert_eq!(
        &names[..5],
        [
            "app-prod-auth",
            "app-prod-main",
            "app-prod-oauth",
            "app-prod-unknown-client",
            "app-test"
        ]
    );
    let source = client.source().await.unwrap();
    assert!(source.contains(&f.account_sid) && source.contains(&f.key_sid));
    assert!(
        source.contains(&f.client_id),
        "the OAuth client id is shown"
    );
    for id in [
        "auth-token-in-production",
        "main-key-where-narrower-would-do",
    ] {
        assert!(source.contains(id), "Recommend's review {id} is shown");
    }
    assert!(source.contains("Signed in as"), "who is logged in");
    seen.push_str(&source);
    screenshot(&client, "credentials").await;
    assert_eq!(problems(&client).await, Vec::<String>::new());
    assert_eq!(accessibility(&client, &axe).await, Vec::<String>::new());

    // The next page holds the rest, in order.
    client
        .find(Locator::Css("#next"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let rest = row_names(&client).await;
    assert_eq!(rest.len(), 5 + BULK - 100);
    assert_eq!(rest.last().map(String::as_str), Some("bulk-119"));
    assert!(
        client.find(Locator::Css("#next")).await.is_err(),
        "the last page"
    );
    seen.push_str(&client.source().await.unwrap());

    // Filters, through the form: a kind, then a label.
    client
        .goto(&format!("{console}/credentials"))
        .await
        .unwrap();
    let kind = client
        .find(Locator::Css("select[name=kind]"))
        .await
        .unwrap();
    kind.select_by_value("oauth_client").await.unwrap();
    client
        .find(Locator::Css("form.filters button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(
        row_names(&client).await,
        ["app-prod-oauth", "app-prod-unknown-client"]
    );
    client
        .goto(&format!(
            "{console}/credentials?label=environment%3Dproduction"
        ))
        .await
        .unwrap();
    assert_eq!(
        row_names(&client).await,
        ["app-prod-auth", "app-prod-main", "app-prod-oauth"]
    );
    seen.push_str(&client.source().await.unwrap());
    // A bad filter is refused with the field named.
    client
        .goto(&format!("{console}/credentials?kind=password"))
        .await
        .unwrap();
    let refusal = client.source().await.unwrap();
    assert!(
        refusal.contains("INVALID_ARGUMENT") && refusal.contains("kind must be"),
        "{refusal}"
    );
    let _ = problems(&client).await; // the 400 is logged as a failed load

    // The Recommend form answers exactly as the RPC does.
    client.goto(&format!("{console}/recommend")).await.unwrap();
    for (name, value) in [
        ("environment", "production"),
        ("side", "client"),
        ("client_sdk", "video"),
    ] {
        client
            .find(Locator::Css(&format!("select[name={name}]")))
            .await
            .unwrap()
            .select_by_value(value)
            .await
            .unwrap();
    }
    client
        .find(Locator::Css("#recommend button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let api = broker
        .broker()
        .await
        .recommend(pb::RecommendRequest {
            environment: pb::Environment::Production.into(),
            side: pb::Side::Client.into(),
            client_sdk: pb::ClientSdk::Video.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let method = texts(&client, "#method code").await;
    assert_eq!(method, [api.method().as_str_name()]);
    assert_eq!(texts(&client, "#reasons li").await, api.reasons);
    assert_eq!(texts(&client, "#warnings li").await, api.warnings);
    assert_eq!(texts(&client, "#next-steps li").await, api.next_steps);
    let limits: Vec<String> = texts(&client, "#limits code").await;
    assert_eq!(
        limits,
        api.limits.iter().map(|l| l.id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(texts(&client, "#rules code").await, api.rules);
    seen.push_str(&client.source().await.unwrap());
    screenshot(&client, "recommend").await;
    assert_eq!(problems(&client).await, Vec::<String>::new());
    assert_eq!(accessibility(&client, &axe).await, Vec::<String>::new());

    // The bearer cache: the stand-in's token is cached (never shown), the
    // unknown client was rejected with Twilio's code.
    client.goto(&format!("{console}/bearer")).await.unwrap();
    let cached = texts(&client, "tr[data-name='app-prod-oauth'] td").await;
    assert_eq!(cached[1], "yes", "{cached:?}");
    let expires: u64 = cached[2].trim_end_matches(" s").parse().unwrap();
    assert!(expires > 60, "{cached:?}");
    assert_eq!(cached[4], "ok", "{cached:?}");
    let rejected = texts(&client, "tr[data-name='app-prod-unknown-client'] td").await;
    assert_eq!(rejected[1], "no", "{rejected:?}");
    assert!(rejected[4].starts_with("rejected: HTTP 4"), "{rejected:?}");
    seen.push_str(&client.source().await.unwrap());
    screenshot(&client, "bearer").await;
    assert_eq!(problems(&client).await, Vec::<String>::new());
    assert_eq!(accessibility(&client, &axe).await, Vec::<String>::new());

    // Health: the policy's rules and file, listeners, audit sink, storage.
    client.goto(&format!("{console}/health")).await.unwrap();
    let health = client.source().await.unwrap();
    for needle in [
        "operators",
        "viewer",
        "allow anonymous to call every RPC (Admin included)",
        &policy.display().to_string(),
        &format!("unix:{}", socket.display()),
        "sled at",
        env!("CARGO_PKG_VERSION"),
    ] {
        assert!(health.contains(needle), "health shows {needle}");
    }
    assert!(!texts(&client, "#audit-sinks tbody tr").await.is_empty());
    assert!(texts(&client, "#audit-state").await[0].starts_with("Recording"));
    seen.push_str(&health);
    screenshot(&client, "health").await;
    assert_eq!(problems(&client).await, Vec::<String>::new());
    assert_eq!(accessibility(&client, &axe).await, Vec::<String>::new());

    // Audit: recent events, and a call made now appears live.
    client.goto(&format!("{console}/audit")).await.unwrap();
    let first = texts(&client, "#audit-events tbody tr td:nth-child(2)").await;
    assert!(
        first.iter().any(|rpc| rpc == "ListCredentials"),
        "{first:?}"
    );
    let mut live = false;
    for _ in 0..100 {
        let table = client.find(Locator::Css("#audit-events")).await.unwrap();
        if table.attr("data-live").await.unwrap().as_deref() == Some("on") {
            live = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(live, "the live stream opened");
    grpc.recommend(pb::RecommendRequest {
        environment: pb::Environment::Test.into(),
        side: pb::Side::Server.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut appeared = Vec::new();
    for _ in 0..100 {
        appeared = texts(&client, "#audit-events tbody tr:first-child td").await;
        if appeared.get(1).map(String::as_str) == Some("Recommend") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        appeared.get(1).map(String::as_str),
        Some("Recommend"),
        "{appeared:?}"
    );
    assert_eq!(appeared.get(2).map(String::as_str), Some("anonymous"));
    seen.push_str(&client.source().await.unwrap());
    screenshot(&client, "audit").await;
    assert_eq!(problems(&client).await, Vec::<String>::new());
    assert_eq!(accessibility(&client, &axe).await, Vec::<String>::new());

    // Assets and storage hold no secret either.
    for asset in ["console.css", "console.js", "favicon.svg"] {
        client
            .goto(&format!("{console}/assets/{asset}"))
            .await
            .unwrap();
        seen.push_str(&client.source().await.unwrap());
    }
    client
        .goto(&format!("{console}/credentials"))
        .await
        .unwrap();
    let stored = storage(&client).await;
    let scripted = stored.split(" tb_console=").next().unwrap_or_default();
    assert!(
        !scripted.contains("tb_console"),
        "scripts cannot read the session cookie: {stored}"
    );
    let cookies = client.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == "tb_console")
        .expect("the session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(
        session.same_site().map(|s| s.to_string()).as_deref(),
        Some("Strict")
    );
    seen.push_str(&stored);

    // The detector works: an inline script is a CSP violation.
    client
        .execute(
            "const s = document.createElement('script'); s.textContent = 'window.x = 1';\
             document.head.appendChild(s);",
            vec![],
        )
        .await
        .unwrap();
    let violations = problems(&client).await;
    assert!(
        violations
            .iter()
            .any(|m| m.contains("Content Security Policy")),
        "an inline script is refused and reported: {violations:?}"
    );

    // A used link is refused.
    client.goto(&link).await.unwrap();
    let used = client.source().await.unwrap();
    assert!(used.contains("used or expired"), "{used}");

    // The viewer (this uid, over the Unix socket): only app-prod-*, and no
    // Recommend.
    let viewer_link = open_link(&format!("unix:{}", socket.display()));
    client.goto(&viewer_link).await.unwrap();
    assert_eq!(
        row_names(&client).await,
        [
            "app-prod-auth",
            "app-prod-main",
            "app-prod-oauth",
            "app-prod-unknown-client"
        ]
    );
    assert!(
        client
            .source()
            .await
            .unwrap()
            .contains(&format!("uid:{me}"))
    );
    client.goto(&format!("{console}/recommend")).await.unwrap();
    client
        .find(Locator::Css("#recommend button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The click returns before the answer's page has loaded: wait for it.
    let mut denied = String::new();
    for _ in 0..100 {
        denied = client.source().await.unwrap();
        if denied.contains("PERMISSION_DENIED") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        denied.contains("PERMISSION_DENIED") && denied.contains("may not call Recommend"),
        "{denied}"
    );
    screenshot(&client, "refused").await;
    seen.push_str(&denied);
    client.goto(&format!("{console}/health")).await.unwrap();
    let no_health = client.source().await.unwrap();
    assert!(
        no_health.contains("PERMISSION_DENIED") && no_health.contains("ConsoleHealth"),
        "{no_health}"
    );

    // A post without the session's CSRF token is refused before anything runs.
    let forged = client
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             fetch('/recommend', {method: 'POST', headers: {'content-type': \
             'application/x-www-form-urlencoded'}, body: 'csrf=forged&environment=test&side=server'})\
             .then(r => done(r.status));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(forged, json!(403));
    seen.push_str(&storage(&client).await);
    client.close().await.unwrap();

    // Every view was audited, the denial too; no token in the audit or log.
    let events: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &Value| e["rpc"].is_string())
        .collect();
    let has = |rpc: &str, caller: &str, decision: &str| {
        events
            .iter()
            .any(|e| e["rpc"] == rpc && e["caller"] == caller && e["decision"] == decision)
    };
    assert!(has("OpenConsole", "anonymous", "allow"));
    assert!(has("OpenConsole", &format!("uid:{me}"), "allow"));
    assert!(has("ListCredentials", "anonymous", "allow"));
    assert!(has("ListCredentials", &format!("uid:{me}"), "allow"));
    assert!(has("Recommend", "anonymous", "allow"));
    assert!(has("Recommend", &format!("uid:{me}"), "deny"));
    assert!(has("ConsoleBearerCache", "anonymous", "allow"));
    assert!(has("ConsoleHealth", "anonymous", "allow"));
    assert!(has("ConsoleHealth", &format!("uid:{me}"), "deny"));
    assert!(has("ConsoleAudit", "anonymous", "allow"));
    let audit_text = std::fs::read_to_string(&audit).unwrap();
    let log = broker.log_text();
    for used_link in [&link, &viewer_link] {
        let token = used_link.split_once("token=").unwrap().1;
        assert!(!audit_text.contains(token), "a login token in the audit");
        assert!(!log.contains(token), "a login token in the log");
    }

    // No canary secret or token anywhere the browser was.
    for secret in f.secrets() {
        assert!(!seen.contains(secret), "a secret reached the browser");
    }
    assert!(
        !seen.contains(&bearer.access_token),
        "a bearer reached the browser"
    );
}

/// Without `--console-listen`, `console open` says how to turn it on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_open_on_a_broker_without_a_console() {
    let broker = Broker::start(Options::default());
    let out = broker.cli(&["console", "open"], "");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("CONSOLE_OFF") && stderr.contains("--console-listen"),
        "{stderr}"
    );
}

/// The console refuses to listen off loopback (it is plaintext HTTP).
#[test]
fn the_console_listens_on_loopback_only() {
    let failure = match Broker::try_start(Options {
        args: vec!["--console-listen".into(), "0.0.0.0:0".into()],
        ..Options::default()
    }) {
        Ok(_) => panic!("started with a console on 0.0.0.0"),
        Err(failure) => failure,
    };
    assert!(failure.log.contains("loopback only"), "{}", failure.log);
}

/// Raw HTTP: the headers every response carries, and no view without a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_sessions_over_plain_http() {
    let port = free_port();
    let broker = Broker::start(Options {
        args: vec!["--console-listen".into(), format!("127.0.0.1:{port}")],
        ..Options::default()
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    for path in [
        "/credentials",
        "/recommend",
        "/assets/console.js",
        "/nowhere",
    ] {
        let response = http.get(format!("{base}{path}")).send().await.unwrap();
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(response.headers()["referrer-policy"], "no-referrer");
        if path != "/assets/console.js" {
            assert_ne!(response.status(), 200, "{path} without a session");
        }
    }
    let link = open_link(&broker.addr);
    let login = http.get(&link).send().await.unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = http
        .get(format!("{base}/credentials"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let timing = page.headers()["server-timing"].to_str().unwrap().to_owned();
    let ms: f64 = timing.strip_prefix("app;dur=").unwrap().parse().unwrap();
    assert!(ms > 0.0, "{timing}");
    let logout = http
        .post(format!("{base}/logout"))
        .header("cookie", &session)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 403, "logout needs the CSRF token");
}
