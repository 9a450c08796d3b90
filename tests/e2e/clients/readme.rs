//! The README's client section, followed line by line: every fenced snippet
//! between `## Clients` and the next section is run against a real broker
//! on a Unix socket (with a caller policy) and the Twilio stand-in. Only
//! placeholders change (`/run/twilio-broker/broker.sock`, `AC...`, `OQ...`,
//! `"..."` values); the Python and Node snippets get a prelude that points
//! `https://api.twilio.com` at the stand-in. A snippet this test does not
//! know how to run fails it, so new snippets come with a runner.

use std::path::{Path, PathBuf};
use std::process::Command;

use twilio_broker_api::v1 as pb;

use super::packages::root;
use super::{OAUTH, standin};
use crate::harness::{Broker, Fixtures, Options};
use crate::oracles;

/// The fenced blocks of the README's `## Clients` section: (language, code).
fn client_snippets() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("\n## Clients\n")
        .expect("README has ## Clients");
    let rest = &readme[start + 1..];
    let section = &rest[..rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3)];
    let mut snippets = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let mut code = String::new();
            for line in lines.by_ref() {
                if line.starts_with("```") {
                    break;
                }
                code.push_str(line);
                code.push('\n');
            }
            snippets.push((lang.trim().to_owned(), code));
        }
    }
    snippets
}

