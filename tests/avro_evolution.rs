//! Schema evolution on hot reload: `sim run --encoding avro` on the embedded broker and the
//! embedded registry, with the script edited while it streams. A compatible change (a new
//! nullable field) is registered and later messages carry the new id, all of them decoded by the
//! Python client with the registry; an incompatible one is refused, naming the field and the
//! rule, and the stream carries on with the old id; an edit that keeps the schema registers
//! nothing.
//!
//! Each step waits for what it caused (a line on standard error, or messages read back), never
//! for a length of time.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{json_lines, mentions, require_python_avro, root, run, sim, Background};
use serde_json::{json, Value};

/// How long to wait for a line or for messages (generous: CI is a shared 2 cores).
const WAIT: Duration = Duration::from_secs(120);

/// The scenario with `amount` of `amount_type` set to `amount`, and `extra` declared fields
/// with `extra_values` in its events.
fn scenario(amount_type: &str, amount: &str, extra: &str, extra_values: &str) -> String {
    format!(
        "fn config() {{ #{{ topic: \"evolve.payments\", rate: 6000.0, peak_factor: 1.0,\n\
           key_field: \"customer_id\",\n\
           schema: #{{ customer_id: \"string\", seq: \"int\", amount: \"{amount_type}\"{extra} }} }} }}\n\
         fn event(ctx) {{ #{{ customer_id: `c${{ctx.seq % 10}}`, seq: ctx.seq, amount: {amount}{extra_values} }} }}\n"
    )
}

fn first_version() -> String {
    scenario("int", "100", "", "")
}

/// `sim run` of `s.rhai` in `dir` with Avro, and the registry's URL, the brokers and the topic.
fn start(dir: &Path) -> (Background, String, String, String) {
    let run = Background::start(
        sim()
            .arg("run")
            .arg(dir.join("s.rhai"))
            .args(["--encoding", "avro", "--seed", "1"])
            .env("EVENT_INIT_MODE", "skip"),
    );
    let registry = run
        .wait_for_line("the registry's URL", WAIT, |l| {
            l.starts_with("schema registry at ")
        })
        .trim_start_matches("schema registry at ")
        .trim()
        .to_string();
    let (brokers, topic) = run.embedded_broker(WAIT);
    run.wait_for_line("the watch", WAIT, |l| l.starts_with("hot reload: watching"));
    (run, registry, brokers, topic)
}

/// Messages of the topic read back by the Python client from the beginning, until `expect` (of
/// schema id `id`, when given) have been read.
fn read_back(
    registry: &str,
    brokers: &str,
    topic: &str,
    expect: u64,
    id: Option<u32>,
) -> Vec<Value> {
    let mut command = Command::new("python3");
    command
        .arg(root().join("tests/support/avro_consume.py"))
        .args([
            "--brokers",
            brokers,
            "--topic",
            topic,
            "--registry",
            registry,
        ])
        .args(["--expect", &expect.to_string(), "--timeout", "100"]);
    if let Some(id) = id {
        command.args(["--expect-id", &id.to_string()]);
    }
    let output = run(&mut command, WAIT);
    assert!(
        output.status.success(),
        "avro_consume.py: {}",
        output.stderr
    );
    json_lines(&output.stdout)
}

/// The registry's answer to `GET path`, as JSON.
fn registry_get(registry: &str, path: &str) -> Value {
    let mut response = ureq::get(&format!("{registry}{path}")).call().unwrap();
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}

/// Standard error once the `n`-th refused schema change has been reported whole (its help line
/// comes last).
fn refusal(sim_run: &Background, n: usize) -> String {
    sim_run.wait_for_nth_line(n, "a refused schema change", WAIT, |l| {
        l.contains("help: the running revision keeps its schema")
    });
    sim_run.stderr()
}

/// Edits `s.rhai` in `dir`.
fn edit(dir: &Path, text: &str) {
    std::fs::write(dir.join("s.rhai"), text).unwrap();
}

#[test]
fn a_compatible_change_is_registered_and_later_messages_carry_the_new_id() {
    require_python_avro();
    let dir = tempfile::tempdir().unwrap();
    edit(dir.path(), &first_version());
    let (sim_run, registry, brokers, topic) = start(dir.path());
    // Messages with the first schema exist before any edit.
    read_back(&registry, &brokers, &topic, 20, None);

    // An edit that keeps the schema registers nothing.
    edit(dir.path(), &scenario("int", "200", "", ""));
    sim_run.wait_for_line("revision 2", WAIT, |l| l.contains("reloaded: revision 2"));
    let versions = format!("/subjects/{topic}-value/versions");
    assert_eq!(registry_get(&registry, &versions), json!([1]));

    // A new nullable field (a default of null): BACKWARD compatible.
    edit(
        dir.path(),
        &scenario(
            "int",
            "300",
            ", note: #{ type: \"string\", nullable: true }",
            ", note: \"v3\"",
        ),
    );
    sim_run.wait_for_line("revision 3", WAIT, |l| l.contains("reloaded: revision 3"));
    let line = sim_run.wait_for_line("the new schema id", WAIT, |l| {
        l.starts_with("avro: revision 3 writes with schema id")
    });
    assert_eq!(
        line,
        format!("avro: revision 3 writes with schema id 2, subject {topic}-value")
    );
    assert_eq!(registry_get(&registry, &versions), json!([1, 2]));

    let messages = read_back(&registry, &brokers, &topic, 30, Some(2));
    sim_run.interrupt();
    let (status, stderr) = sim_run.wait(WAIT);
    assert!(status.success(), "{stderr}");
    assert!(
        !mentions(&stderr, "does not fit the Avro schema"),
        "{stderr}"
    );

    let mut last_id_per_partition = std::collections::BTreeMap::new();
    for message in &messages {
        let id = message["schema_id"].as_u64().unwrap();
        let value = &message["value"];
        // Within a partition the id goes from 1 to 2, never back.
        let last = last_id_per_partition
            .entry(message["partition"].as_u64().unwrap())
            .or_insert(1);
        assert!(id >= *last, "id {id} after {last}: {message}");
        *last = id;
        match id {
            1 => {
                assert!(value.get("note").is_none(), "{message}");
                assert!([100, 200].contains(&value["amount"].as_i64().unwrap()));
            }
            2 => {
                assert_eq!(value["note"], "v3", "{message}");
                assert_eq!(value["amount"], 300, "{message}");
            }
            _ => panic!("unexpected schema id: {message}"),
        }
    }
    let ids: Vec<u64> = messages
        .iter()
        .map(|m| m["schema_id"].as_u64().unwrap())
        .collect();
    assert!(ids.contains(&1) && ids.contains(&2), "{ids:?}");
}

