//! The real PostgreSQL and NATS servers the plugin tests use, with the
//! loud-skip rule: absent on a laptop, the test skips and says so; under
//! `CI=true` it fails.
//!
//! PostgreSQL: TWILIO_BROKER_TEST_POSTGRES (default
//! `host=127.0.0.1 port=5432 user=postgres dbname=test`).
//! NATS: TWILIO_BROKER_TEST_NATS_ADDR (default `127.0.0.1:4222`).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use crate::oracles::in_ci;

fn skip(what: &str, why: &str) {
    assert!(
        !in_ci(),
        "{what} is not reachable ({why}); CI must start it (see .ci/run)"
    );
    eprintln!("\n!!!!!!!! SKIPPED: {what} is not reachable ({why}) !!!!!!!!\n");
}

/// A name unique to this test run, usable as a SQL identifier or stream name.
pub fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 6];
    rand::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// The PostgreSQL connection string for tests.
pub fn postgres_url() -> String {
    std::env::var("TWILIO_BROKER_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

/// A schema for one test, dropped (with everything in it) on drop.
pub struct PgSchema {
    /// The schema's name.
    pub name: String,
    client: tokio_postgres::Client,
}

impl PgSchema {
    /// A fresh schema name, or `None` (after a loud skip) without PostgreSQL.
    pub async fn new() -> Option<PgSchema> {
        let (client, connection) =
            match tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls).await {
                Ok(pair) => pair,
                Err(err) => {
                    skip("PostgreSQL", &err.to_string());
                    return None;
                }
            };
        tokio::spawn(connection);
        Some(PgSchema {
            name: unique("tb_e2e_"),
            client,
        })
    }

    /// Every stored value, for leak scans.
    pub async fn values(&self) -> Vec<(String, Vec<u8>)> {
        let rows = self
            .client
            .query(
                &format!("SELECT key, value FROM {}.records", self.name),
                &[],
            )
            .await
            .unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    }

    /// Writes `value` into the row at `key` with a fresh version, as a
    /// restored or copied row would be (the notification trigger fires).
    pub async fn overwrite(&self, key: &str, value: &[u8]) {
        let updated = self
            .client
            .execute(
                &format!(
                    "UPDATE {0}.records SET value = $2, version = nextval('{0}.record_versions') \
                     WHERE key = $1",
                    self.name
                ),
                &[&key, &value],
            )
            .await
            .unwrap();
        assert_eq!(updated, 1, "no row at {key}");
    }

    /// The plugin config for this schema, as TOML inline table text.
    pub fn plugin_config(&self) -> String {
        format!("{{ url = {:?}, schema = {:?} }}", postgres_url(), self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // The client's connection task lives on the test's runtime, which
        // may be shutting down: drop synchronously with a fresh connection.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let (client, connection) =
                    tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
    }
}

/// The NATS address for tests.
pub fn nats_addr() -> String {
    std::env::var("TWILIO_BROKER_TEST_NATS_ADDR").unwrap_or_else(|_| "127.0.0.1:4222".into())
}

/// Sends raw NATS protocol lines and waits for the server's PONG.
fn nats_send(lines: &str) -> Result<(), String> {
    let addr = nats_addr();
    let stream = TcpStream::connect_timeout(
        &addr.parse().map_err(|e| format!("{addr}: {e}"))?,
        Duration::from_secs(2),
    )
    .map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    writer
        .write_all(format!("CONNECT {{\"verbose\":false}}\r\n{lines}PING\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    for line in BufReader::new(stream).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if line.starts_with("PONG") {
            return Ok(());
        }
        if line.starts_with("-ERR") {
            return Err(line);
        }
    }
    Err("connection closed before PONG".into())
}

/// True when NATS answers; otherwise a loud skip.
pub fn nats_available() -> bool {
    match nats_send("") {
        Ok(()) => true,
        Err(why) => {
            skip("NATS", &why);
            false
        }
    }
}

/// Deletes a JetStream stream (best effort, for clean-up).
pub fn delete_stream(name: &str) {
    let _ = nats_send(&format!("PUB $JS.API.STREAM.DELETE.{name} 0\r\n\r\n"));
}