/// Runs `command`; panics with its output unless it succeeds; its stdout.
fn output(command: &mut Command, what: &str) -> String {
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "README snippet ({what}) failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

const PYTHON_PRELUDE: &str = r#"
import twilio.http.async_http_client as _async_http
import twilio.http.http_client as _http
_STANDIN = "@STANDIN@"
_sync_request = _http.TwilioHttpClient.request
def _to_standin(self, method, url, *args, **kwargs):
    return _sync_request(self, method, url.replace("https://api.twilio.com", _STANDIN), *args, **kwargs)
_http.TwilioHttpClient.request = _to_standin
_async_request = _async_http.AsyncTwilioHttpClient.request
async def _to_standin_async(self, method, url, *args, **kwargs):
    return await _async_request(self, method, url.replace("https://api.twilio.com", _STANDIN), *args, **kwargs)
_async_http.AsyncTwilioHttpClient.request = _to_standin_async
"#;

const NODE_PRELUDE: &str = r#"
const prelude = require('twilio');
const preludeRequest = prelude.RequestClient.prototype.request;
prelude.RequestClient.prototype.request = function toStandin(opts) {
  return preludeRequest.call(this, { ...opts, uri: opts.uri.replace('https://api.twilio.com', '@STANDIN@') });
};
"#;

/// Checks a snippet's `print(message.sid, broker_calls)` line.
fn assert_sent(stdout: &str, what: &str) {
    let mut words = stdout.split_whitespace();
    let sid = words.next().unwrap_or_default();
    assert!(
        sid.starts_with("SM") && words.next() == Some("1"),
        "{what}: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_readme_client_snippet_runs_as_written() {
    let (Some(_), Some(grpcurl), Some(_)) = (
        oracles::node_modules(),
        oracles::tool("grpcurl"),
        oracles::tool("go"),
    ) else {
        return;
    };
    let snippets = client_snippets();
    assert_eq!(snippets.len(), 6, "{snippets:#?}");

    // A production-like broker on a Unix socket; this uid is the operator.
    let f = Fixtures::new();
    let standin = standin(&f).await;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("broker.sock");
    let uid = output(Command::new("id").arg("-u"), "id -u");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[[rule]]\ncallers = [\"uid:{}\"]\nadmin = true\n",
            uid.trim()
        ),
    )
    .unwrap();
    let _broker = Broker::start(Options {
        args: vec![
            "--listen".into(),
            format!("unix:{}", socket.display()),
            "--policy".into(),
            policy.display().to_string(),
        ],
        env: vec![("TWILIO_BROKER_OAUTH_TOKEN_URL".into(), standin.token_url())],
        dev: false,
        ..Options::default()
    });
    let unix = format!("unix:{}", socket.display());
    let admin = twilio_broker_client::Client::connect(&unix).await.unwrap();
    admin.put_credential(f.oauth_client(OAUTH)).await.unwrap();
    admin
        .put_credential(f.api_key("prod-video-key", pb::KeyType::Standard))
        .await
        .unwrap();
    admin
        .put_credential(f.auth_token("prod-webhooks"))
        .await
        .unwrap();

    // A fresh folder holding a copy of client/, with its own HOME.
    let work = dir.path().join("work");
    let home = work.join("home");
    std::fs::create_dir_all(&home).unwrap();
    output(
        Command::new("cp")
            .arg("-r")
            .arg(root().join("client"))
            .arg(&work),
        "cp",
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let place = |code: &str| {
        code.replace("/run/twilio-broker/broker.sock", socket.to_str().unwrap())
            .replace("\"AC...\"", &format!("\"{}\"", f.account_sid))
            .replace("'AC...'", &format!("'{}'", f.account_sid))
            .replace("\"OQ...\"", &format!("\"{}\"", f.client_id))
            .replace(
                "\"client_secret\":\"...\"",
                &format!("\"client_secret\":\"{}\"", f.client_secret),
            )
            .replace(
                "\"url\":\"https://...\"",
                "\"url\":\"https://example.com/hook\"",
            )
            .replace("\"signature\":\"...\"", "\"signature\":\"AAAA\"")
            .replace("@STANDIN@", &standin.url())
    };
    let sh = |code: &str, what: &str| {
        let mut command = Command::new("bash");
        command
            .args(["-euo", "pipefail", "-c", &place(code)])
            .current_dir(&work)
            .env("HOME", &home)
            .env("GOCACHE", target.join("test-deps/go-cache"))
            .env("GOPROXY", "off")
            .env("GOFLAGS", "");
        output(&mut command, what)
    };

    let by = |pick: &dyn Fn(&str, &str) -> bool| -> String {
        let found: Vec<&(String, String)> = snippets.iter().filter(|(l, c)| pick(l, c)).collect();
        assert_eq!(found.len(), 1, "{found:#?}");
        found[0].1.clone()
    };
    let install = by(&|l, c| l == "sh" && c.contains("pip install"));
    let python_sync = by(&|l, c| l == "python" && !c.contains("asyncio"));
    let python_async = by(&|l, c| l == "python" && c.contains("asyncio"));
    let node = by(&|l, _| l == "js");
    let go = by(&|l, c| l == "sh" && c.contains("go run"));
    let recipes = by(&|l, c| l == "sh" && c.contains("grpcurl"));

    // Installing, as written.
    sh(&install, "install");
    let python = home.join(".venvs/broker/bin/python");
    assert!(python.exists());
    assert!(work.join("node_modules/twilio-broker/index.d.ts").exists());

    let run_file = |program: &Path, name: &str, code: String, what: &str| {
        let file = work.join(name);
        std::fs::write(&file, place(&code)).unwrap();
        output(
            Command::new(program)
                .arg(&file)
                .current_dir(&work)
                .env("HOME", &home),
            what,
        )
    };
    let out = run_file(
        &python,
        "readme_sync.py",
        format!("{PYTHON_PRELUDE}\n{python_sync}"),
        "python",
    );
    assert_sent(&out, "python");
    let out = run_file(
        &python,
        "readme_async.py",
        format!("{PYTHON_PRELUDE}\n{python_async}"),
        "python asyncio",
    );
    assert_sent(&out, "python asyncio");
    let out = run_file(
        Path::new("node"),
        "readme.js",
        format!("{NODE_PRELUDE}\n{node}"),
        "node",
    );
    assert_sent(&out, "node");
    assert_eq!(standin.messages().len(), 3);
    assert_eq!(standin.stats().rest_rejected, 0);

    let out = sh(&go, "go");
    let reply: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reply["account_sid"], f.account_sid.as_str(), "{out}");

    let grpcurl_dir = grpcurl.parent().unwrap().display().to_string();
    let recipes = format!("export PATH=\"{grpcurl_dir}:$PATH\"\n{recipes}");
    let out = sh(&recipes, "grpcurl recipes");
    for expected in [
        "twilio.broker.v1.Admin",
        "min_ttl_seconds",
        "SERVING",
        "CREDENTIAL_KIND_OAUTH_CLIENT",
        "\"accessToken\"",
        "\"jti\"",
        "\"reason\"",
        "\"method\"",
        "\"rules\": 1",
    ] {
        assert!(out.contains(expected), "{expected} not in:\n{out}");
    }
    // The last recipe deleted prod-oauth.
    let names: Vec<String> = admin
        .list_credentials()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["prod-video-key", "prod-webhooks"]);
}
