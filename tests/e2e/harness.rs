//! Starts the real daemon for a test: temp data dir, random master key,
//! port 0, logs captured at TRACE so leak scans see everything.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use base64::Engine as _;
use tonic::transport::Channel;
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_client::AdminClient;
use twilio_broker_api::v1::broker_client::BrokerClient;

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_twilio-broker");

/// A random string that stands in for a secret; unique per run.
pub fn random_secret(prefix: &str) -> String {
    random_hex(prefix)
}

/// A random SID with the given prefix (`AC`, `SK`, ... and 32 hex digits).
pub fn random_sid(prefix: &str) -> String {
    random_hex(prefix)
}

fn random_hex(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// A fresh base64 master key.
pub fn random_master_key() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// How to start a broker.
#[derive(Clone)]
pub struct Options {
    /// Data directory; a fresh temp dir when None.
    pub data_dir: Option<PathBuf>,
    /// Master key (base64); random when None.
    pub master_key: Option<String>,
    /// Extra command-line arguments after `serve`.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Keeps a temporary data dir alive while any broker uses it.
    pub keep: Option<Arc<tempfile::TempDir>>,
    /// Pass `--dev` (allow-all policy unless `--policy` is given). Default true.
    pub dev: bool,
    /// Run the daemon as this uid (and gid); the test runs as root then.
    pub run_as: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            data_dir: None,
            master_key: Some(random_master_key()),
            args: Vec::new(),
            env: Vec::new(),
            keep: None,
            dev: true,
            run_as: None,
        }
    }
}

/// A running daemon.
pub struct Broker {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Everything the daemon wrote to stderr so far.
    pub log: Arc<Mutex<String>>,
    /// The data directory in use.
    pub data_dir: PathBuf,
    /// The master key in use.
    pub master_key: Option<String>,
    _temp: Option<Arc<tempfile::TempDir>>,
}

/// Output of a start that did not get to listening.
pub struct StartFailure {
    pub status: Option<std::process::ExitStatus>,
    pub log: String,
}

impl Broker {
    /// Starts a broker and waits until it listens. Panics with the log if it does not.
    pub fn start(options: Options) -> Broker {
        match Self::try_start(options) {
            Ok(broker) => broker,
            Err(failure) => panic!(
                "broker did not start ({:?}):\n{}",
                failure.status, failure.log
            ),
        }
    }

