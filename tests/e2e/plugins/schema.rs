//! The audit event's JSON Schema (`plugins/sdk/schema/audit-event.schema.json`)
//! describes what the broker emits exactly: every event an audit plugin
//! receives and every line of the audit file validates; together they use
//! every property the schema names; the schema refuses an unknown field or a
//! missing `version`; its enums list every RPC and grant kind.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};
use tonic::Code;
use twilio_broker::{GrantKind, Rpc};
use twilio_broker_api::v1 as pb;
use twilio_broker_api::v1::admin_client::AdminClient;
use twilio_broker_api::v1::broker_client::BrokerClient;

use super::libs::{cargo_plugin, workspace};
use crate::callers::uds_channel;
use crate::harness::{Broker, Fixtures, Options, uid};

fn schema() -> Value {
    let path = workspace().join("plugins/sdk/schema/audit-event.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A validator for the schema's root, or for one of its `$defs`.
fn validator(def: Option<&str>) -> jsonschema::Validator {
    let mut schema = schema();
    if let Some(def) = def {
        let object = schema.as_object_mut().unwrap();
        object.remove("oneOf");
        object.insert("$ref".into(), json!(format!("#/$defs/{def}")));
    }
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles")
}

fn assert_valid(validator: &jsonschema::Validator, record: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(record)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what} {record} is invalid: {errors:?}");
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emitted_events_validate_against_the_published_schema() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("broker.sock");
    let file = dir.path().join("audit.jsonl");
    let received = dir.path().join("plugin.jsonl");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[[rule]]\ncallers = [\"uid:{}\"]\nadmin = true\n\n[[rule]]\ncallers = [\"*\"]\neffect = \"deny\"\ncredentials = [\"forbidden-*\"]\n",
            uid()
        ),
    )
    .unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "[audit]\nfile = {:?}\n\n[[plugins]]\nkind = \"audit\"\nrequired = true\npath = {:?}\nconfig = {{ path = {:?} }}\n",
            file.display().to_string(),
            cargo_plugin("twilio_broker_audit_jsonl").display().to_string(),
            received.display().to_string()
        ),
    )
    .unwrap();
    let broker = Broker::start(Options {
        args: vec![
            "--listen".into(),
            format!("unix:{}", socket.display()),
            "--policy".into(),
            policy.display().to_string(),
            "--config".into(),
            config.display().to_string(),
        ],
        dev: false,
        ..Options::default()
    });
    let f = Fixtures::new();
    let channel = uds_channel(&socket).await;
    let mut admin = AdminClient::new(channel.clone());
    admin
        .put_credential(f.api_key("web-key", pb::KeyType::Standard))
        .await
        .unwrap();
    let get = |name: &str| pb::GetCredentialRequest { name: name.into() };
    let missing = admin.get_credential(get("nope")).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let denied = admin.get_credential(get("forbidden-x")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    admin
        .list_credentials(pb::ListCredentialsRequest::default())
        .await
        .unwrap();
    BrokerClient::new(channel)
        .mint_access_token(pb::MintAccessTokenRequest {
            credential: "web-key".into(),
            identity: "alice".into(),
            ttl_seconds: 600,
            video: Some(pb::VideoGrant {
                room: "standup".into(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    drop(broker);

    let (root, event, chained, record) = (
        validator(None),
        validator(Some("event")),
        validator(Some("chained_event")),
        validator(Some("chain_record")),
    );
    let is_event = |line: &&Value| line.get("rpc").is_some();
    let mut seen = BTreeSet::new();
    let mut bare_events = Vec::new();
    for (what, path) in [("a plugin's stream", &received), ("the audit file", &file)] {
        let lines = records(path);
        let events: Vec<&Value> = lines.iter().filter(is_event).collect();
        // Five answers and the intent written before the PutCredential.
        assert_eq!(events.len(), 6, "{what}: {lines:?}");
        assert_eq!(
            events.iter().filter(|e| e["phase"] == "intent").count(),
            1,
            "{what}"
        );
        assert_eq!(
            lines[0]["record"], "start",
            "{what} begins with its start record"
        );
        for line in &lines {
            assert_eq!(line["version"], "1", "{what}: {line}");
            assert_valid(&root, line, what);
            if is_event(&line) {
                assert_valid(&chained, line, what);
                assert!(!event.is_valid(line), "a chained line is not a bare event");
                let mut bare = line.clone();
                for link in ["seq", "prev", "hash"] {
                    bare.as_object_mut().unwrap().remove(link);
                }
                assert_valid(&event, &bare, "an event without its link");
                seen.extend(bare.as_object().unwrap().keys().cloned());
                bare_events.push(bare);
            } else {
                assert_valid(&record, line, what);
            }
        }
    }

    // Exactly: the events above use every property the schema describes.
    let schema = schema();
    let described: BTreeSet<String> = schema["$defs"]["event_fields"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(seen, described, "emitted vs described members");

    // Strict: an unknown member, a missing or other version is refused.
    let sample = bare_events[0].clone();
    let mut extra = sample.clone();
    extra["secret"] = json!("x");
    let mut unversioned = sample.clone();
    unversioned.as_object_mut().unwrap().remove("version");
    let mut other = sample;
    other["version"] = json!("2");
    for bad in [extra, unversioned, other] {
        assert!(!root.is_valid(&bad), "accepted {bad}");
    }

    // Complete: every RPC and grant kind the broker knows is listed.
    let listed = |def: &Value| -> BTreeSet<String> {
        def.as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let properties = &schema["$defs"]["event_fields"]["properties"];
    // Every RPC, and `Restore`, which the offline `twilio-broker restore`
    // records (issue 17).
    assert_eq!(
        listed(&properties["rpc"]["enum"]),
        Rpc::ALL
            .iter()
            .map(|r| r.as_str().to_owned())
            .chain(["Restore".to_owned()])
            .collect()
    );
    assert_eq!(
        listed(&properties["grants"]["items"]["enum"]),
        GrantKind::ALL
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect()
    );
}
