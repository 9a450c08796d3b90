//! A storage plugin keeping the broker's sealed records in PostgreSQL
//! (14 or later): the scale-out path, where several broker replicas share
//! one database.
//!
//! - One table `<schema>.records (key, value, version)`; versions come from
//!   one sequence, so a key never sees a version twice, and
//!   compare-and-swap is an `UPDATE ... WHERE version = $expected`.
//! - A statement trigger runs `pg_notify` on every write; each replica's
//!   listener turns that into a new change generation, and the broker
//!   re-reads at once (see `changes.rs`).
//! - The broker seals every value before it gets here: the table never holds
//!   a secret in clear.
//!
//! ```toml
//! [[plugins]]
//! kind = "storage"
//! path = "/usr/lib/twilio-broker/libtwilio_broker_storage_postgres.so"
//! config = { url = "host=db.internal user=broker dbname=broker", schema = "twilio_broker" }
//! ```

#![forbid(unsafe_code)]

mod changes;
mod pool;
mod settings;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use postgres::Client;
use twilio_broker_plugin_sdk::serde_json::Value;
use twilio_broker_plugin_sdk::{Cas, PluginError, Storage, StoragePlugin, Versioned};

use changes::Changes;
use pool::Pool;
pub use settings::Settings;

/// The statements of one schema, built once (the schema is a checked identifier).
struct Sql {
    get: String,
    put: String,
    delete: String,
    list: String,
    create: String,
    swap: String,
    version: String,
}

impl Sql {
    fn new(schema: &str) -> Self {
        let t = format!("{schema}.records");
        let next = format!("nextval('{schema}.record_versions')");
        Sql {
            get: format!("SELECT value, version FROM {t} WHERE key = $1"),
            put: format!(
                "INSERT INTO {t} (key, value, version) VALUES ($1, $2, {next}) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, version = EXCLUDED.version \
                 RETURNING version"
            ),
            delete: format!("DELETE FROM {t} WHERE key = $1"),
            list: format!(
                "SELECT key, value, version FROM {t} WHERE starts_with(key, $1) ORDER BY key"
            ),
            create: format!(
                "INSERT INTO {t} (key, value, version) VALUES ($1, $2, {next}) \
                 ON CONFLICT (key) DO NOTHING RETURNING version"
            ),
            swap: format!(
                "UPDATE {t} SET value = $2, version = {next} WHERE key = $1 AND version = $3 \
                 RETURNING version"
            ),
            version: format!("SELECT version FROM {t} WHERE key = $1"),
        }
    }

    /// Creates the schema objects if missing; serialised across replicas
    /// starting together by an advisory lock.
    fn setup(schema: &str, channel: &str) -> String {
        format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock(hashtext('twilio-broker schema setup'));
             CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE SEQUENCE IF NOT EXISTS {schema}.record_versions;
             CREATE TABLE IF NOT EXISTS {schema}.records (
                 key TEXT COLLATE \"C\" PRIMARY KEY,
                 value BYTEA NOT NULL,
                 version BIGINT NOT NULL CHECK (version > 0)
             );
             CREATE OR REPLACE FUNCTION {schema}.notify_records_changed() RETURNS trigger
                 LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('{channel}', ''); RETURN NULL; END $$;
             CREATE OR REPLACE TRIGGER records_changed
                 AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {schema}.records
                 FOR EACH STATEMENT EXECUTE FUNCTION {schema}.notify_records_changed();
             COMMIT;"
        )
    }
}

/// The PostgreSQL storage backend.
pub struct PgStorage {
    pool: Arc<Pool>,
    sql: Sql,
    changes: Arc<Changes>,
}

fn version_of(raw: i64) -> Result<u64, postgres::Error> {
    // The CHECK constraint keeps versions positive; a negative one cannot come back.
    Ok(u64::try_from(raw).unwrap_or(0))
}

fn as_i64(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

impl PgStorage {
    /// Connects, creates the schema objects if needed and starts listening.
    pub fn connect(settings: &Settings) -> Result<Self, PluginError> {
        let pool = Arc::new(Pool::new(
            settings.connect.clone(),
            settings.tls.clone(),
            settings.pool_size,
        ));
        let setup = Sql::setup(&settings.schema, &settings.channel());
        pool.run(|client| client.batch_execute(&setup))?;
        let changes = Changes::start(
            Arc::clone(&pool),
            settings.channel(),
            settings.connect_timeout,
        );
        Ok(PgStorage {
            pool,
            sql: Sql::new(&settings.schema),
            changes,
        })
    }

    fn current_version(&self, client: &mut Client, key: &str) -> Result<u64, postgres::Error> {
        match client.query_opt(&self.sql.version, &[&key])? {
            Some(row) => version_of(row.try_get(0)?),
            None => Ok(0),
        }
    }
}

impl Storage for PgStorage {
    fn get(&self, key: &str) -> Result<Option<Versioned>, PluginError> {
        self.pool.run(|client| {
            client
                .query_opt(&self.sql.get, &[&key])?
                .map(|row| {
                    Ok(Versioned {
                        value: row.try_get(0)?,
                        version: version_of(row.try_get(1)?)?,
                    })
                })
                .transpose()
        })
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<u64, PluginError> {
        self.pool.run(|client| {
            version_of(
                client
                    .query_one(&self.sql.put, &[&key, &value])?
                    .try_get(0)?,
            )
        })
    }

    fn delete(&self, key: &str) -> Result<bool, PluginError> {
        self.pool
            .run(|client| Ok(client.execute(&self.sql.delete, &[&key])? > 0))
    }

    fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, PluginError> {
        self.pool.run(|client| {
            client
                .query(&self.sql.list, &[&prefix])?
                .into_iter()
                .map(|row| {
                    Ok((
                        row.try_get(0)?,
                        Versioned {
                            value: row.try_get(1)?,
                            version: version_of(row.try_get(2)?)?,
                        },
                    ))
                })
                .collect()
        })
    }

    fn compare_and_swap(&self, key: &str, expected: u64, value: &[u8]) -> Result<Cas, PluginError> {
        self.pool.run(|client| {
            // A conflict reports the version found; if that is the expected
            // one again (the row changed twice between the two statements),
            // the swap is simply tried again.
            loop {
                let swapped = if expected == 0 {
                    client.query_opt(&self.sql.create, &[&key, &value])?
                } else {
                    client.query_opt(&self.sql.swap, &[&key, &value, &as_i64(expected)])?
                };
                if let Some(row) = swapped {
                    return Ok(Cas::Swapped {
                        version: version_of(row.try_get(0)?)?,
                    });
                }
                let current = self.current_version(client, key)?;
                if current != expected {
                    return Ok(Cas::Conflict { current });
                }
            }
        })
    }

    fn wait_for_change(&self, after: u64, timeout: Duration) -> Result<Option<u64>, PluginError> {
        self.changes.wait(after, timeout).map(Some)
    }
}

impl StoragePlugin for PgStorage {
    const NAME: &'static str = "postgres";

    fn init(config: &Value) -> Result<Self, PluginError> {
        PgStorage::connect(&Settings::parse(config)?)
    }

    fn close(self) -> Result<(), PluginError> {
        self.changes.stop();
        Ok(())
    }
}

twilio_broker_plugin_sdk::export_storage!(PgStorage);