#[test]
fn an_incompatible_change_is_refused_naming_the_field_and_the_stream_keeps_the_old_id() {
    require_python_avro();
    let dir = tempfile::tempdir().unwrap();
    edit(dir.path(), &first_version());
    let (sim_run, registry, brokers, topic) = start(dir.path());
    read_back(&registry, &brokers, &topic, 20, None);

    // A type changed: BACKWARD (the registries' default) forbids it.
    edit(dir.path(), &scenario("string", "\"100\"", "", ""));
    let said = refusal(&sim_run, 1);
    assert!(
        said.contains("edit rejected; revision 1 keeps running"),
        "{said}"
    );
    assert!(
        mentions(
            &said,
            "changing `amount` from long to string breaks BACKWARD: consumers on the new schema cannot read old messages",
        ),
        "{said}"
    );

    // Under FULL, a required field removed is refused too: the subject's level is read.
    ureq::Agent::new_with_defaults()
        .put(&format!("{registry}/config/{topic}-value"))
        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
        .send(json!({ "compatibility": "FULL" }).to_string())
        .unwrap();
    edit(
        dir.path(),
        &first_version()
            .replace(", amount: \"int\"", "")
            .replace(", amount: 100", ""),
    );
    let said = refusal(&sim_run, 2);
    assert!(
        mentions(
            &said,
            "removing `amount`, which has no default, breaks FULL: consumers on the old schema cannot read new messages",
        ),
        "{said}"
    );
    assert!(
        mentions(&said, "sim::reload::incompatible_schema"),
        "{said}"
    );
    assert!(!said.contains("reloaded: revision"), "{said}");
    let versions = format!("/subjects/{topic}-value/versions");
    assert_eq!(registry_get(&registry, &versions), json!([1]));

    // The stream carries on with the first schema: what is read is id 1, and no event failed
    // to encode (an event written with a schema it does not fit would count as a script error).
    let messages = read_back(&registry, &brokers, &topic, 60, None);
    sim_run.interrupt();
    let (status, stderr) = sim_run.wait(WAIT);
    assert!(status.success(), "{stderr}");
    let account = common::final_account(&stderr);
    assert_eq!((account.failed, account.script_errors), (0, 0), "{stderr}");
    for message in &messages {
        assert_eq!(message["schema_id"], 1, "{message}");
        assert_eq!(message["value"]["amount"], 100, "{message}");
    }
}

#[test]
fn an_edit_whose_events_do_not_fit_its_own_new_schema_is_refused_before_registering() {
    let dir = tempfile::tempdir().unwrap();
    let own = |extra_field: &str, extra_value: &str| {
        let schema = format!(
            r#"{{"type":"record","name":"Payment","namespace":"evolve","fields":[{{"name":"customer_id","type":"string"}},{{"name":"seq","type":"long"}}{extra_field}]}}"#
        );
        format!(
            "fn config() {{ #{{ topic: \"evolve.own\", rate: 6000.0, peak_factor: 1.0,\n\
               key_field: \"customer_id\", avro_schema: {schema:?} }} }}\n\
             fn event(ctx) {{ #{{ customer_id: `c${{ctx.seq % 10}}`, seq: ctx.seq{extra_value} }} }}\n"
        )
    };
    edit(dir.path(), &own("", ""));
    let (sim_run, registry, _, topic) = start(dir.path());
    // A compatible schema (a nullable field), but the events give the field a number.
    edit(
        dir.path(),
        &own(
            r#",{"name":"note","type":["null","string"],"default":null}"#,
            ", note: 5",
        ),
    );
    sim_run.wait_for_line("the refusal", WAIT, |l| {
        l.contains("does not fit the Avro schema")
    });
    let stderr = sim_run.stderr();
    assert!(
        stderr.contains("edit rejected; revision 1 keeps running"),
        "{stderr}"
    );
    let versions = format!("/subjects/{topic}-value/versions");
    assert_eq!(registry_get(&registry, &versions), json!([1]));
    // Fixed, it goes through with the new id.
    edit(
        dir.path(),
        &own(
            r#",{"name":"note","type":["null","string"],"default":null}"#,
            ", note: \"fits\"",
        ),
    );
    sim_run.wait_for_line("the new schema id", WAIT, |l| {
        l.starts_with("avro: revision 2 writes with schema id 2")
    });
    sim_run.interrupt();
    let (status, stderr) = sim_run.wait(WAIT);
    assert!(status.success(), "{stderr}");
    let account = common::final_account(&stderr);
    assert_eq!((account.failed, account.script_errors), (0, 0), "{stderr}");
}
