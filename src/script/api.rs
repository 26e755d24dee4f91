//! The scripting API: every native helper a scenario can call, registered once per engine.
//!
//! All randomness goes through the one seeded generator handed in here, so a run is reproduced
//! by its seed. Helpers take numbers as either integers or floats (Rhai does not convert between
//! them on its own), and report misuse (an empty array, a negative weight) as script errors at the
//! call site. `docs/scripting.md` mirrors this list.

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, Variant, FLOAT, INT};

use super::draws;
use crate::sync::lock;

type Fallible<T> = Result<T, Box<EvalAltResult>>;

pub use super::draws::SharedRng;

fn fail<T>(message: impl Into<String>) -> Fallible<T> {
    Err(message.into().into())
}

/// Registers `f` under `name` with a `Dynamic` parameter (which reports a non-number with the
/// helper's own message) and with an integer and a float one. Rhai finds exact types with its
/// first look-up, while a `Dynamic` parameter makes it search every combination of argument
/// types first, on each event.
fn numeric1<R: Variant + Clone>(
    engine: &mut Engine,
    name: &str,
    f: impl Fn(Dynamic) -> Fallible<R> + Clone + Send + Sync + 'static,
) {
    engine.register_fn(name, f.clone());
    let g = f.clone();
    engine.register_fn(name, move |a: FLOAT| g(Dynamic::from_float(a)));
    engine.register_fn(name, move |a: INT| f(Dynamic::from_int(a)));
}

/// [`numeric1`] for two number parameters: every mix of integers and floats.
fn numeric2<R: Variant + Clone>(
    engine: &mut Engine,
    name: &str,
    f: impl Fn(Dynamic, Dynamic) -> Fallible<R> + Clone + Send + Sync + 'static,
) {
    engine.register_fn(name, f.clone());
    let g = f.clone();
    engine.register_fn(name, move |a: FLOAT, b: FLOAT| g(a.into(), b.into()));
    let g = f.clone();
    engine.register_fn(name, move |a: INT, b: FLOAT| g(a.into(), b.into()));
    let g = f.clone();
    engine.register_fn(name, move |a: FLOAT, b: INT| g(a.into(), b.into()));
    engine.register_fn(name, move |a: INT, b: INT| f(a.into(), b.into()));
}

/// [`numeric1`] for three number parameters: every mix of integers and floats.
fn numeric3<R: Variant + Clone>(
    engine: &mut Engine,
    name: &str,
    f: impl Fn(Dynamic, Dynamic, Dynamic) -> Fallible<R> + Clone + Send + Sync + 'static,
) {
    engine.register_fn(name, f.clone());
    macro_rules! typed {
        ($a:ty, $b:ty, $c:ty) => {{
            let g = f.clone();
            engine.register_fn(name, move |a: $a, b: $b, c: $c| {
                g(a.into(), b.into(), c.into())
            });
        }};
    }
    typed!(FLOAT, FLOAT, FLOAT);
    typed!(FLOAT, FLOAT, INT);
    typed!(FLOAT, INT, FLOAT);
    typed!(FLOAT, INT, INT);
    typed!(INT, FLOAT, FLOAT);
    typed!(INT, FLOAT, INT);
    typed!(INT, INT, FLOAT);
    typed!(INT, INT, INT);
}

/// Names of every function the engine registers for scripts (here, in `pool.rs`, `state/mod.rs`,
/// `memory.rs` and `follow_up.rs`), for suggestions when a script calls one that does not exist. A test holds this
/// list to the engine's own registrations and to docs/scripting.md.
pub const HELPERS: &[&str] = &[
    "rand_float",
    "rand_int",
    "chance",
    "pick",
    "pool",
    "pick_zipf",
    "pick_weighted",
    "normal",
    "log_normal",
    "exponential",
    "uuid",
    "iso8601",
    "hour_of",
    "weekday_of",
    "local_time",
    "jitter",
    "remember",
    "recall",
    "forget",
    "memory_size",
    "follow_up",
    "len",
    "is_empty",
    "push",
    // Read functions of arrays and maps, for pools and the maps of the state (see state/mod.rs).
    "contains",
    "get",
    "filter",
    "map",
    "reduce",
    "reduce_rev",
    "some",
    "all",
    "find",
    "find_map",
    "index_of",
    "extract",
    "keys",
    "values",
    "to_json",
    "to_string",
    "to_debug",
];

/// Registers every helper on `engine`, drawing from `rng`.
pub fn register(engine: &mut Engine, rng: &SharedRng) {
    register_draws(engine, rng);
    register_choices(engine, rng);
    register_time(engine);
    register_local_time(engine);
    register_geo(engine, rng);
}

