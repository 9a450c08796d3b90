//! Issue 14 (Trust III) around the process, end to end: the master key
//! leaves the daemon's environment block, the daemon refuses core dumps and
//! ptrace, a key file others may read is refused, and revoked client
//! certificates fail the handshake.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

use tonic::Code;
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_client::AdminClient;

use crate::callers::tls_channel;
use crate::harness::{Broker, Fixtures, Options, random_master_key, uid};
use crate::pki::Pki;

/// The uid the daemon runs as in this test: `nobody` when the test runs as
/// root (so that "not dumpable" shows as /proc/PID files owned by root).
const NOBODY: u32 = 65534;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_key_leaves_the_environment_and_the_daemon_is_not_dumpable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let key = random_master_key();
    let run_as = (uid() == 0).then_some(NOBODY);
    let broker = Broker::start(Options {
        data_dir: Some(dir.path().join("data")),
        master_key: Some(key.clone()),
        run_as,
        ..Options::default()
    });
    let pid = broker.pid();

    // The key still works: it was read before it was scrubbed.
    let fixtures = Fixtures::new();
    let mut admin = broker.admin().await;
    admin
        .put_credential(fixtures.api_key("k", pb::KeyType::Standard))
        .await
        .unwrap();

    let environ = std::fs::read(format!("/proc/{pid}/environ"));
    match &environ {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.contains(&key),
                "the master key is in /proc/{pid}/environ"
            );
            assert!(
                !text.contains("TWILIO_BROKER_MASTER_KEY="),
                "the variable is still in the environment block"
            );
            assert!(
                text.contains("RUST_LOG="),
                "read the wrong environment block: {text}"
            );
        }
        // Not root and not dumpable: only root may read it at all.
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied),
    }

    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");

    // A non-dumpable process's /proc files belong to root, not to its user.
    let owner = std::fs::metadata(format!("/proc/{pid}/environ"))
        .unwrap()
        .uid();
    let daemon_uid = run_as.unwrap_or_else(uid);
    assert_ne!(daemon_uid, 0, "the daemon must run as a non-root user here");
    assert_eq!(owner, 0, "the daemon (uid {daemon_uid}) is dumpable");
}

#[test]
fn a_master_key_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("master.key");
    std::fs::write(&file, random_master_key()).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let env = vec![(
        "TWILIO_BROKER_MASTER_KEY_FILE".to_owned(),
        file.display().to_string(),
    )];
    let failure = Broker::try_start(Options {
        master_key: None,
        env: env.clone(),
        data_dir: Some(dir.path().join("data")),
        ..Options::default()
    })
    .err()
    .expect("a readable key file is refused");
    assert!(
        failure.log.contains("chmod 600") && failure.log.contains("0644"),
        "{}",
        failure.log
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let broker = Broker::start(Options {
        master_key: None,
        env,
        data_dir: Some(dir.path().join("data")),
        ..Options::default()
    });
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_client_certificates_fail_the_handshake() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "version = 2\n[[rule]]\ncallers = [\"spiffe://test.example/*\"]\nadmin = true\n",
    )
    .unwrap();
    let mut args = pki.serve_args();
    args.extend([
        "--tls-crl".into(),
        pki.crl(&[7]).display().to_string(),
        "--policy".into(),
        policy.display().to_string(),
    ]);
    let broker = Broker::start(Options {
        args,
        dev: false,
        ..Options::default()
    });
    let list = |channel| async move {
        AdminClient::new(channel)
            .list_credentials(pb::ListCredentialsRequest::default())
            .await
            .err()
            .map_or(Code::Ok, |s| s.code())
    };
    let good = pki.client_with_serial("spiffe://test.example/ops", 8);
    assert_eq!(
        list(tls_channel(&broker.addr, &pki, Some(&good)).await).await,
        Code::Ok
    );
    let revoked = pki.client_with_serial("spiffe://test.example/ops", 7);
    let endpoint = tonic::transport::Endpoint::from_shared(format!("https://{}", broker.addr))
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(
                    std::fs::read(&pki.ca_cert).unwrap(),
                ))
                .domain_name("localhost")
                .identity(tonic::transport::Identity::from_pem(&revoked.0, &revoked.1)),
        )
        .unwrap()
        .connect_lazy();
    let code = list(endpoint).await;
    assert!(
        matches!(code, Code::Unavailable | Code::Cancelled | Code::Unknown),
        "a revoked certificate got an answer: {code:?}"
    );
    // The daemon logs the refusal on its own task: wait for the line.
    let logged = |log: &str| log.contains("TLS handshake failed") && log.contains("Revoked");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !logged(&broker.log_text()) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let log = broker.log_text();
    assert!(logged(&log), "{log}");
}

