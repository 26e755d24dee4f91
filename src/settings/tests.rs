use super::*;

fn script(values: &[(&str, RawValue)]) -> ScriptDefaults {
    ScriptDefaults {
        path: "scenario.rhai".into(),
        values: values
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..ScriptDefaults::default()
    }
}

fn env(pairs: &[(&str, &str)]) -> UserInput {
    UserInput {
        env: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..UserInput::default()
    }
}

#[test]
fn precedence_is_flag_then_env_then_file_then_script_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sim.toml");
    std::fs::write(
        &file,
        "rate = 30\npeak_factor = 4.0\ntopic = \"from-file\"\n",
    )
    .unwrap();
    let mut input = env(&[("EVENT_RATE", "40"), ("TOPIC", "from-env")]);
    input.config_file = Some(file);
    input
        .flags
        .push(("topic".into(), "from-flag".into(), "--topic".into()));
    let scenario = script(&[
        ("rate", RawValue::Int(20)),
        ("peak_factor", RawValue::Float(3.0)),
        ("partitions", RawValue::Int(6)),
    ]);
    let settings = resolve(&input, &scenario).unwrap();
    assert_eq!(settings.topic, "from-flag");
    assert_eq!(settings.rate_per_minute, 40.0);
    assert_eq!(settings.peak_factor, 4.0);
    assert_eq!(settings.partitions, 6);
    assert_eq!(settings.replication, 1);
    assert_eq!(settings.brokers, None);
}

#[test]
fn a_rate_that_is_not_a_number_names_the_variable() {
    let err = resolve(&env(&[("EVENT_RATE", "abc")]), &script(&[])).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("`abc`"), "{message}");
    assert!(
        message.contains("environment variable EVENT_RATE"),
        "{message}"
    );
    assert!(message.contains("positive number"), "{message}");
}

#[test]
fn a_negative_peak_factor_is_refused() {
    let err = resolve(&env(&[("PEAK_FACTOR", "-1")]), &script(&[])).unwrap_err();
    assert!(err.to_string().contains("PEAK_FACTOR"), "{err}");
}

#[test]
fn scenario_settings_are_read_from_their_upper_case_variable_and_typed_by_their_default() {
    let mut scenario = script(&[
        ("fraud_rate", RawValue::Float(0.02)),
        ("customer_count", RawValue::Int(1000)),
        ("label", RawValue::Str("x".into())),
    ]);
    scenario.limits = vec![(
        "fraud_rate".into(),
        Limit {
            min: Some(0.0),
            max: Some(1.0),
        },
    )];
    let settings = resolve(
        &env(&[("CUSTOMER_COUNT", "250"), ("FRAUD_RATE", "0.5")]),
        &scenario,
    )
    .unwrap();
    assert_eq!(settings.values["customer_count"], TypedValue::Int(250));
    assert_eq!(settings.values["fraud_rate"], TypedValue::Float(0.5));
    assert_eq!(settings.values["label"], TypedValue::Str("x".into()));

    let err = resolve(&env(&[("CUSTOMER_COUNT", "many")]), &scenario).unwrap_err();
    assert!(err.to_string().contains("CUSTOMER_COUNT"), "{err}");
    let err = resolve(&env(&[("FRAUD_RATE", "1.5")]), &scenario).unwrap_err();
    assert!(err.to_string().contains("between 0 and 1"), "{err}");
}

#[test]
fn an_unknown_setting_in_a_flag_or_file_is_refused_with_the_known_ones() {
    let mut input = UserInput::default();
    input
        .flags
        .push(("peak_facter".into(), "2".into(), "--set".into()));
    let err = resolve(&input, &script(&[])).unwrap_err();
    assert!(matches!(err, SettingsError::Unknown { .. }), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sim.toml");
    std::fs::write(&file, "topic = \"t\"\nratee = 3\n").unwrap();
    let input = UserInput {
        config_file: Some(file),
        ..UserInput::default()
    };
    match resolve(&input, &script(&[])).unwrap_err() {
        SettingsError::Unknown { origin, .. } => assert!(origin.to_string().ends_with(":2")),
        other => panic!("{other}"),
    }
}

#[test]
fn kafka_properties_from_flags_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sim.toml");
    std::fs::write(&file, "[kafka]\n\"linger.ms\" = 50\n\"acks\" = \"1\"\n").unwrap();
    let input = UserInput {
        config_file: Some(file),
        kafka_flags: vec![("linger.ms".into(), "5".into())],
        ..UserInput::default()
    };
    let settings = resolve(&input, &script(&[])).unwrap();
    assert_eq!(settings.kafka["linger.ms"], "5");
    assert_eq!(settings.kafka["acks"], "1");
}

#[test]
fn peak_hours_time_zone_and_init_mode_parse_from_text() {
    let settings = resolve(
        &env(&[
            ("PEAK_HOURS", "8-20"),
            ("TIMEZONE", "Asia/Tehran"),
            ("EVENT_INIT_MODE", "skip"),
        ]),
        &script(&[]),
    )
    .unwrap();
    assert_eq!(settings.peak_hours, (8, 20));
    assert_eq!(settings.timezone, chrono_tz::Asia::Tehran);
    assert_eq!(settings.init_mode, InitMode::Skip);
    assert!(resolve(&env(&[("TIMEZONE", "Mars/Base")]), &script(&[])).is_err());
    assert!(resolve(&env(&[("EVENT_INIT_MODE", "wipe")]), &script(&[])).is_err());
}