fn register_draws(engine: &mut Engine, rng: &SharedRng) {
    // rand_float() -> a float in [0, 1).
    let r = rng.clone();
    engine.register_fn("rand_float", move || -> FLOAT {
        draws::rand_float(&mut lock(&r))
    });
    // rand_float(lo, hi) -> a float in [lo, hi).
    let r = rng.clone();
    numeric2(engine, "rand_float", move |lo: Dynamic, hi: Dynamic| {
        draws::rand_float_in(&mut lock(&r), &lo, &hi)
    });
    // rand_int(lo, hi) -> an integer in [lo, hi], both ends included.
    let r = rng.clone();
    engine.register_fn("rand_int", move |lo: INT, hi: INT| {
        draws::rand_int(&mut lock(&r), lo, hi)
    });
    // chance(p) -> true with probability p.
    let r = rng.clone();
    numeric1(engine, "chance", move |p: Dynamic| {
        draws::chance(&mut lock(&r), &p)
    });
    // normal(mean, sd) -> a normal draw.
    let r = rng.clone();
    numeric2(engine, "normal", move |mean: Dynamic, sd: Dynamic| {
        draws::normal(&mut lock(&r), &mean, &sd)
    });
    // log_normal(mu, sigma) -> exp of a normal(mu, sigma) draw; its median is exp(mu).
    let r = rng.clone();
    numeric2(engine, "log_normal", move |mu: Dynamic, sigma: Dynamic| {
        draws::log_normal(&mut lock(&r), &mu, &sigma)
    });
    // exponential(rate) -> an exponential draw with mean 1 / rate.
    let r = rng.clone();
    numeric1(engine, "exponential", move |rate: Dynamic| {
        draws::exponential(&mut lock(&r), &rate)
    });
    // uuid() -> a version-4 UUID string from the seeded generator.
    let r = rng.clone();
    engine.register_fn("uuid", move || -> String { draws::uuid(&mut lock(&r)) });
}

fn register_choices(engine: &mut Engine, rng: &SharedRng) {
    // pick(array) -> one element, uniformly. Method style (`pool.pick()`) avoids copying the array.
    let r = rng.clone();
    engine.register_fn("pick", move |items: &mut Array| {
        draws::pick(&mut lock(&r), items)
    });
    // pick_weighted(#{ key: weight, ... }) -> a key, with probability proportional to its weight.
    let r = rng.clone();
    engine.register_fn("pick_weighted", move |weights: &mut Map| {
        draws::pick_weighted_key(&mut lock(&r), weights)
    });
    // pick_weighted(items, weights) -> an item, with probability proportional to its weight.
    let r = rng.clone();
    engine.register_fn("pick_weighted", move |items: &mut Array, weights: Array| {
        draws::pick_weighted_item(&mut lock(&r), items, &weights)
    });
}

fn utc(ms: INT) -> Fallible<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .map_or_else(|| fail(format!("time {ms} is out of range")), Ok)
}

fn zone(name: &str) -> Fallible<Tz> {
    name.parse::<Tz>()
        .or_else(|_| fail(format!("unknown time zone `{name}`")))
}

fn register_time(engine: &mut Engine) {
    // iso8601(ms) -> "2024-01-15T10:30:45.123Z", UTC with millisecond precision.
    engine.register_fn("iso8601", draws::iso8601);
    // hour_of(ms) -> the UTC hour 0-23; hour_of(ms, "Asia/Tehran") -> the local hour.
    engine.register_fn("hour_of", |ms: INT| -> Fallible<INT> {
        Ok(utc(ms)?.hour() as INT)
    });
    engine.register_fn("hour_of", |ms: INT, tz: &str| -> Fallible<INT> {
        Ok(utc(ms)?.with_timezone(&zone(tz)?).hour() as INT)
    });
    // weekday_of(ms) -> 0 for Monday to 6 for Sunday (UTC); weekday_of(ms, tz) in a zone.
    engine.register_fn("weekday_of", |ms: INT| -> Fallible<INT> {
        Ok(utc(ms)?.weekday().num_days_from_monday() as INT)
    });
    engine.register_fn("weekday_of", |ms: INT, tz: &str| -> Fallible<INT> {
        Ok(utc(ms)?
            .with_timezone(&zone(tz)?)
            .weekday()
            .num_days_from_monday() as INT)
    });
}

fn date_parts<Z: chrono::TimeZone>(time: &DateTime<Z>) -> Map {
    let mut parts = Map::new();
    let mut put = |key: &str, value: INT| {
        parts.insert(key.into(), Dynamic::from_int(value));
    };
    put("year", time.year() as INT);
    put("month", time.month() as INT);
    put("day", time.day() as INT);
    put("hour", time.hour() as INT);
    put("minute", time.minute() as INT);
    put("second", time.second() as INT);
    put("weekday", time.weekday().num_days_from_monday() as INT);
    put("day_of_year", time.ordinal() as INT);
    parts
}

fn register_local_time(engine: &mut Engine) {
    // local_time(ms) / local_time(ms, "Asia/Tehran") -> #{year, month, day, hour, minute,
    // second, weekday (0 = Monday), day_of_year}: the calendar in UTC or a zone.
    engine.register_fn("local_time", |ms: INT| -> Fallible<Map> {
        Ok(date_parts(&utc(ms)?))
    });
    engine.register_fn("local_time", |ms: INT, tz: &str| -> Fallible<Map> {
        Ok(date_parts(&utc(ms)?.with_timezone(&zone(tz)?)))
    });
}

fn register_geo(engine: &mut Engine, rng: &SharedRng) {
    // jitter(lat, lng, km) -> #{lat, lng}: a point uniformly within `km` of the given one,
    // rounded to 4 decimals (about 10 m).
    let r = rng.clone();
    numeric3(
        engine,
        "jitter",
        move |lat: Dynamic, lng: Dynamic, km: Dynamic| {
            draws::jitter(&mut lock(&r), &lat, &lng, &km)
        },
    );
}
