//! Start-up rules and durability: acknowledged writes survive `kill -9`,
//! a wrong or missing master key stops start-up, rekey switches keys.

use twilio_broker_api::v1 as pb;

use crate::harness::{Broker, Fixtures, Options, random_master_key, run_cli};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let f = Fixtures::new();
    let mut broker = Broker::start(Options::default());
    for cycle in 0..5 {
        let mut admin = broker.admin().await;
        let name = format!("cred-{cycle}");
        admin.put_credential(f.oauth_client(&name)).await.unwrap();
        if cycle > 0 {
            let previous = format!("cred-{}", cycle - 1);
            admin
                .delete_credential(pb::DeleteCredentialRequest { name: previous })
                .await
                .unwrap();
        }
        let options = broker.same_data();
        broker.kill9();
        broker = Broker::start(options);
        let mut admin = broker.admin().await;
        let names: Vec<_> = admin
            .list_credentials(pb::ListCredentialsRequest {})
            .await
            .unwrap()
            .into_inner()
            .credentials
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, [name], "cycle {cycle}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_master_key_fails_fast_and_says_so() {
    let f = Fixtures::new();
    let mut broker = Broker::start(Options::default());
    broker
        .admin()
        .await
        .put_credential(f.auth_token("t"))
        .await
        .unwrap();
    let mut options = broker.same_data();
    broker.terminate();
    options.master_key = Some(random_master_key());
    let Err(failure) = Broker::try_start(options) else {
        panic!("started with the wrong key");
    };
    assert!(matches!(failure.status, Some(s) if !s.success()));
    assert!(
        failure.log.contains("master key does not match"),
        "{}",
        failure.log
    );
}

#[test]
fn missing_or_malformed_master_key_is_a_start_up_error() {
    let missing = Broker::try_start(Options {
        master_key: None,
        dev: false,
        ..Options::default()
    });
    let Err(failure) = missing else {
        panic!("started without a key")
    };
    assert!(failure.log.contains("no master key"), "{}", failure.log);

    let malformed = Broker::try_start(Options {
        master_key: Some("dG9vIHNob3J0".into()),
        ..Options::default()
    });
    let Err(failure) = malformed else {
        panic!("started with a short key")
    };
    assert!(
        failure.log.contains("not base64 of exactly 32 bytes"),
        "{}",
        failure.log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_with_key_and_data_dir_persists_like_production() {
    let f = Fixtures::new();
    let options = Options {
        args: vec!["--dev".into()],
        ..Options::default()
    };
    let mut broker = Broker::start(options.clone());
    assert!(broker.log_text().contains("DEV MODE"));
    broker
        .admin()
        .await
        .put_credential(f.test("t"))
        .await
        .unwrap();
    let mut again = broker.same_data();
    again.args = options.args.clone();
    broker.terminate();
    let broker = Broker::start(again);
    let found = broker
        .admin()
        .await
        .get_credential(pb::GetCredentialRequest { name: "t".into() })
        .await;
    assert!(found.is_ok());
}

#[test]
fn dev_without_key_or_data_dir_runs_throw_away() {
    use std::io::{BufRead as _, BufReader};
    let mut child = std::process::Command::new(crate::harness::BIN)
        .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
        .env_remove("TWILIO_BROKER_MASTER_KEY")
        .env_remove("TWILIO_BROKER_MASTER_KEY_FILE")
        .env_remove("TWILIO_BROKER_DATA_DIR")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("listening on") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(log.contains("throw-away key"), "{log}");
    assert!(log.contains("throw-away store"), "{log}");
}

#[test]
fn plaintext_off_loopback_and_unknown_config_keys_are_refused() {
    let off_loopback = Broker::try_start(Options {
        args: vec!["--listen".into(), "0.0.0.0:0".into()],
        dev: false,
        ..Options::default()
    });
    let Err(failure) = off_loopback else {
        panic!("served plaintext on 0.0.0.0")
    };
    assert!(failure.log.contains("only loopback"), "{}", failure.log);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nlisten_adress = \"typo\"\n",
    )
    .unwrap();
    let typo = Broker::try_start(Options {
        args: vec!["--config".into(), config.display().to_string()],
        ..Options::default()
    });
    let Err(failure) = typo else {
        panic!("accepted an unknown key")
    };
    assert!(failure.log.contains("listen_adress"), "{}", failure.log);
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut broker = Broker::start(Options::default());
    let status = broker.terminate();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekey_reseals_under_a_new_key() {
    let f = Fixtures::new();
    let mut broker = Broker::start(Options::default());
    broker
        .admin()
        .await
        .put_credential(f.api_key("k", pb::KeyType::Standard))
        .await
        .unwrap();
    let options = broker.same_data();
    broker.terminate();

    let dir = tempfile::tempdir().unwrap();
    let new_key = random_master_key();
    let new_key_file = dir.path().join("new.key");
    std::fs::write(&new_key_file, &new_key).unwrap();
    std::fs::set_permissions(
        &new_key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let old_key = options.master_key.clone().unwrap();
    let data_dir = options.data_dir.clone().unwrap();
    let out = run_cli(
        &[
            "rekey",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--new-key-file",
            new_key_file.to_str().unwrap(),
        ],
        "",
        &[("TWILIO_BROKER_MASTER_KEY", &old_key)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("re-sealed 1 credential"));

    let Err(_) = Broker::try_start(options.clone()) else {
        panic!("old key still opens")
    };
    let broker = Broker::start(Options {
        master_key: Some(new_key),
        ..options
    });
    let found = broker
        .admin()
        .await
        .get_credential(pb::GetCredentialRequest { name: "k".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.credential.unwrap().key_sid, f.key_sid);
}
