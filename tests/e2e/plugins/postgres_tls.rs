//! Issue 14, item 4: `storage-postgres` over TLS, against a throw-away
//! PostgreSQL cluster this test starts (`initdb` + `pg_ctl`, `ssl = on`, a
//! certificate from the test's own CA, only `hostssl` connections allowed),
//! never the machine's shared server.

use std::path::{Path, PathBuf};
use std::process::Command;

use twilio_broker_api::v1 as pb;

use super::libs::cargo_plugin;
use crate::harness::{Broker, Fixtures, Options, free_port};
use crate::oracles::in_ci;
use crate::pki::Pki;

/// The PostgreSQL server binaries (initdb, pg_ctl), if installed.
fn pg_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

/// A cluster of our own, stopped (immediately) on drop.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

/// Runs a server binary as the `postgres` user (PostgreSQL refuses root).
fn as_postgres(bin: &Path, program: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(program))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn chown_postgres(path: &Path) {
    let ok = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

impl Cluster {
    fn start(pki: &Pki) -> Option<Cluster> {
        let Some(bin) = pg_bin() else {
            assert!(
                !in_ci(),
                "PostgreSQL server binaries (initdb) are missing; CI must install them"
            );
            eprintln!("\n!!!!!!!! SKIPPED: no /usr/lib/postgresql/*/bin/initdb !!!!!!!!\n");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let data = dir.path().join("pgdata");
        std::fs::create_dir(&data).unwrap();
        chown_postgres(&data);
        let data_str = data.to_str().unwrap();
        as_postgres(
            &bin,
            "initdb",
            &["-D", data_str, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        std::fs::copy(&pki.server_cert, data.join("server.crt")).unwrap();
        std::fs::copy(&pki.server_key, data.join("server.key")).unwrap();
        std::fs::set_permissions(
            data.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let port = free_port();
        let sockets = dir.path().join("sockets");
        std::fs::create_dir(&sockets).unwrap();
        chown_postgres(&sockets);
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        conf.push_str(&format!(
            "\nssl = on\nport = {port}\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\nfsync = off\n",
            sockets.display()
        ));
        std::fs::write(data.join("postgresql.conf"), conf).unwrap();
        // TCP only over TLS: a plaintext client finds no pg_hba entry.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        chown_postgres(&data);
        let log = dir.path().join("pg.log");
        std::fs::write(&log, "").unwrap();
        chown_postgres(&log);
        let started = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("pg_ctl"))
            .args(["-D", data_str, "-l", log.to_str().unwrap(), "-w", "start"])
            .output()
            .unwrap();
        assert!(
            started.status.success(),
            "pg_ctl start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Some(Cluster {
            bin,
            data,
            port,
            _dir: dir,
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}

fn options(dir: &Path, port: u16, tls: &str) -> Options {
    // Each broker has its own master key: its own schema and state file.
    let run = rand::random::<u32>();
    let path = dir.join(format!("broker-{run}.toml"));
    let config = format!(
        "[[plugins]]\nkind = \"storage\"\npath = {:?}\nconfig = {{ url = \"host=127.0.0.1 port={port} user=postgres dbname=postgres\", schema = \"tb_tls_{run}\"{tls} }}\n",
        cargo_plugin("twilio_broker_storage_postgres")
            .display()
            .to_string(),
    );
    std::fs::write(&path, config).unwrap();
    Options {
        args: vec![
            "--config".into(),
            path.display().to_string(),
            "--state-file".into(),
            dir.join(format!("state-{run}")).display().to_string(),
        ],
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_verified_tls_and_plaintext_or_a_wrong_ca_is_refused() {
    let pki = Pki::new();
    let Some(cluster) = Cluster::start(&pki) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = pki.ca_cert.display().to_string();
    let other_ca = Pki::new();

    for (tls, expected) in [
        (String::new(), "no encryption"),
        (", sslmode = \"disable\"".to_owned(), "no encryption"),
        (
            format!(
                ", sslmode = \"verify-full\", sslrootcert = {:?}",
                other_ca.ca_cert.display().to_string()
            ),
            "certificate",
        ),
    ] {
        let started = std::time::Instant::now();
        let Err(failure) = Broker::try_start(options(dir.path(), cluster.port, &tls)) else {
            panic!("started with {tls:?}");
        };
        assert!(
            failure.log.contains(expected),
            "{tls:?}: {expected:?} not in\n{}",
            failure.log
        );
        eprintln!("refused {tls:?} after {:?}", started.elapsed());
    }

    for mode in ["require", "verify-ca", "verify-full"] {
        let tls = format!(", sslmode = \"{mode}\", sslrootcert = {ca:?}");
        let broker = Broker::start(options(dir.path(), cluster.port, &tls));
        let f = Fixtures::new();
        let name = format!("over-{mode}");
        broker
            .admin()
            .await
            .put_credential(f.test(&name))
            .await
            .unwrap();
        broker
            .admin()
            .await
            .get_credential(pb::GetCredentialRequest { name })
            .await
            .unwrap();
    }
}