/// The resident pages of the readable, writable mappings of process `pid`
/// (heap, stacks, anonymous memory: where a secret in clear would sit), read
/// through /proc/PID/mem. Only pages /proc/PID/pagemap shows present or
/// swapped are read: the allocator reserves far more than it touches.
/// Reading another user's non-dumpable process needs CAP_SYS_PTRACE.
fn writable_memory(pid: u32) -> std::io::Result<Vec<Vec<u8>>> {
    use std::os::unix::fs::FileExt as _;
    const PAGE: u64 = 4096;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem"))?;
    let pagemap = std::fs::File::open(format!("/proc/{pid}/pagemap"))?;
    let mut runs = Vec::new();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !perms.starts_with("rw") {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let pages = usize::try_from((end - start) / PAGE).unwrap();
        let mut entries = vec![0u8; pages * 8];
        pagemap.read_exact_at(&mut entries, start / PAGE * 8)?;
        // Coalesce runs of pages that are present (bit 63) or swapped (62).
        let mut run_start = None;
        for page in 0..=pages {
            let resident = page < pages && {
                let entry = u64::from_le_bytes(entries[page * 8..page * 8 + 8].try_into().unwrap());
                entry & (3 << 62) != 0
            };
            match (resident, run_start) {
                (true, None) => run_start = Some(page),
                (false, Some(first)) => {
                    runs.push((start + first as u64 * PAGE, (page - first) as u64 * PAGE));
                    run_start = None;
                }
                _ => {}
            }
        }
    }
    let mut regions = Vec::new();
    for (address, len) in runs {
        let mut bytes = vec![0u8; usize::try_from(len).unwrap()];
        // A mapping can change between reading the page map and the pages.
        if mem.read_exact_at(&mut bytes, address).is_ok() {
            regions.push(bytes);
        }
    }
    Ok(regions)
}

fn in_memory(regions: &[Vec<u8>], needle: &str) -> bool {
    let finder = memchr::memmem::Finder::new(needle.as_bytes());
    regions.iter().any(|r| finder.find(r).is_some())
}

/// Issue 14, item 2: stored secrets stay sealed in memory until the moment
/// of use. A daemon that loaded credentials from its data directory holds
/// none of their secrets in clear anywhere in its writable memory (while
/// their names, which are not secret, are found by the same scan), and only
/// its keys are locked in RAM, so many credentials need no locked memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_secrets_stay_sealed_in_the_daemons_memory() {
    let writer = Broker::start(Options::default());
    let mut admin = writer.admin().await;
    let mut secrets = Vec::new();
    let mut names = Vec::new();
    for i in 0..30 {
        let f = Fixtures::new();
        let name = format!("memory-scan-{i}-{}", &f.key_sid[2..14]);
        let (put, secret) = match i % 3 {
            0 => (f.api_key(&name, pb::KeyType::Standard), &f.api_secret),
            1 => (f.auth_token(&name), &f.auth_token),
            _ => (f.oauth_client(&name), &f.client_secret),
        };
        admin.put_credential(put).await.unwrap();
        secrets.push(secret.clone());
        names.push(name);
    }
    let mut writer = writer;
    let options = writer.same_data();
    assert!(writer.terminate().success());

    let reader = Broker::start(options);
    let mut admin = reader.admin().await;
    let listed = admin
        .list_credentials(pb::ListCredentialsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.credentials.len(), names.len());

    let regions = match writable_memory(reader.pid()) {
        Ok(regions) => regions,
        Err(err) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "SKIPPED stored_secrets_stay_sealed_in_the_daemons_memory: cannot read the \
                 daemon's memory ({err}); run as root (CAP_SYS_PTRACE) to check it"
            );
            return;
        }
        Err(err) => panic!("cannot read the daemon's memory in CI: {err}"),
    };
    let total: usize = regions.iter().map(Vec::len).sum();
    assert!(total > 1 << 20, "read only {total} bytes of memory");
    // The scan finds what is there: the names are in the daemon's index.
    for name in &names {
        assert!(in_memory(&regions, name), "scan missed the name {name}");
    }
    let in_clear: Vec<&String> = secrets.iter().filter(|s| in_memory(&regions, s)).collect();
    assert!(
        in_clear.is_empty(),
        "{} of {} stored secrets are in clear in the daemon's memory",
        in_clear.len(),
        secrets.len()
    );

    // Only key material is locked: a few pages, however many credentials.
    let status = std::fs::read_to_string(format!("/proc/{}/status", reader.pid())).unwrap();
    let locked_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(locked_kb <= 64, "{locked_kb} kB locked in RAM");
}
