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
//! - Re-reads ask only for what changed (`changes_since`, issue 20): a row
//!   trigger stamps every written row with its transaction id (`txid`,
//!   indexed), another keeps a tombstone per removed key (`removed`), and
//!   the cursor handed back is the oldest transaction still running when
//!   the read's snapshot was taken, so a write committed after the read
//!   (whatever its sequence number) is at or after the cursor. Unchanged
//!   rows of transactions that were running may be returned again.
//!   `TRUNCATE` is noted too (`truncations`): a replica whose cursor it
//!   passed reads everything.
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
    changed: String,
    all: String,
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
            // One statement, so one snapshot: the rows and the cursor agree.
            changed: format!(
                "SELECT 1, key, value, version FROM {t} \
                   WHERE txid >= $1 AND starts_with(key, $2) \
                 UNION ALL \
                 SELECT 2, r.key, NULL, NULL FROM {schema}.removed r \
                   WHERE r.txid >= $1 AND starts_with(r.key, $2) \
                   AND NOT EXISTS (SELECT 1 FROM {t} t WHERE t.key = r.key) \
                 UNION ALL \
                 SELECT 3, NULL, NULL, {CURSOR} \
                 UNION ALL \
                 SELECT 4, NULL, NULL, NULL \
                   WHERE EXISTS (SELECT 1 FROM {schema}.truncations WHERE txid >= $1)"
            ),
            all: format!(
                "SELECT 1, key, value, version FROM {t} WHERE starts_with(key, $1) \
                 UNION ALL \
                 SELECT 3, NULL, NULL, {CURSOR}"
            ),
        }
    }
}

/// The oldest transaction still running as of the statement's snapshot:
/// every transaction not visible to it has an id at least this.
const CURSOR: &str = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint";

impl Sql {
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
             ALTER TABLE {schema}.records ADD COLUMN IF NOT EXISTS txid BIGINT;
             CREATE INDEX IF NOT EXISTS records_txid ON {schema}.records (txid);
             CREATE TABLE IF NOT EXISTS {schema}.removed (
                 key TEXT COLLATE \"C\" PRIMARY KEY,
                 txid BIGINT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS removed_txid ON {schema}.removed (txid);
             CREATE TABLE IF NOT EXISTS {schema}.truncations (txid BIGINT NOT NULL);
             CREATE OR REPLACE FUNCTION {schema}.stamp_record() RETURNS trigger
                 LANGUAGE plpgsql AS $$ BEGIN
                     NEW.txid := pg_current_xact_id()::text::bigint; RETURN NEW;
                 END $$;
             CREATE OR REPLACE TRIGGER records_stamp
                 BEFORE INSERT OR UPDATE ON {schema}.records
                 FOR EACH ROW EXECUTE FUNCTION {schema}.stamp_record();
             CREATE OR REPLACE FUNCTION {schema}.bury_record() RETURNS trigger
                 LANGUAGE plpgsql AS $$ BEGIN
                     INSERT INTO {schema}.removed (key, txid)
                         VALUES (OLD.key, pg_current_xact_id()::text::bigint)
                         ON CONFLICT (key) DO UPDATE SET txid = EXCLUDED.txid;
                     RETURN NULL;
                 END $$;
             CREATE OR REPLACE TRIGGER records_bury
                 AFTER DELETE ON {schema}.records
                 FOR EACH ROW EXECUTE FUNCTION {schema}.bury_record();
             CREATE OR REPLACE FUNCTION {schema}.note_truncation() RETURNS trigger
                 LANGUAGE plpgsql AS $$ BEGIN
                     INSERT INTO {schema}.truncations (txid) VALUES (pg_current_xact_id()::text::bigint);
                     RETURN NULL;
                 END $$;
             CREATE OR REPLACE TRIGGER records_truncated
                 AFTER TRUNCATE ON {schema}.records
                 FOR EACH STATEMENT EXECUTE FUNCTION {schema}.note_truncation();
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

    fn changes_since(
        &self,
        prefix: &str,
        cursor: u64,
    ) -> Result<Option<twilio_broker_plugin_sdk::Changes>, PluginError> {
        let rows = self.pool.run(|client| match cursor {
            0 => client.query(&self.sql.all, &[&prefix]),
            _ => client.query(&self.sql.changed, &[&as_i64(cursor), &prefix]),
        })?;
        let mut changes = twilio_broker_plugin_sdk::Changes::default();
        for row in rows {
            let row = (|| -> Result<_, postgres::Error> {
                let what: i32 = row.try_get(0)?;
                Ok((
                    what,
                    row.try_get::<_, Option<String>>(1)?,
                    row.try_get::<_, Option<Vec<u8>>>(2)?,
                    row.try_get::<_, Option<i64>>(3)?,
                ))
            })()
            .map_err(|e| pool::plugin_error(&e))?;
            match row {
                (1, Some(key), Some(value), Some(version)) => changes.entries.push((
                    key,
                    Some(Versioned {
                        value,
                        version: version_of(version).unwrap_or(0),
                    }),
                )),
                (2, Some(key), _, _) => changes.entries.push((key, None)),
                (3, _, _, Some(next)) => changes.cursor = u64::try_from(next).unwrap_or(0),
                // A TRUNCATE since the cursor: removed rows left no tombstone.
                (4, ..) => return Ok(None),
                _ => return Err(PluginError::failed("changes_since read a malformed row")),
            }
        }
        if changes.cursor == 0 {
            return Err(PluginError::failed("changes_since read no cursor"));
        }
        changes.entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Some(changes))
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
