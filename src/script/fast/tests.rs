//! The fast path against the interpreter: the same events, draw for draw, and the
//! interpreter's own errors for what the fast path gives up.

use std::path::Path;

use super::super::tests::set_up;
use super::super::Scenario;
use crate::encode::EventEncoder;

/// `count` events of `scenario` as JSON lines, or the error of the first that failed. Each
/// map is given back once encoded, as the pipeline does, for the next events to fill again.
fn events(scenario: &mut Scenario, count: i64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut encoder = EventEncoder::new("customer_id");
    let mut encode = |scenario: &mut Scenario, event: rhai::Map, lines: &mut Vec<String>| {
        let _ = encoder.encode(&event, 0);
        lines.push(String::from_utf8_lossy(&encoder.payload).into_owned());
        scenario.recycle(event);
    };
    for seq in 0..count {
        let time = 1_700_000_000_000 + seq * 997;
        match scenario.event(time, seq) {
            Ok(event) if event.is_map() => encode(scenario, event.cast(), &mut lines),
            Ok(events) if events.is_array() => {
                for event in events.cast::<rhai::Array>() {
                    encode(scenario, event.cast(), &mut lines);
                }
            }
            Ok(other) => lines.push(format!("{other:?}")),
            Err(err) => lines.push(format!("{:?}", miette::Report::new(err))),
        }
    }
    lines
}

/// The error of the first event of `source`, whose `event` the fast path compiled.
fn compiled_event_error(source: &str) -> String {
    let (mut scenario, _) = set_up(source, 7, &[]);
    assert!(scenario.fast.is_some());
    format!(
        "{:?}",
        miette::Report::new(scenario.event(0, 0).unwrap_err())
    )
}

/// Runs `source` with the fast path and without; asserts the same events, and returns whether
/// the fast path compiled `event`.
fn same_either_way(source: &str, count: i64) -> bool {
    let (mut fast, _) = set_up(source, 7, &[]);
    let compiled = fast.fast.is_some();
    let (mut interpreted, _) = set_up(source, 7, &[]);
    interpreted.fast = None;
    let a = events(&mut fast, count);
    let b = events(&mut interpreted, count);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "event {i} differs");
    }
    compiled
}

#[test]
fn the_seed_port_is_compiled_and_makes_the_interpreter_s_events() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/seed_port.rhai"),
    )
    .unwrap();
    assert!(same_either_way(&text, 2000));
    let (scenario, _) = set_up(&text, 7, &[]);
    assert!(scenario.setup_compiled, "its setup runs compiled too");
}

