//! An audit sink that publishes each event to a NATS JetStream subject and
//! waits for the stream's acknowledgement before returning, so an event the
//! broker has recorded is stored by JetStream even if the broker crashes
//! right after.
//!
//! ```toml
//! [[plugins]]
//! kind = "audit"
//! path = "/usr/lib/twilio-broker/libtwilio_broker_audit_nats.so"
//! config = { url = "nats://127.0.0.1:4222", subject = "twilio-broker.audit", stream = "TWILIO_BROKER_AUDIT" }
//! ```
//!
//! `stream` is optional: when set, the stream is created (capturing
//! `subject`) if it does not exist; when absent, some existing stream must
//! already capture `subject`, which `init` checks.

#![forbid(unsafe_code)]

use std::time::Duration;

use async_nats::jetstream;
use tokio::runtime::Runtime;
use twilio_broker_plugin_sdk::serde_json::Value;
use twilio_broker_plugin_sdk::{Audit, AuditPlugin, PluginError};

const KNOWN: [&str; 5] = [
    "url",
    "subject",
    "stream",
    "ack_timeout_ms",
    "connect_timeout_ms",
];

/// The sink: a NATS connection driven by the plugin's own small runtime
/// (plugin calls arrive on the broker's threads, synchronously).
pub struct NatsSink {
    runtime: Runtime,
    client: async_nats::Client,
    jetstream: jetstream::Context,
    subject: String,
}

fn text<'a>(config: &'a Value, key: &str) -> Result<Option<&'a str>, PluginError> {
    match config.get(key) {
        None => Ok(None),
        Some(value) => value
            .as_str()
            .filter(|s| !s.is_empty())
            .map(Some)
            .ok_or_else(|| {
                PluginError::invalid(format!("config.{key} must be a non-empty string"))
            }),
    }
}

/// The user info (`user:password@`, `token@`) of each server in a NATS URL
/// list, which must never reach an error or a log.
fn user_infos(url: &str) -> Vec<&str> {
    url.split(',')
        .filter_map(|server| {
            let server = server.trim();
            let after_scheme = server.split_once("://").map_or(server, |(_, rest)| rest);
            let authority = after_scheme.split('/').next().unwrap_or_default();
            authority.rsplit_once('@').map(|(info, _)| info)
        })
        .filter(|info| !info.is_empty())
        .collect()
}

/// `text` with every user info of `url` replaced by `***`.
fn redact(text: &str, url: &str) -> String {
    let mut out = text.to_owned();
    for info in user_infos(url) {
        out = out.replace(info, "***");
    }
    out
}

fn millis(config: &Value, key: &str, default: u64) -> Result<Duration, PluginError> {
    match config.get(key) {
        None => Ok(Duration::from_millis(default)),
        Some(value) => value
            .as_u64()
            .filter(|n| (1..=600_000).contains(n))
            .map(Duration::from_millis)
            .ok_or_else(|| PluginError::invalid(format!("config.{key} must be 1 to 600000"))),
    }
}

impl AuditPlugin for NatsSink {
    const NAME: &'static str = "nats";

    fn init(config: &Value) -> Result<Self, PluginError> {
        let object = config
            .as_object()
            .ok_or_else(|| PluginError::invalid("config must be a table"))?;
        if let Some(unknown) = object.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(PluginError::invalid(format!(
                "unknown config key {unknown:?} (known: {})",
                KNOWN.join(", ")
            )));
        }
        let url = text(config, "url")?
            .unwrap_or("nats://127.0.0.1:4222")
            .to_owned();
        let subject = text(config, "subject")?
            .ok_or_else(|| PluginError::invalid("config.subject is required"))?
            .to_owned();
        let stream = text(config, "stream")?.map(str::to_owned);
        let ack_timeout = millis(config, "ack_timeout_ms", 5_000)?;
        let connect_timeout = millis(config, "connect_timeout_ms", 5_000)?;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("audit-nats")
            .enable_all()
            .build()
            .map_err(|e| PluginError::failed(format!("cannot start the plugin's runtime: {e}")))?;
        let (client, jetstream) = runtime.block_on(async {
            let client = async_nats::ConnectOptions::new()
                .connection_timeout(connect_timeout)
                .name("twilio-broker audit")
                .connect(url.as_str())
                .await
                .map_err(|e| {
                    PluginError::unavailable(redact(
                        &format!("cannot connect to NATS at {url}: {e}"),
                        &url,
                    ))
                })?;
            let mut jetstream = jetstream::new(client.clone());
            jetstream.set_timeout(ack_timeout);
            match &stream {
                Some(name) => {
                    jetstream
                        .get_or_create_stream(jetstream::stream::Config {
                            name: name.clone(),
                            subjects: vec![subject.clone()],
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| {
                            PluginError::unavailable(format!(
                                "cannot get or create stream {name}: {e}"
                            ))
                        })?;
                }
                None => {
                    jetstream.stream_by_subject(subject.clone()).await.map_err(|e| {
                        PluginError::invalid(format!(
                            "no JetStream stream captures subject {subject:?} ({e}); create one \
                             or set config.stream"
                        ))
                    })?;
                }
            }
            Ok::<_, PluginError>((client, jetstream))
        })?;
        Ok(NatsSink {
            runtime,
            client,
            jetstream,
            subject,
        })
    }

    fn close(self) -> Result<(), PluginError> {
        self.flush()?;
        self.runtime.shutdown_timeout(Duration::from_secs(1));
        Ok(())
    }
}

impl Audit for NatsSink {
    fn record(&self, event_json: &str) -> Result<(), PluginError> {
        self.runtime.block_on(async {
            // The first await sends; the second waits for JetStream's
            // acknowledgement (bounded by the context's time-out).
            let ack = self
                .jetstream
                .publish(self.subject.clone(), event_json.to_owned().into())
                .await
                .map_err(|e| PluginError::unavailable(format!("cannot publish the event: {e}")))?;
            ack.await.map_err(|e| {
                PluginError::unavailable(format!("JetStream did not acknowledge the event: {e}"))
            })?;
            Ok(())
        })
    }

    fn flush(&self) -> Result<(), PluginError> {
        // Every recorded event was acknowledged already; this only makes
        // sure nothing else is left in the connection's buffer.
        self.runtime
            .block_on(self.client.flush())
            .map_err(|e| PluginError::unavailable(format!("cannot flush the NATS connection: {e}")))
    }
}

twilio_broker_plugin_sdk::export_audit_sink!(NatsSink);

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn user_info_never_reaches_an_error() {
        let url = "nats://audit:s3cr3t-pw@127.0.0.1:1,tls://t0ken@nats.internal:4222";
        assert_eq!(
            redact(&format!("cannot connect to NATS at {url}: refused"), url),
            "cannot connect to NATS at nats://***@127.0.0.1:1,tls://***@nats.internal:4222: refused"
        );
        assert_eq!(
            redact("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
        let config = twilio_broker_plugin_sdk::serde_json::json!({
            "url": "nats://audit:s3cr3t-pw@127.0.0.1:1",
            "subject": "x",
            "connect_timeout_ms": 200,
        });
        let Err(err) = NatsSink::init(&config) else {
            panic!("connected to a closed port");
        };
        assert!(!err.message.contains("s3cr3t-pw"), "{err}");
        assert!(err.message.contains("nats://***@127.0.0.1:1"), "{err}");
    }
}
