use super::*;
use crate::settings::{resolve, Settings, UserInput};

fn scenario(source: &str) -> Scenario {
    set_up(source, 1, &[]).0
}

fn event_error(source: &str) -> String {
    scenario(source).event(0, 0).unwrap_err().to_string()
}

#[test]
fn a_script_without_event_is_refused() {
    let err = Scenario::from_source(Path::new("x.rhai"), "fn setup(ctx) { 1 }")
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("has no `event(ctx)` function"),
        "{err}"
    );
}

#[test]
fn a_syntax_error_names_file_line_and_column() {
    let err = Scenario::from_source(Path::new("x.rhai"), "fn event(ctx) {\n  let = 3;\n}")
        .err()
        .unwrap();
    assert!(err.to_string().contains("x.rhai:2:"), "{err}");
}

#[test]
fn an_event_that_is_not_a_map_is_refused_with_the_function_place() {
    let message = event_error("fn event(ctx) {\n  42\n}");
    assert!(message.contains("returned i64"), "{message}");
    assert!(message.contains("test.rhai:1"), "{message}");
}

#[test]
fn maps_arrays_of_maps_and_unit_are_events() {
    let mut s = scenario("fn event(ctx) { if ctx.seq == 0 { #{a: 1} } else if ctx.seq == 1 { [#{a: 1}, #{a: 2}] } else { () } }");
    assert!(s.event(0, 0).unwrap().is_map());
    assert!(s.event(0, 1).unwrap().is_array());
    assert!(s.event(0, 2).unwrap().is_unit());
}

#[test]
fn an_endless_loop_hits_the_operation_limit() {
    let message = event_error("fn event(ctx) {\n  loop { }\n}");
    assert!(message.contains("Too many operations"), "{message}");
    // Rhai gives no position for the limit, so the error points at the function.
    assert!(message.contains("test.rhai:1:1"), "{message}");
}

#[test]
fn deep_recursion_hits_the_call_depth_limit() {
    let message = event_error("fn down(n) { down(n + 1) }\nfn event(ctx) { down(0) }");
    assert!(
        message.to_lowercase().contains("stack overflow"),
        "{message}"
    );
}

#[test]
fn a_huge_string_hits_the_size_limit() {
    let message = event_error("fn event(ctx) {\n  let s = \"x\";\n  loop { s += s; }\n}");
    assert!(message.contains("Length of string"), "{message}");
}

#[test]
fn eval_is_not_available() {
    let result = Scenario::from_source(Path::new("x.rhai"), "fn event(ctx) { eval(\"1\") }");
    assert!(result.is_err());
}