    /// Starts a broker; on failure returns its exit status and log.
    pub fn try_start(options: Options) -> Result<Broker, StartFailure> {
        let (data_dir, temp) = match options.data_dir.clone() {
            Some(dir) => (dir, options.keep.clone()),
            None => {
                let temp = Arc::new(tempfile::tempdir().unwrap());
                (temp.path().join("data"), Some(temp))
            }
        };
        let mut command = Command::new(BIN);
        command.arg("serve");
        if options.dev && !options.args.iter().any(|a| a == "--dev") {
            command.arg("--dev");
        }
        if !options.args.iter().any(|a| a == "--listen") {
            command.arg("--listen").arg("127.0.0.1:0");
        }
        command
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&options.args)
            .env_remove("TWILIO_BROKER_MASTER_KEY")
            .env_remove("TWILIO_BROKER_MASTER_KEY_FILE")
            .env("RUST_LOG", "trace")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(key) = &options.master_key {
            command.env("TWILIO_BROKER_MASTER_KEY", key);
        }
        for (k, v) in &options.env {
            command.env(k, v);
        }
        if let Some(id) = options.run_as {
            use std::os::unix::process::CommandExt as _;
            command.uid(id).gid(id);
        }
        let mut child = command.spawn().expect("spawn twilio-broker");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut ready_tx = Some(ready_tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(at) = line.find("listening on ") {
                        let addr = line[at + "listening on ".len()..]
                            .split(|c: char| c.is_whitespace() || c == '"')
                            .next()
                            .unwrap_or_default()
                            .to_owned();
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(addr);
                        }
                    }
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => Ok(Broker {
                child,
                url: format!("http://{addr}"),
                addr,
                log,
                data_dir,
                master_key: options.master_key,
                _temp: temp,
            }),
            Err(_) => {
                let status = child.wait_timeout_or_kill();
                std::thread::sleep(Duration::from_millis(100));
                let log = log.lock().unwrap().clone();
                Err(StartFailure { status, log })
            }
        }
    }

    /// Options that restart this broker on the same data dir and key.
    pub fn same_data(&self) -> Options {
        Options {
            data_dir: Some(self.data_dir.clone()),
            master_key: self.master_key.clone(),
            args: Vec::new(),
            env: Vec::new(),
            keep: self._temp.clone(),
            dev: true,
            run_as: None,
        }
    }

    /// A connected channel.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url.clone())
            .unwrap()
            .connect()
            .await
            .expect("connect to broker")
    }

    /// An Admin client.
    pub async fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel().await)
    }

    /// A Broker client.
    #[allow(dead_code)]
    pub async fn broker(&self) -> BrokerClient<Channel> {
        BrokerClient::new(self.channel().await)
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The captured log so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `kill -9`, at once.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM failed");
        self.child.wait().unwrap()
    }

    /// Runs the CLI against this broker with `stdin` as input.
    pub fn cli(&self, args: &[&str], stdin: &str) -> std::process::Output {
        run_cli(args, stdin, &[("TWILIO_BROKER_ADDR", &self.addr)])
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

trait WaitTimeout {
    fn wait_timeout_or_kill(&mut self) -> Option<std::process::ExitStatus>;
}

impl WaitTimeout for Child {
    fn wait_timeout_or_kill(&mut self) -> Option<std::process::ExitStatus> {
        for _ in 0..50 {
            if let Ok(Some(status)) = self.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.kill();
        self.wait().ok()
    }
}

/// Runs the `twilio-broker` binary with arguments, stdin and extra env.
pub fn run_cli(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> std::process::Output {
    use std::io::Write as _;
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn cli");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Every file under `dir`, read as bytes.
pub fn read_tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

/// True when `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Test credentials with random secrets, one of each kind.
pub struct Fixtures {
    pub account_sid: String,
    pub key_sid: String,
    pub client_id: String,
    pub api_secret: String,
    pub auth_token: String,
    pub client_secret: String,
}

impl Fixtures {
    pub fn new() -> Self {
        Fixtures {
            account_sid: random_sid("AC"),
            key_sid: random_sid("SK"),
            client_id: random_sid("OQ"),
            api_secret: random_secret("apisecret"),
            auth_token: random_secret(""),
            client_secret: random_secret("clientsecret"),
        }
    }

    /// Every secret, for leak scans.
    pub fn secrets(&self) -> Vec<&str> {
        vec![&self.api_secret, &self.auth_token, &self.client_secret]
    }

    pub fn api_key(&self, name: &str, key_type: pb::KeyType) -> pb::PutCredentialRequest {
        pb::PutCredentialRequest {
            manager: String::new(),
            name: name.into(),
            labels: Default::default(),
            credential: Some(pb::put_credential_request::Credential::ApiKey(
                pb::ApiKeyCredential {
                    account_sid: self.account_sid.clone(),
                    key_sid: self.key_sid.clone(),
                    secret: self.api_secret.clone(),
                    key_type: key_type.into(),
                },
            )),
        }
    }

    pub fn auth_token(&self, name: &str) -> pb::PutCredentialRequest {
        pb::PutCredentialRequest {
            manager: String::new(),
            name: name.into(),
            labels: Default::default(),
            credential: Some(pb::put_credential_request::Credential::AuthToken(
                pb::AuthTokenCredential {
                    account_sid: self.account_sid.clone(),
                    auth_token: self.auth_token.clone(),
                    ..Default::default()
                },
            )),
        }
    }

    pub fn oauth_client(&self, name: &str) -> pb::PutCredentialRequest {
        pb::PutCredentialRequest {
            manager: String::new(),
            name: name.into(),
            labels: Default::default(),
            credential: Some(pb::put_credential_request::Credential::OauthClient(
                pb::OAuthClientCredential {
                    account_sid: self.account_sid.clone(),
                    client_id: self.client_id.clone(),
                    client_secret: self.client_secret.clone(),
                },
            )),
        }
    }

    pub fn test(&self, name: &str) -> pb::PutCredentialRequest {
        pb::PutCredentialRequest {
            manager: String::new(),
            name: name.into(),
            labels: Default::default(),
            credential: Some(pb::put_credential_request::Credential::Test(
                pb::TestCredential {
                    account_sid: self.account_sid.clone(),
                    auth_token: self.auth_token.clone(),
                },
            )),
        }
    }
}

/// The uid of this test process (what the broker sees on its Unix socket).
#[allow(dead_code)]
pub fn uid() -> u32 {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A loopback port that was free a moment ago.
#[allow(dead_code)]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Prometheus page of a broker's `--metrics-listen 127.0.0.1:PORT`.
#[allow(dead_code)]
pub fn scrape_metrics(port: u16) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).unwrap();
    page
}

/// The broker's `google.rpc.ErrorInfo.reason` on `status` (e.g.
/// `MIN_TTL_UNREACHABLE`), if it carries one from the broker's domain:
/// what clients decide on, never the message text.
pub fn reason(status: &tonic::Status) -> Option<String> {
    use tonic_types::StatusExt as _;
    status
        .get_details_error_info()
        .filter(|info| info.domain == "twilio-broker")
        .map(|info| info.reason)
}

/// One `ErrorInfo.metadata` value on `status` (e.g. `field`, `credential`).
pub fn error_metadata(status: &tonic::Status, key: &str) -> Option<String> {
    use tonic_types::StatusExt as _;
    status
        .get_details_error_info()
        .and_then(|mut info| info.metadata.remove(key))
}

/// The `google.rpc.RetryInfo` delay on `status`, if any.
pub fn retry_after(status: &tonic::Status) -> Option<Duration> {
    use tonic_types::StatusExt as _;
    status
        .get_details_retry_info()
        .and_then(|retry| retry.retry_delay)
}

/// One refusal case of a table: what it tests, the request, the code, and
/// what the message must name (the field, for INVALID_ARGUMENT).
pub type Refusal<'a, R> = (&'a str, R, tonic::Code, &'a str);

/// Sends each case through `call` and checks the refusal: its code, an
/// ErrorInfo reason from the broker (for INVALID_ARGUMENT on a field, the
/// `field` metadata the message starts with), the needle in the message,
/// and none of `secrets` in it.
pub async fn check_refusals<R, F, Fut>(cases: Vec<Refusal<'_, R>>, secrets: &[&str], mut call: F)
where
    F: FnMut(R) -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    for (what, request, code, needle) in cases {
        let status = call(request).await.expect_err(what);
        assert_eq!(status.code(), code, "{what}: {status:?}");
        let why = reason(&status);
        assert!(why.is_some(), "{what}: no ErrorInfo in {status:?}");
        if why.as_deref() == Some("INVALID_FIELD") {
            let field = error_metadata(&status, "field").expect("field metadata");
            assert!(
                status.message().starts_with(&field),
                "{what}: field {field} vs {}",
                status.message()
            );
        }
        assert!(
            status.message().contains(needle),
            "{what}: {}",
            status.message()
        );
        for secret in secrets {
            assert!(
                !status.message().contains(secret),
                "{what}: secret in message"
            );
        }
    }
}