#[test]
fn partitions_are_checked_once_for_the_engine_and_the_script_alike() {
    // Before, the script's view allowed -1 for both, so -2 was refused as "at least -1".
    let err = resolve(&env(&[("PARTITIONS", "-2")]), &script(&[])).unwrap_err();
    assert!(
        err.to_string().contains("an integer of at least 1"),
        "{err}"
    );
    let err = resolve(&env(&[("REPLICATION", "-2")]), &script(&[])).unwrap_err();
    assert!(
        err.to_string().contains("or -1 for the broker's default"),
        "{err}"
    );
    let settings = resolve(&env(&[("REPLICATION", "-1")]), &script(&[])).unwrap();
    assert_eq!(settings.replication, -1);
    assert_eq!(settings.values["replication"], TypedValue::Int(-1));
}

#[test]
fn a_scenario_setting_without_a_declared_range_takes_any_value_of_its_type() {
    let scenario = script(&[("fraud_rate", RawValue::Float(0.02))]);
    let settings = resolve(&env(&[("FRAUD_RATE", "7.5")]), &scenario).unwrap();
    assert_eq!(settings.values["fraud_rate"], TypedValue::Float(7.5));
}

#[test]
fn a_readers_brokers_and_topic_take_flags_then_env_then_default() {
    let mut input = env(&[("KAFKA_BROKER", "env:1"), ("TOPIC", "t.env")]);
    input
        .flags
        .push(("brokers".into(), "flag:1".into(), "--brokers".into()));
    let target = kafka_target(&input, "t.default").unwrap();
    assert_eq!(
        target.brokers,
        Some(("flag:1".into(), Origin::Flag("--brokers".into())))
    );
    assert_eq!(target.topic, ("t.env".into(), Origin::Env("TOPIC".into())));
    let none = kafka_target(&env(&[]), "t.default").unwrap();
    assert_eq!(none.brokers, None);
    assert_eq!(none.topic, ("t.default".into(), Origin::Default));
}

#[test]
fn a_readers_config_file_comes_under_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.toml");
    std::fs::write(&path, "brokers = \"file:1\"\ntopic = \"t.file\"\n").unwrap();
    let mut input = env(&[("TOPIC", "t.env")]);
    input.config_file = Some(path.clone());
    let target = kafka_target(&input, "t.default").unwrap();
    let origin = Origin::File {
        path,
        line: Some(1),
    };
    assert_eq!(target.brokers, Some(("file:1".into(), origin)));
    assert_eq!(target.topic.0, "t.env");
}

#[test]
fn on_error_is_auto_unless_set_and_names_its_choices_when_wrong() {
    assert_eq!(resolve(&env(&[]), &script(&[])).unwrap().on_error, None);
    let skip = resolve(&env(&[("ON_ERROR", "Skip")]), &script(&[])).unwrap();
    assert_eq!(skip.on_error, Some(OnError::Skip));
    let stop = resolve(&env(&[("ON_ERROR", "stop")]), &script(&[])).unwrap();
    assert_eq!(stop.on_error, Some(OnError::Stop));
    let err = resolve(&env(&[("ON_ERROR", "ignore")]), &script(&[])).unwrap_err();
    assert!(err.to_string().contains("skip, stop or auto"), "{err}");
}

#[test]
fn encoding_and_schema_registry_resolve_and_a_bad_encoding_names_its_origin() {
    let settings = resolve(&env(&[]), &script(&[])).unwrap();
    assert_eq!(settings.encoding, Encoding::Json);
    assert_eq!(settings.schema_registry, None);

    let input = env(&[
        ("ENCODING", "avro"),
        ("SCHEMA_REGISTRY_URL", "http://registry:8081"),
    ]);
    let settings = resolve(&input, &script(&[])).unwrap();
    assert_eq!(settings.encoding, Encoding::Avro);
    assert_eq!(
        settings.schema_registry.as_deref(),
        Some("http://registry:8081")
    );
    assert_eq!(
        settings.schema_registry_origin,
        Origin::Env("SCHEMA_REGISTRY_URL".into())
    );

    let mut input = env(&[]);
    input
        .flags
        .push(("encoding".into(), "protobuf".into(), "--encoding".into()));
    let message = resolve(&input, &script(&[])).unwrap_err().to_string();
    assert_eq!(
        message,
        "invalid value `protobuf` for setting `encoding` (from flag --encoding): expected json or avro"
    );
}

#[test]
fn listen_addresses_parse_as_exporters_write_them() {
    use std::net::SocketAddr;
    let parsed = |text: &str| parse_listen_address(text);
    assert_eq!(
        parsed("127.0.0.1:9464"),
        Some("127.0.0.1:9464".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(
        parsed(":9464"),
        Some("0.0.0.0:9464".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(
        parsed("[::1]:0"),
        Some("[::1]:0".parse::<SocketAddr>().unwrap())
    );
    assert!(parsed("localhost:9464").is_some_and(|a| a.port() == 9464));
    for bad in ["localhost", "9464", "127.0.0.1:99999", ":port", ""] {
        assert_eq!(parsed(bad), None, "{bad:?}");
    }
}