#[test]
fn operators_and_reads_give_what_the_interpreter_gives() {
    let source = r#"
        fn config() { #{ rate_x: 2.5, names: ["a", "b"] } }
        fn setup(ctx) { #{ table: #{ a: 1, b: #{ deep: [1, 2, 3] } }, list: [10, 20, 30] } }
        fn half(x) { if x > 3 { return x / 2; } x * 2 }
        fn event(ctx) {
            let i = rand_int(-5, 5);
            let f = rand_float(-1, 1);
            let s = `k${i}-${i < 0}`;
            let l = ctx.state.list;
            #{
                customer_id: s + "!",
                a: i + 1, b: i - 2.5, c: i * 3, d: f / 3.0, e: 7 % 3, g: -f, h: !(i > 0),
                cmp: [i < 1, i <= 1, i > 1, i >= 1, i == 1, i != 1, 1 == 1.0, "a" < "b"],
                unit: () == (), map_vs_unit: ctx.state.table != (),
                // A property beside a constant is read in place: either side, any depth.
                in_place: [ctx.state.table.b == (), () != ctx.state.list, ctx.state.table.nope == (),
                           ctx.settings.rate_x > 2, 1 == ctx.state.table.a, ctx.time > 0,
                           ctx.seq >= 0, "x" + ctx.state.table.a],
                deep: ctx.state.table.b.deep[-1], missing: ctx.state.table.nope, first: l[0],
                rounded: (f * 100.0).round(), floor: f.floor(), ceil: f.ceiling(),
                int: (f * 1000.0).to_int(), float: i.to_float(), same: i.to_int(),
                half: half(i), both: i > 0 && f > 0.0, either: i > 0 || f > 0.0,
                coalesce: ctx.state.table.nope ?? "fallback",
                pick: ["x", "y", "z"].pick(), chance: chance(0.3), id: uuid(),
                at: iso8601(ctx.time), setting: ctx.settings.rate_x, seq: ctx.seq,
                switched: switch i { 1 => "one", -5 => "minus five", 0 => { let z = i * 2; z } _ => "other" },
                by_name: switch s { "k1-false" => 1, _ => 2 }, no_default: switch f > 0.0 { true => 1 },
                weighted: pick_weighted(#{ a: 1, b: 3 }), weighted_item: pick_weighted([7, 8], [1, 2]),
                normal: normal(0, 1), log_normal: log_normal(1.0, 0.5), expo: exponential(2),
                near: jitter(35.7, 51.4, 2), ln: (f + 2.0).ln(), abs: i.abs(),
            }
        }
    "#;
    assert!(same_either_way(source, 500));
}

#[test]
fn what_the_fast_path_gives_up_the_interpreter_makes_or_refuses_the_same_way() {
    // An overflow, a division by zero and a bad range, every few events: Rhai's errors.
    let source = r#"
        fn event(ctx) {
            let k = rand_int(0, 9);
            let x = if k == 0 { 9223372036854775807 + k + 1 } else if k == 1 { 5 / (k - 1) } else { k };
            let y = if k == 2 { rand_int(5, 1) } else { 0 };
            #{ customer_id: "c", x: x, y: y, s: `${[1, 2]}` }
        }
    "#;
    assert!(same_either_way(source, 200));
}

#[test]
fn loops_and_assignments_run_compiled() {
    let source = r#"
        fn setup(ctx) { #{ chances: [0.1, 0.2, 0.3], names: ["a", "b", "c"] } }
        fn choose(plan, r) {
            let i = 0;
            for c in plan.chances {
                if r < c { return plan.names[i]; }
                r -= c;
                i += 1;
            }
            ()
        }
        fn event(ctx) {
            let total = 0;
            for i in 0..rand_int(0, 5) { if i == 3 { continue; } total += i; }
            for (x, n) in [10, 20, 30] { if n == 2 { break; } total = total + x; }
            for k in 1..=2 { total *= k; }
            let e = #{ customer_id: "c", total: total, chosen: choose(ctx.state, rand_float()) };
            e.extra = total % 4;
            e.total += 1;
            e
        }
    "#;
    assert!(same_either_way(source, 300));
}

/// Runs `source` both ways like [`same_either_way`], and asserts that the fast path made every
/// event itself.
fn compiled_throughout(source: &str, count: i64) {
    let (mut fast, _) = set_up(source, 7, &[]);
    let (mut interpreted, _) = set_up(source, 7, &[]);
    interpreted.fast = None;
    assert_eq!(events(&mut fast, count), events(&mut interpreted, count));
    let path = fast.fast.as_ref().expect("event(ctx) compiled");
    assert_eq!(path.counts(), (count as u64, 0), "events run, given up");
}

#[test]
fn operators_on_either_kind_of_number_run_compiled() {
    // Each operator and numeric helper on integers, floats and the two mixed, and equality of
    // booleans and strings: the fast path tells the kinds apart by their tags.
    let source = r#"
        fn event(ctx) {
            let i = rand_int(-5, 5);
            let f = rand_float(-1, 1);
            let s = `k${i}`;
            #{
                customer_id: s,
                ints: [i + 2, i - 2, i * 3, i / 2, i % 3, -i, i.abs(), i.to_int(), i.to_float()],
                floats: [f + 0.5, f - 0.5, f * 3.0, f / 3.0, f % 0.5, -f, f.abs(), (f * 9.0).to_int(), f.to_float()],
                mixed: [i + f, f - i, i * f, f / 2, f < i, i >= f, f == i, i != f, i == 2.0],
                pow: [2.0 ** i, 2.0 ** f],
                eq: [s == "k1", "a" != s, (i > 0) == (f > 0.0), true != (i > 0), s < "k2", "k" >= s],
                later: follow_up(ctx, 1500.4, "later", #{ c: s }),
            }
        }
        fn later(ctx, data) { #{ customer_id: data.c } }
    "#;
    compiled_throughout(source, 300);
}

/// The compiled body of each function of `source`, by name and arity, as its `Debug` text.
fn compiled_bodies(source: &str) -> impl Fn(&str, usize) -> String {
    let engine = rhai::Engine::new_raw();
    let ast = engine.compile(source).unwrap();
    let compiled =
        super::compile::Compiled::from_ast(&ast, &[], super::compile::Vocabulary::Scenario);
    move |name, arity| {
        let index = compiled.runnable(name, arity).unwrap();
        format!("{:?}", compiled.functions[index].body)
    }
}

#[test]
fn property_chains_are_read_in_place_as_call_arguments_and_index_bases() {
    // `ctx.state.kinds[m]` and `ctx.state.merchants.pick()` read the table and the pool where
    // they lie, the chain after the call's other arguments: the compiled nodes say so, and the
    // events are the interpreter's, draw for draw, with argument draws among them. `len`,
    // `is_empty` and `in` read pools and maps of the state on the fast path too.
    let source = r#"
        fn config() { #{ topic: "t", key_field: "customer_id", lo: 2, hi: 9 } }
        fn setup(ctx) {
            #{
                merchants: ["m1", "m2", "m3"],
                kinds: #{ m1: "food", m2: "fuel", m3: "toys" },
                nested: #{ inner: #{ rate: 0.25, names: ["a", "b"] } },
            }
        }
        fn event(ctx) {
            let m = ctx.state.merchants.pick();
            let rec = #{ home: #{ lat: 1.5, tags: ["x", "y", "z"] } };
            let at = rand_int(-3, 2);
            #{
                customer_id: m,
                kind: ctx.state.kinds[m],
                drawn: ctx.state.merchants[at],
                between: rand_int(ctx.settings.lo, ctx.settings.hi),
                scaled: rand_float(ctx.state.nested.inner.rate, rand_float() + 1.0),
                count: ctx.state.merchants.len(),
                name: ctx.state.nested.inner.names.pick(),
                tag: rec.home.tags.pick(),
                tag_at: rec.home.tags[at],
                lat: rec.home.lat + rand_float(),
                known: m in ctx.state.kinds,
                listed: m in ctx.state.merchants,
                none: ctx.state.kinds.is_empty(),
                after: rec,
            }
        }
    "#;
    compiled_throughout(source, 300);

    let body = compiled_bodies(source)("event", 1);
    // `merchants.pick()`, `rand_int(lo, hi)`, `rand_float(rate, ..)`, `len`, `names.pick()`,
    // `tags.pick()`, `lat + ..`, the two `in`s and `is_empty`.
    assert_eq!(body.matches("NativeOnChain(").count(), 10, "{body}");
}

#[test]
fn a_block_of_one_statement_is_compiled_as_the_statement() {
    let source = r#"
        fn size(x) { if x > 10 { "big" } else { let y = x * 2; `small ${y}` } }
        fn twice(x) { x * 2 }
        fn event(ctx) {
            let n = rand_int(0, 20);
            #{ customer_id: "c", size: size(n), twice: twice(n), empty: if n > 5 { } else { n } }
        }
    "#;
    compiled_throughout(source, 200);
    let body = compiled_bodies(source);
    // `twice`'s body is the product itself; `size`'s `then` branch the constant, its `else`
    // branch (two statements) a block, and an empty branch still a block (worth `()`).
    assert!(
        body("twice", 1).starts_with("Some(Native(Mul"),
        "{}",
        body("twice", 1)
    );
    assert_eq!(
        body("size", 1).matches("Block(").count(),
        1,
        "{}",
        body("size", 1)
    );
    assert_eq!(
        body("event", 1).matches("Block(").count(),
        2,
        "{}",
        body("event", 1)
    );
}

#[test]
fn maps_given_back_are_filled_again_by_literals_with_their_keys_alone() {
    // Events of three shapes, one grown after it is built, some two to an arrival: each map
    // given back (by `events`) is taken only by a literal with its keys, and what the literals
    // give is the interpreter's.
    let source = r#"
        fn event(ctx) {
            let n = rand_int(0, 2);
            let e = if n == 0 {
                #{ customer_id: "a", x: 1 }
            } else if n == 1 {
                #{ customer_id: "b", y: [n, rand_float()] }
            } else {
                #{ customer_id: "c", x: rand_float() }
            };
            if n == 2 { e.extra = #{ inner: n }; }
            if rand_float() < 0.3 { [e, #{ customer_id: "d", x: n, when: ctx.time }] } else { e }
        }
    "#;
    compiled_throughout(source, 400);

    let map = |keys: &[&str]| -> rhai::Map {
        keys.iter()
            .map(|k| ((*k).into(), rhai::Dynamic::from_int(1)))
            .collect()
    };
    let mut spares = super::eval::SpareMaps::default();
    spares.give(map(&["a", "b"]));
    spares.give(map(&["a", "b", "c"]));
    assert!(spares.take_like(&map(&["a", "c"])).is_none(), "other keys");
    assert!(spares.take_like(&map(&["a"])).is_none(), "fewer keys");
    let taken = spares
        .take_like(&map(&["a", "b", "c"]))
        .expect("the same keys");
    assert_eq!(taken.len(), 3);
    assert!(
        spares.take_like(&map(&["a", "b", "c"])).is_none(),
        "taken once"
    );
    assert!(spares.take_like(&map(&["a", "b"])).is_some());
}

#[test]
fn while_loops_and_floats_in_text_run_compiled() {
    let source = r#"
        fn event(ctx) {
            let n = rand_int(0, 6);
            let steps = 0;
            while n > 0 {
                n -= 1;
                if n == 2 { continue; }
                steps += 1;
                if steps > 3 { break; }
            }
            let f = rand_float(-1000, 1000);
            #{
                customer_id: "c", steps: steps,
                text: `${f} ${f.round()} ${f * 1.0e-9} ${f * 1.0e20} ${f.floor() / 8.0}`,
            }
        }
    "#;
    compiled_throughout(source, 300);
}

#[test]
fn closures_methods_that_change_a_variable_and_memory_run_compiled() {
    let source = r#"
        fn setup(ctx) { #{ cities: [#{ name: "a", km: 10 }, #{ name: "b", km: 400 }, #{ name: "c", km: 900 }] } }
        fn far(ctx, min) { let cities = ctx.state.cities; cities.filter(|c| c.km >= min).map(|c| c.name) }
        fn spec(n) { #{ n: n, method: () } }
        fn event(ctx) {
            let delays = [0];
            for i in 1..rand_int(1, 5) { delays.push(rand_int(1000, 50000)); }
            delays.sort();
            let names = ["b", "a"];
            names.sort();
            let record = recall("k") ?? #{ seen: [], count: 0 };
            record.seen.push(ctx.seq);
            record.count += 1;
            if record.count > 3 { forget("k"); } else { remember("k", record); }
            let specs = delays.map(|d| spec(d)) + [spec(-1)];
            let shown = specs.map(|s| `${s.n}`);
            #{
                customer_id: "c", delays: delays, names: names, far: far(ctx, rand_int(0, 500)),
                seen: record.seen, has: record.seen.contains(2), empty: [].is_empty(),
                len: shown.len(), online: specs[0].method != "online", is_unit: specs[0].method == (),
                shown: shown, in_map: "n" in specs[0], in_text: "ab" in "cabd",
            }
        }
    "#;
    compiled_throughout(source, 300);
}

#[test]
fn memory_written_by_an_event_given_up_is_not_kept() {
    // The event remembers, then meets `while` (the interpreter's) one time in ten: what the
    // fast path remembered before giving up must not be committed besides the interpreter's.
    let source = r#"
        fn slow(n) { let i = 0; while i < 1 { i += 1; } n + 100 }
        fn event(ctx) {
            let n = (recall("n") ?? 0) + 1;
            remember("n", n);
            if rand_int(0, 9) == 0 { remember("n", slow(n)); }
            #{ customer_id: "c", n: n }
        }
    "#;
    assert!(same_either_way(source, 100));
}

#[test]
fn a_call_the_fast_path_cannot_make_gives_up_only_the_events_that_reach_it() {
    // `do .. while` is the interpreter's; `event` is compiled, and gives up when it calls `odd`.
    let source = r#"
        fn odd(x) { let out = []; do { out.push(x * rand_int(1, 9)); } while out.is_empty(); out }
        fn event(ctx) {
            let k = rand_int(0, 9);
            #{ customer_id: "c", k: k, odd: if k == 0 { odd(k) } else { [] } }
        }
    "#;
    assert!(same_either_way(source, 300));
    // A function the fast path cannot compile at all leaves `event` to the interpreter.
    let looping = r#"
        fn event(ctx) { let x = 0; do { x += rand_int(1, 2); } while x < 3; #{ customer_id: "c", x: x } }
    "#;
    assert!(!same_either_way(looping, 20));
}

#[test]
fn a_fast_path_that_gives_up_most_events_is_turned_off() {
    let source = r#"
        fn odd(x) { let out = []; do { out.push(x * rand_int(1, 9)); } while out.is_empty(); out }
        fn event(ctx) { #{ customer_id: "c", odd: odd(1) } }
    "#;
    assert!(same_either_way(source, 300));
    let (mut scenario, _) = set_up(source, 7, &[]);
    events(&mut scenario, 300);
    assert!(
        scenario.fast.is_none(),
        "still on after giving up every event"
    );
}

#[test]
fn a_runaway_recursion_is_stopped_by_the_interpreter_s_limit() {
    let source = r#"
        fn down(n) { down(n + 1) }
        fn event(ctx) { #{ customer_id: "c", x: down(0) } }
    "#;
    let err = compiled_event_error(source);
    assert!(err.contains("Stack overflow"), "{err}");
}

#[test]
fn every_shipped_scenario_makes_the_same_events_with_the_fast_path_or_without() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let (mut compiled, mut bails) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rhai") {
            continue;
        }
        let load = || {
            let mut scenario = Scenario::load(&path).unwrap();
            let defaults = scenario.config().unwrap();
            let settings =
                crate::settings::resolve(&crate::settings::UserInput::default(), &defaults)
                    .unwrap();
            scenario.setup(&settings, 11, 0).unwrap();
            scenario
        };
        let (mut fast, mut interpreted) = (load(), load());
        interpreted.fast = None;
        assert_eq!(
            events(&mut fast, 3000),
            events(&mut interpreted, 3000),
            "{}",
            path.display()
        );
        if let Some(fast) = &fast.fast {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            bails.push((name.clone(), fast.counts().1));
            compiled.push(name);
        }
    }
    // Still on after 300 events: the fast path made most of them.
    for name in ["hello.rhai", "darooghe.rhai"] {
        assert!(compiled.contains(&name.to_string()), "{compiled:?}");
    }
    eprintln!("compiled: {compiled:?}");
    // darooghe's fraud patterns (closures, `push`, memory, trigonometry) run compiled too.
    assert!(
        bails.contains(&("darooghe.rhai".to_string(), 0)),
        "{bails:?}"
    );
}

#[test]
fn a_loop_over_the_operations_budget_is_stopped_as_the_interpreter_stops_it() {
    // About 400,000 iterations: under a million on a count of calls alone, over it on Rhai's.
    let source = r#"
        fn event(ctx) {
            let total = 0;
            for i in 0..400000 { total += i; }
            #{ customer_id: "c", total: total }
        }
    "#;
    let err = compiled_event_error(source);
    assert!(err.contains("operations"), "{err}");
}

/// The events and follow-ups of `count` arrivals of `scenario`, every follow-up run at once.
fn with_follow_ups(scenario: &mut Scenario, count: i64) -> Vec<String> {
    let mut lines = Vec::new();
    for seq in 0..count {
        lines.extend(events_from(scenario, seq, |s| {
            s.event(1_700_000_000_000 + seq, seq)
        }));
        let effects = scenario.take_effects();
        for (k, mut scheduled) in effects.scheduled.into_iter().enumerate() {
            scheduled.id = 1_000_000 + seq as u64 * 10 + k as u64;
            lines.extend(events_from(scenario, seq, |s| s.follow_up(scheduled, seq)));
            scenario.take_effects();
        }
    }
    lines
}

fn events_from(
    scenario: &mut Scenario,
    seq: i64,
    make: impl FnOnce(&mut Scenario) -> Result<rhai::Dynamic, crate::script::ScriptError>,
) -> Vec<String> {
    match make(scenario) {
        Ok(event) if event.is_map() => {
            let mut encoder = EventEncoder::new("customer_id");
            let _ = encoder.encode(&event.cast::<rhai::Map>(), seq);
            vec![String::from_utf8_lossy(&encoder.payload).into_owned()]
        }
        Ok(other) => vec![format!("{other:?}")],
        Err(err) => vec![format!("{:?}", miette::Report::new(err))],
    }
}

#[test]
fn follow_ups_run_compiled_and_make_the_interpreter_s_events() {
    let source = r#"
        fn later(ctx, data) {
            #{ customer_id: data.c, n: data.n + rand_int(0, 9), at: iso8601(ctx.time), id: uuid() }
        }
        fn odd(x) { let out = []; do { out.push(x * rand_int(1, 9)); } while out.is_empty(); out }
        fn event(ctx) {
            if rand_float() < 0.5 { follow_up(ctx, 60000, "later", #{ c: `c${ctx.seq}`, n: ctx.seq }); }
            // One event in ten is given up after scheduling: its call must not be scheduled twice.
            let extra = if rand_int(0, 9) == 0 { odd(1) } else { [] };
            #{ customer_id: "c", r: rand_int(0, 99), extra: extra }
        }
    "#;
    let (mut fast, _) = set_up(source, 7, &[]);
    let (mut interpreted, _) = set_up(source, 7, &[]);
    interpreted.fast = None;
    let a = with_follow_ups(&mut fast, 200);
    assert!(a.len() > 250, "{} lines", a.len());
    assert_eq!(a, with_follow_ups(&mut interpreted, 200));
    assert!(fast.fast.is_some(), "the fast path gave up");
}

/// `source` set up with `setup(ctx)` on the fast path when `fast`, on the interpreter when not:
/// the scenario, or the setup's error.
fn set_up_either_way(source: &str, fast: bool) -> Result<Scenario, String> {
    let mut scenario = Scenario::from_source(Path::new("test.rhai"), source).unwrap();
    if !fast {
        scenario.fast = None;
    }
    let defaults = scenario.config().unwrap();
    let settings =
        crate::settings::resolve(&crate::settings::UserInput::default(), &defaults).unwrap();
    match scenario.setup(&settings, 7, 0) {
        Ok(()) => Ok(scenario),
        Err(err) => Err(format!("{:?}", miette::Report::new(err))),
    }
}

#[test]
fn setup_runs_compiled_and_builds_the_interpreter_s_state() {
    // Pushes, keys set new and again, positions set (one from the end), `+=` on an entry,
    // helper draws and script functions: the seed port's way of building its tables.
    let source = r#"
        fn place(i) { #{ id: `p${i}`, lat: 35.0 + rand_float(0.0, 1.0) } }
        fn setup(ctx) {
            let places = [];
            let kinds = #{};
            let counts = #{ a: 0, b: 0 };
            for i in 0..50 {
                let p = place(i);
                places.push(p);
                let id = p.id;
                kinds[id] = ["x", "y", "z"].pick();
                let k = if i % 3 == 0 { "a" } else { "b" };
                counts[k] += 1;
            }
            kinds["p0"] = "again";
            let last = -1;
            places[last] = #{ id: "end", lat: 0.0 };
            places[0] = "first";
            #{ places: places, kinds: kinds, counts: counts }
        }
        fn event(ctx) {
            let p = ctx.state.places[ctx.seq % 50];
            #{ customer_id: "c", p: p, kind: ctx.state.kinds[`p${ctx.seq % 50}`],
               counts: ctx.state.counts }
        }
    "#;
    let mut fast = set_up_either_way(source, true).unwrap();
    assert!(fast.setup_compiled, "setup ran on the fast path");
    let mut interpreted = set_up_either_way(source, false).unwrap();
    assert!(!interpreted.setup_compiled);
    assert_eq!(events(&mut fast, 60), events(&mut interpreted, 60));
}

/// A setup that pushes `count` strings of 1,000 bytes, after `before` (statements).
fn pushing(before: &str, count: usize) -> String {
    format!(
        r#"
        fn setup(ctx) {{
            let big = "";
            for i in 0..100 {{ big = `${{big}}0123456789`; }}
            {before}
            let all = [];
            for i in 0..{count} {{ all.push(big); }}
            #{{ n: all.len() }}
        }}
        fn event(ctx) {{ #{{ customer_id: "c", n: ctx.state.n }} }}
        "#
    )
}

#[test]
fn a_setup_growing_past_the_size_limit_is_stopped_with_the_interpreter_s_error() {
    // 1,048 strings of 1,000 bytes are within the 1 MiB of strings; 1,049 are not.
    for fast in [true, false] {
        let scenario = set_up_either_way(&pushing("", 1048), fast).unwrap();
        assert_eq!(scenario.setup_compiled, fast);
        let err = set_up_either_way(&pushing("", 1049), fast)
            .err()
            .expect("setup fails");
        assert!(err.contains("Length of string"), "{err}");
        assert!(err.contains("setup"), "{err}");
    }
    // The same through keys of a map, read after (Rhai checks a map when a method has it).
    let by_key = |count: usize| {
        pushing("", 0)
            .replace(
                "for i in 0..0 { all.push(big); }",
                &format!("let m = #{{}}; for i in 0..{count} {{ let k = `${{i}}`; m[k] = big; }}"),
            )
            .replace("all.len()", "m.len()")
    };
    assert!(
        set_up_either_way(&by_key(1040), true)
            .unwrap()
            .setup_compiled
    );
    let err = set_up_either_way(&by_key(1049), true)
        .err()
        .expect("setup fails");
    assert!(err.contains("Length of string"), "{err}");
}

#[test]
fn a_variable_given_a_new_value_is_counted_anew() {
    // `all` is given a full array after one push: what it held before must not count, nor
    // may the push before make the new value look smaller than it is.
    let refilled = pushing("let full = []; for i in 0..1040 { full.push(big); }", 0)
        .replace("let all = [];", "let all = []; all.push(1); all = full;")
        .replace(
            "for i in 0..0 { all.push(big); }",
            "for i in 0..9 { all.push(big); }",
        );
    let err = set_up_either_way(&refilled, true)
        .err()
        .expect("setup fails");
    assert!(err.contains("Length of string"), "{err}");
    // Emptied after it grew near the limit, it may grow again.
    let emptied = pushing("", 1000).replace(
        "#{ n: all.len() }",
        "all = []; for i in 0..1000 { all.push(big); } #{ n: all.len() }",
    );
    assert!(set_up_either_way(&emptied, true).unwrap().setup_compiled);
}

#[test]
fn entries_set_through_a_longer_chain_are_set_as_rhai_sets_them() {
    // `g[1][0] = v` and `ps[0].x = v` are not index assignments to a variable's own entry:
    // whichever path runs them, the events are the interpreter's.
    let source = r#"
        fn event(ctx) {
            let g = [[0, 0], [0, 0]];
            let i = 1;
            g[i][0] = 5;
            let ps = [#{ x: 1 }, #{ x: 2 }];
            ps[0].x = 7;
            ps[i] = #{ x: ctx.seq };
            let m = #{ a: #{ b: 1 } };
            m["a"]["b"] = 3;
            #{ customer_id: "c", g: g, ps: ps, m: m }
        }
    "#;
    same_either_way(source, 5);
    let (mut scenario, _) = set_up(source, 7, &[]);
    assert_eq!(
        events(&mut scenario, 1),
        [r#"{"customer_id":"c","g":[[0,0],[5,0]],"m":{"a":{"b":3}},"ps":[{"x":7},{"x":0}]}"#]
    );
}

#[test]
fn a_setup_given_up_after_its_draws_is_made_again_from_the_same_draws() {
    // `later` uses `loop`, which the fast path does not compile: setup draws, then is given
    // up when it reaches the call, and the interpreter runs it from the start.
    let source = r#"
        fn later(n) { let i = 0; loop { i += 1; if i >= n { break; } } i }
        fn setup(ctx) {
            let first = rand_int(0, 1000000000);
            remember("setup", first);
            #{ first: first, then: later(3), second: rand_int(0, 1000000000) }
        }
        fn event(ctx) { #{ customer_id: "c", first: ctx.state.first, second: ctx.state.second,
                           then: ctx.state.then, kept: recall("setup") } }
    "#;
    let mut fast = set_up_either_way(source, true).unwrap();
    assert!(!fast.setup_compiled, "given up at `later`");
    let mut interpreted = set_up_either_way(source, false).unwrap();
    assert_eq!(events(&mut fast, 3), events(&mut interpreted, 3));
}

/// `ctx.state.name` and `ctx.settings.name` are read once for each state and settings (see
/// `compile::Folded`), and still give what the interpreter gives: a function handed a map
/// shaped like `ctx` reads that map; a missing entry is `()`; a worker reads its own copies; and
/// a scenario set up again with other settings reads the new ones.
#[test]
fn reads_through_ctx_are_the_entries_of_the_scenario_s_own_state_and_settings() {
    let source = r#"
        fn config() { #{ rate_x: 2.5 } }
        fn setup(ctx) { #{ list: [1, 2], plan: #{ fee: 3 }, at_setup: ctx.settings.rate_x } }
        fn part(c) {
            [c.settings.rate_x, c.state.plan, c.state.plan.fee, c.state.missing, c.state.list.len()]
        }
        fn event(ctx) {
            let fake = #{ settings: #{ rate_x: -1 }, state: #{ plan: #{ fee: "f" }, list: [9] } };
            #{ customer_id: "c", real: part(ctx), fake: part(fake), direct: ctx.settings.rate_x,
               at_setup: ctx.state.at_setup }
        }
    "#;
    let expected = |rate: &str| {
        format!(
            r#"{{"at_setup":{rate},"customer_id":"c","direct":{rate},"fake":[-1,{{"fee":"f"}},"f",null,1],"real":[{rate},{{"fee":3}},3,null,2]}}"#
        )
    };
    assert!(same_either_way(source, 3));
    let (mut scenario, _) = set_up(source, 7, &[]);
    assert_eq!(events(&mut scenario, 2), vec![expected("2.5"); 2]);
    let mut worker = scenario.fork().unwrap();
    assert_eq!(events(&mut worker, 1), vec![expected("2.5")]);
    // The same scenario, set up again under other settings, which its `setup` reads (while
    // the entries read for the first are still there).
    let (_, other) = set_up(source, 7, &[("RATE_X", "4.0")]);
    scenario.setup(&other, 7, 0).unwrap();
    assert_eq!(events(&mut scenario, 1), vec![expected("4.0")]);
    // All made on the fast path: none given up to the interpreter.
    assert!(
        matches!(
            scenario.fast_path(),
            super::super::FastPathUse::On { given_up: 0, .. }
        ),
        "{:?}",
        scenario.fast_path()
    );
}

#[test]
fn a_variable_read_for_the_last_time_is_moved_where_its_value_is_kept() {
    // `place` (a map), `tag`, the state's `rec`, `acc` (after its loop) and `m` (after its
    // change) are read once by the last statement using them, where the value is kept: moved.
    // `n` is read twice there: copied; `k` is copied there and moved where it is read last; `x`
    // is read once, but in a loop: copied each turn.
    // `rec` is read-only where it came from (the state), so its move is a copy. The events are
    // the interpreter's either way.
    let source = r#"
        fn setup(ctx) { #{ recs: [#{ id: "a" }, #{ id: "b" }] } }
        fn grow(m, x) { m.extra = x; m }
        fn keep(r) { r }
        fn event(ctx) {
            let n = rand_int(0, 9);
            let k = `c${n}`;
            let place = #{ lat: rand_float(0, 1), lng: 2.0 };
            let tag = if n > 4 { "big" } else { "small" };
            let rec = ctx.state.recs.pick();
            let acc = [];
            for i in 0..2 { acc.push(k); }
            let m = #{ v: n };
            m.w = 1;
            let x = #{ a: n };
            let out = [];
            for i in 0..2 { out.push(keep(x)); }
            let event = #{ customer_id: k, place: place, tag: grow(#{ t: tag }, n), n: n, rec: keep(rec), acc: acc, out: out };
            event.again = k;
            event.m = m;
            event
        }
    "#;
    compiled_throughout(source, 200);
    let body = compiled_bodies(source)("event", 1);
    for moved in [
        "Last(2)", "Last(3)", "Last(4)", "Last(5)", "Last(6)", "Last(8)", "Last(10)",
    ] {
        assert_eq!(body.matches(moved).count(), 1, "{moved} in {body}");
    }
    assert_eq!(body.matches("Last(").count(), 7, "{body}");
    // `keep(x)` in the loop, whatever `keep`'s index.
    assert!(body.contains(", [Var(9)])])), Let(12"), "{body}");
    assert!(body.contains("[Var(2), Last(3), "), "{body}");
}

#[test]
fn a_variable_handed_to_a_function_that_only_reads_it_is_lent_not_copied() {
    // `reads`, `pair`, `keeps` (which copies it into a map) and `passes` (which hands it on to
    // `reads`) only read their parameters: `rec`, `n` and `own` are lent to them. `changes`
    // changes its parameter: `own` is copied for it. In `pair(1, n, if .. { n += 1; n } ..)` another argument
    // changes `n`, which Rhai reads first: copied. The events are the interpreter's either way,
    // and what was lent is whole after each call.
    let source = r#"
        fn setup(ctx) { #{ recs: [#{ id: "a" }, #{ id: "b" }] } }
        fn reads(r, n) { `${r.id}-${n}` }
        fn changes(r) { r.id = "x"; r.id }
        fn passes(r) { reads(r, 1) }
        fn keeps(r) { #{ kept: r } }
        fn pair(a, b, c) { a * 10000 + b * 100 + c }
        fn event(ctx) {
            let rec = ctx.state.recs.pick();
            let n = rand_int(0, 9);
            let own = #{ id: `o${n}` };
            let a = reads(rec, n);
            let b = changes(own);
            let c = passes(rec);
            let d = keeps(own);
            let e = reads(rec, rec.id);
            let g = pair(1, n, if n > 4 { n += 1; n } else { 0 });
            #{ customer_id: a, b: b, c: c, d: d, e: e, g: g, rec: rec, n: n, own: own }
        }
    "#;
    compiled_throughout(source, 200);
    let bodies = compiled_bodies(source);
    let event = bodies("event", 1);
    assert_eq!(event.matches("Lending(").count(), 4, "{event}");
    assert!(event.contains("[Lent(1), Lent(2)]"), "{event}");
    assert!(event.contains("[Lent(1), Property(Var(1)"), "{event}");
    assert!(event.contains("[Const(1), Var(2), If("), "{event}");
    assert_eq!(event.matches("[Var(3)])").count(), 1, "{event}");
    assert_eq!(event.matches("[Lent(3)])").count(), 1, "{event}");
    let passes = bodies("passes", 1);
    assert!(passes.contains("Lending("), "{passes}");
}

#[test]
fn a_call_whose_first_variable_another_argument_changes_is_left_to_the_interpreter() {
    // Rhai reads `n`, given first, after the block that changes it: 606 for n = 5, where reading
    // it in order would give 506.
    let source = r#"
        fn pair(a, b) { a * 100 + b }
        fn odd(n) { pair(n, if n > 4 { n += 1; n } else { 0 }) }
        fn event(ctx) {
            let n = rand_int(0, 9);
            #{ customer_id: "c", n: n, g: odd(n) }
        }
    "#;
    assert!(same_either_way(source, 100));
    let engine = rhai::Engine::new_raw();
    let compiled = super::compile::Compiled::from_ast(
        &engine.compile(source).unwrap(),
        &[],
        super::compile::Vocabulary::Scenario,
    );
    assert_eq!(compiled.runnable("odd", 1), None, "odd is not compiled");
    assert!(compiled.runnable("pair", 2).is_some());
}

#[test]
fn each_event_s_ctx_carries_its_own_time_and_number_whether_kept_or_made_anew() {
    // The fast path keeps the last event's `ctx` for the next one, given its time and number;
    // every third event moves `ctx` out of its parameter (into `held`), so the next one is made
    // anew. The events are the interpreter's either way.
    let source = r#"
        fn event(ctx) {
            let t = ctx.time;
            let s = ctx.seq;
            let held = if s % 3 == 0 { [ctx] } else { [] };
            #{ customer_id: `c${s}`, t: t, s: s, at: iso8601(ctx_time(t)), held: held.len() }
        }
        fn ctx_time(t) { t }
    "#;
    compiled_throughout(source, 30);
    let body = compiled_bodies(source)("event", 1);
    assert!(body.contains("Array([Last(0)])"), "{body}");
}
