//! Issue 17, the systemd units and config the .deb ships: the socket unit
//! verifies beside the service unit, passes exactly the listeners the
//! packaged config names (a passed socket no listener names stops
//! start-up), and the packaged config starts this broker.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::harness::{Broker, Options};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(deploy(file)).unwrap()
}

/// `KEY=value` lines of a unit file with that key, in order.
fn values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_owned())
        .collect()
}

#[test]
fn the_socket_unit_verifies_beside_the_service_unit() {
    let Some(analyze) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze is missing under CI"
        );
        eprintln!("SKIPPED the_socket_unit_verifies_beside_the_service_unit: no systemd-analyze");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for unit in ["twilio-broker.service", "twilio-broker.socket"] {
        let local = read(unit).replace(
            "/usr/bin/twilio-broker",
            env!("CARGO_BIN_EXE_twilio-broker"),
        );
        std::fs::write(dir.path().join(unit), local).unwrap();
    }
    let out = std::process::Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(dir.path().join("twilio-broker.socket"))
        .arg(dir.path().join("twilio-broker.service"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn the_socket_unit_passes_exactly_the_packaged_configs_listeners() {
    let socket = read("twilio-broker.socket");
    let passed: BTreeSet<String> = values(&socket, "ListenStream")
        .into_iter()
        .map(|l| {
            if l.starts_with('/') {
                format!("unix:{l}")
            } else {
                l
            }
        })
        .collect();
    let config: toml::Table = read("twilio-broker.toml").parse().unwrap();
    let named: BTreeSet<String> = config["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["address"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(passed, named, "keep the socket unit and the config equal");
    assert_eq!(values(&socket, "Service"), ["twilio-broker.service"]);
    assert_eq!(values(&socket, "SocketUser"), ["twilio-broker"]);

    // The service takes its listeners from the config (a --listen flag would
    // replace them), and keeps the socket's directory across restarts.
    let service = read("twilio-broker.service");
    let exec = values(&service, "ExecStart").join(" ");
    assert!(
        exec.contains("--config /etc/twilio-broker/twilio-broker.toml")
            && !exec.contains("--listen"),
        "{exec}"
    );
    assert_eq!(values(&service, "RuntimeDirectoryPreserve"), ["yes"]);
    for path in ["policy", "data_dir", "state_file"] {
        let value = config[path].as_str().unwrap();
        assert!(
            value.starts_with("/etc/twilio-broker/")
                || value.starts_with("/var/lib/twilio-broker/"),
            "{path} = {value}"
        );
    }
}

/// The packaged config is one this broker accepts (unknown keys are an
/// error): it starts with it, its paths pointed into a temp dir by flags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_packaged_config_starts_this_broker() {
    let dir = tempfile::tempdir().unwrap();
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policy.example.toml");
    let at = |name: &str| dir.path().join(name).display().to_string();
    let broker = Broker::start(Options {
        dev: false,
        args: vec![
            "--config".into(),
            deploy("twilio-broker.toml").display().to_string(),
            "--policy".into(),
            policy.display().to_string(),
            "--state-file".into(),
            at("data.state"),
            "--audit-file".into(),
            at("audit.jsonl"),
        ],
        ..Options::default()
    });
    let log = broker.log_text();
    assert!(log.contains("audit trail on"), "{log}");
    assert!(dir.path().join("audit.jsonl").exists());
}