#[test]
fn setup_state_and_settings_reach_events_through_ctx() {
    let mut s = scenario(
        "fn config() { #{ greeting: \"hi\" } }
         fn setup(ctx) { #{ people: pool(3, |i| `p${i}`) } }
         fn event(ctx) { #{ who: ctx.state.people[ctx.seq], say: ctx.settings.greeting, t: ctx.time } }",
    );
    let event = s.event(1_705_312_800_000, 2).unwrap().cast::<Map>();
    assert_eq!(event["who"].clone().into_string().unwrap(), "p2");
    assert_eq!(event["say"].clone().into_string().unwrap(), "hi");
    assert_eq!(event["t"].as_int().unwrap(), 1_705_312_800_000);
}

#[test]
fn pools_pick_their_own_elements_and_refuse_bad_indices() {
    let mut s = scenario(
        "fn setup(ctx) { let p = pool(); p.push(1); p.push(2); #{ p: p, empty: pool([]) } }
         fn event(ctx) { #{ v: ctx.state.p.pick(), n: ctx.state.p.len } }
         fn bad(ctx) { ctx.state.p[5] }",
    );
    for seq in 0..20 {
        let event = s.event(0, seq).unwrap().cast::<Map>();
        assert!([1, 2].contains(&event["v"].as_int().unwrap()));
        assert_eq!(event["n"].as_int().unwrap(), 2);
    }
    let ctx = s.context(0, 0);
    let err = s.call("bad", (ctx,)).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
}

#[test]
fn the_same_seed_draws_the_same_values() {
    let source = "fn event(ctx) { #{ id: uuid(), x: rand_int(0, 1000000), y: normal(0, 1) } }";
    let draw = || {
        let mut s = scenario(source);
        (0..5)
            .map(|seq| serde_json::to_string(&s.event(0, seq).unwrap()).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(), draw());
}

#[test]
fn rate_must_return_a_number() {
    let mut s = scenario("fn event(ctx) { #{} }\nfn rate(t) { \"fast\" }");
    assert!(s.has_rate());
    let err = s.rate(0).unwrap_err();
    assert!(err.to_string().contains("events per minute"), "{err}");
}

#[test]
fn an_unknown_helper_suggests_the_nearest_name() {
    let err = scenario("fn event(ctx) {\n  let c = [1].pik();\n  #{}\n}")
        .event(0, 0)
        .unwrap_err();
    let help = miette::Diagnostic::help(&err)
        .map(|h| h.to_string())
        .unwrap_or_default();
    assert!(help.contains("did you mean `pick`?"), "{help}");
    let err = scenario("fn event(ctx) { zzzzzz() }")
        .event(0, 0)
        .unwrap_err();
    let help = miette::Diagnostic::help(&err)
        .map(|h| h.to_string())
        .unwrap_or_default();
    assert!(!help.contains("did you mean"), "{help}");
}

#[test]
fn imported_modules_are_callable_by_their_alias() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("money.rhai"), "fn vat(x) { x * 9 / 100 }").unwrap();
    let path = dir.path().join("main.rhai");
    std::fs::write(
        &path,
        "import \"money\" as money;\nfn event(ctx) { #{ v: money::vat(150000) } }",
    )
    .unwrap();
    let mut s = Scenario::load(&path).unwrap();
    let event = s.event(0, 0).unwrap().cast::<Map>();
    assert_eq!(event["v"].as_int().unwrap(), 13_500);
}

/// A scenario from `source`, configured with `env` as its environment and set up with `seed`;
/// shared with the pipeline's tests.
pub(crate) fn set_up(source: &str, seed: u64, env: &[(&str, &str)]) -> (Scenario, Settings) {
    let mut scenario = Scenario::from_source(Path::new("test.rhai"), source).unwrap();
    let defaults = scenario.config().unwrap();
    let input = UserInput {
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..UserInput::default()
    };
    let settings = resolve(&input, &defaults).unwrap();
    scenario.setup(&settings, seed, 0).unwrap();
    (scenario, settings)
}

fn scenario_with(source: &str, env: &[(&str, &str)]) -> Scenario {
    set_up(source, 5, env).0
}

#[test]
fn a_pool_items_draws_do_not_depend_on_pool_sizes() {
    let source = "fn config() { #{ merchant_count: 10, customer_count: 100 } }
        fn setup(ctx) {
            let m = pool(ctx.settings.merchant_count, |i| rand_int(0, 1000000000));
            let c = pool(ctx.settings.customer_count, |i| #{ home: jitter(35.0, 51.0, 10), k: rand_int(0, 1000000000) });
            #{ m: m, c: c, after: rand_int(0, 1000000000) }
        }
        fn event(ctx) { #{ c7: ctx.state.c[7], after: ctx.state.after } }";
    let event = |env: &[(&str, &str)]| {
        let mut s = scenario_with(source, env);
        serde_json::to_string(&s.event(0, 0).unwrap()).unwrap()
    };
    let base = event(&[]);
    assert_eq!(base, event(&[("CUSTOMER_COUNT", "5000")]));
    assert_eq!(base, event(&[("MERCHANT_COUNT", "3")]));
}

#[test]
fn pick_zipf_favours_the_first_elements() {
    let mut s = scenario(
        "fn setup(ctx) { #{ p: pool(100, |i| i) } }
         fn event(ctx) { #{ v: ctx.state.p.pick_zipf(1.0) } }",
    );
    let mut counts = [0u32; 100];
    for seq in 0..20_000 {
        let v = s.event(0, seq).unwrap().cast::<Map>()["v"]
            .as_int()
            .unwrap();
        counts[v as usize] += 1;
    }
    // s = 1: rank 1 about twice rank 2 and ten times rank 10.
    let ratio2 = counts[0] as f64 / counts[1] as f64;
    let ratio10 = counts[0] as f64 / counts[9] as f64;
    assert!((1.7..2.3).contains(&ratio2), "{ratio2}");
    assert!((7.5..13.0).contains(&ratio10), "{ratio10}");
}

#[test]
fn rate_may_read_the_settings() {
    let mut s = scenario(
        "fn config() { #{ rate: 240.0, sale_factor: 10.0 } }
         fn event(ctx) { #{} }
         fn rate(t, settings) { settings.rate * settings.sale_factor }",
    );
    assert!(s.has_rate());
    assert_eq!(s.rate(0).unwrap(), 2_400.0);
}

#[test]
fn local_time_gives_the_calendar_in_a_zone() {
    // 2024-03-19T21:00:00Z is 00:30 on March 20 in Tehran (UTC+3:30), a Wednesday.
    let mut s = scenario(
        "fn event(ctx) { #{ utc: local_time(ctx.time), tehran: local_time(ctx.time, \"Asia/Tehran\") } }",
    );
    let event = s.event(1_710_882_000_000, 0).unwrap().cast::<Map>();
    let part = |zone: &str, key: &str| event[zone].clone().cast::<Map>()[key].as_int().unwrap();
    assert_eq!((part("utc", "day"), part("utc", "hour")), (19, 21));
    assert_eq!(
        (
            part("tehran", "month"),
            part("tehran", "day"),
            part("tehran", "hour"),
            part("tehran", "minute")
        ),
        (3, 20, 0, 30)
    );
    assert_eq!(part("tehran", "weekday"), 2);
}

#[test]
fn events_cannot_change_the_state_setup_built() {
    let (mut s, _) = set_up(
        "fn setup(ctx) { #{ counter: 0 } }\nfn event(ctx) { ctx.state.counter += 1; #{ n: ctx.state.counter } }",
        1,
        &[],
    );
    let err = s.event(0, 0).unwrap_err();
    let text = format!("{:?}", miette::Report::new(err));
    assert!(
        text.contains("read-only") && text.contains("remember"),
        "{text}"
    );
}

#[test]
fn config_limits_bound_a_scenarios_settings_and_a_malformed_one_is_refused() {
    let source = "fn config() { #{ share: 0.5, count: 10, limits: #{ share: [0.0, 1.0], count: [1] } } }\nfn event(ctx) { #{} }";
    let mut s = Scenario::from_source(Path::new("x.rhai"), source).unwrap();
    let defaults = s.config().unwrap();
    let input = |key: &str, value: &str| UserInput {
        env: [(key.to_string(), value.to_string())].into(),
        ..UserInput::default()
    };
    assert!(resolve(&input("SHARE", "0.25"), &defaults).is_ok());
    let err = resolve(&input("SHARE", "2"), &defaults).unwrap_err();
    assert!(
        err.to_string().contains("a number between 0 and 1"),
        "{err}"
    );
    let err = resolve(&input("COUNT", "0"), &defaults).unwrap_err();
    assert!(
        err.to_string().contains("an integer of at least 1"),
        "{err}"
    );

    let bad = "fn config() { #{ limits: #{ share: [1.0, 0.0] } } }\nfn event(ctx) { #{} }";
    let err = Scenario::from_source(Path::new("x.rhai"), bad)
        .unwrap()
        .config()
        .unwrap_err();
    assert!(err.to_string().contains("[min] or [min, max]"), "{err}");
}

/// The names of the functions a scenario's engine registers natively (getters, setters and
/// indexers aside), read from the engine itself.
fn registered_helpers() -> std::collections::BTreeSet<String> {
    let s = scenario("fn event(ctx) { #{} }");
    s.engine
        .gen_fn_signatures(false)
        .iter()
        .filter_map(|signature| signature.split('(').next())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.contains('$'))
        .collect()
}

#[test]
fn the_did_you_mean_list_and_the_docs_name_every_registered_helper() {
    let registered = registered_helpers();
    let listed: std::collections::BTreeSet<String> =
        HELPERS.iter().map(|name| name.to_string()).collect();
    assert_eq!(registered, listed, "registered helpers against HELPERS");
    let docs = std::fs::read_to_string("docs/scripting.md").unwrap();
    for name in &registered {
        assert!(
            docs.contains(&format!("{name}(")) || docs.contains(&format!(".{name}")),
            "docs/scripting.md does not document `{name}`"
        );
    }
}

fn load_error(source: &str) -> String {
    Scenario::from_source(Path::new("ride.rhai"), source)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn a_follow_up_under_a_misspelled_literal_name_fails_at_load_with_its_place() {
    let source = "fn event(ctx) {\n    ctx.follow_up(60000, \"trip_complete\", #{});\n    #{}\n}\nfn trip_completed(ctx, trip) { #{} }";
    let message = load_error(source);
    assert!(message.contains("ride.rhai:2:26"), "{message}");
    assert!(
        message.contains("did you mean `trip_completed`"),
        "{message}"
    );
}

#[test]
fn a_follow_up_under_a_computed_name_fails_where_it_is_scheduled() {
    let source = "fn event(ctx) {\n    let name = \"tri\" + \"p\";\n    ctx.follow_up(1000, name, #{});\n    #{}\n}\nfn trip(ctx, data, extra) { #{} }";
    let message = event_error(source);
    assert!(
        message.contains("no function `trip(ctx, data)`"),
        "{message}"
    );
    assert!(message.contains("test.rhai:3"), "{message}");
}

#[test]
fn follow_up_takes_integer_and_float_delays() {
    let mut s = scenario(
        "fn event(ctx) { ctx.follow_up(1500.4, \"later\", 1); ctx.follow_up(20, \"later\", 2); #{} }\nfn later(ctx, n) { #{} }",
    );
    let _ = s.event(1_000, 0).unwrap();
    let at: Vec<i64> = s.take_effects().scheduled.iter().map(|f| f.at_ms).collect();
    assert_eq!(at, vec![2_500, 1_020]);
}

#[test]
fn check_may_read_the_settings() {
    let (mut s, _) = set_up(
        "fn config() { #{ limit: 10 } }\nfn event(ctx) { #{ n: 12 } }\nfn check(event, settings) { if event.n > settings.limit { \"n above limit\" } }",
        1,
        &[],
    );
    let event = s.event(0, 0).unwrap().cast::<Map>();
    let mut violations = Vec::new();
    s.check_event(&event, &mut violations).unwrap();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].message, "n above limit");
}

#[test]
fn a_contract_function_the_engine_would_never_call_is_refused() {
    let message = load_error("fn event(ctx) { #{} }\nfn check(event, settings, extra) { () }");
    assert!(
        message.contains("`fn check` takes 3 parameters"),
        "{message}"
    );
    assert!(
        message.contains("check(event) or check(event, settings)"),
        "{message}"
    );
}

#[test]
fn a_runtime_error_in_a_follow_up_names_its_file_line_and_column() {
    let mut s = scenario(
        "fn event(ctx) { ctx.follow_up(10, \"later\", 0); #{} }\nfn later(ctx, n) {\n    let x = n / 0;\n    #{}\n}",
    );
    let _ = s.event(0, 0).unwrap();
    let scheduled = s.take_effects().scheduled.remove(0);
    let err = s.follow_up(scheduled, 1).unwrap_err().to_string();
    assert!(err.contains("later() failed at test.rhai:3:"), "{err}");
}

#[test]
fn a_runaway_array_or_map_built_in_an_event_hits_the_size_limit() {
    let message = event_error("fn event(ctx) {\n  let a = [1];\n  loop { a += a; }\n}");
    assert!(message.contains("Size of array"), "{message}");
    let message =
        event_error("fn event(ctx) {\n  let m = #{ a: 1 };\n  loop { m = #{ x: m, y: m }; }\n}");
    assert!(message.contains("Size of object map"), "{message}");
}

#[test]
fn a_runaway_array_built_from_the_state_hits_the_size_limit() {
    let (mut s, _) = set_up(
        "fn setup(ctx) { #{ xs: [1, 2, 3] } }\nfn event(ctx) {\n  let a = ctx.state.xs.map(|x| x);\n  loop { a += a; }\n}",
        1,
        &[],
    );
    let message = s.event(0, 0).unwrap_err().to_string();
    assert!(message.contains("Size of array"), "{message}");
}

#[test]
fn the_operation_limit_counts_each_event_alone() {
    // About 600,000 operations an event: under the limit once, over it if counts added up.
    let mut s = scenario("fn event(ctx) { let n = 0; for i in 0..200000 { n += 1; } #{ n: n } }");
    for seq in 0..3 {
        let event = s.event(0, seq).unwrap().cast::<Map>();
        assert_eq!(event["n"].as_int().unwrap(), 200_000);
    }
}

/// Events 0 to 3 made one after another by one worker are those a fresh scenario makes for
/// each: what the worker resolved for an earlier event does not change a later one. `module` is
/// `lib/m.rhai`, imported by `main` as `m`.
fn assert_same_events_whatever_the_worker_made_before(module: &str, main: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("lib")).unwrap();
    std::fs::write(dir.path().join("lib/m.rhai"), module).unwrap();
    let path = dir.path().join("main.rhai");
    std::fs::write(&path, main).unwrap();
    let mut worker = Scenario::load(&path).unwrap();
    for seq in 0..4 {
        let mut fresh = Scenario::load(&path).unwrap();
        let expected = format!("{:?}", fresh.event(0, seq).unwrap());
        let made = format!("{:?}", worker.event(0, seq).unwrap());
        assert_eq!(made, expected, "event {seq}");
    }
}

#[test]
fn an_event_resolves_functions_the_same_whatever_the_worker_made_before() {
    // `f` is defined in the script and in the module: Rhai's function cache does not tell them
    // apart, so an event must not reuse what an earlier event of the worker resolved.
    assert_same_events_whatever_the_worker_made_before(
        "fn f() { 2 }\nfn g() { f() + f() }",
        "import \"lib/m\" as m;\nfn f() { 1 }\nfn event(ctx) {\n  let a = if ctx.seq % 2 == 0 { m::g() } else { 0 };\n  #{ a: a, main: f() + f() }\n}",
    );
}

#[test]
fn a_module_function_named_like_a_native_one_is_resolved_where_it_is_called() {
    // The module's `abs` shadows the native one inside the module only. The script's call
    // finds no script `abs` and goes native; had the worker kept that miss, the module's own
    // call in the next event would go native too.
    assert_same_events_whatever_the_worker_made_before(
        "fn abs(x) { 100 }\nfn g() { abs(-1) + abs(-1) }",
        "import \"lib/m\" as m;\nfn event(ctx) {\n  let a = if ctx.seq % 2 == 0 { abs(-1) + abs(-1) } else { m::g() };\n  #{ a: a }\n}",
    );
}

#[test]
fn a_runaway_event_is_placed_in_its_function() {
    let mut s = scenario("fn helper() { 1 }\nfn event(ctx) {\n  loop { }\n}");
    let message = s.event(0, 0).unwrap_err().to_string();
    assert!(message.contains("Too many operations"), "{message}");
    assert!(message.contains("test.rhai:2"), "{message}");
}
