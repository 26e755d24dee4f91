//! What the random helpers do, once: the functions registered for scripts (`api.rs`) and the
//! fast path (`fast/`) both call these, so a draw is the same whoever makes the event. (The
//! draws from pools are in `pool.rs`, beside the pool.)
//!
//! Numbers come as `Dynamic` where a helper takes either an integer or a float; misuse (an empty
//! array, a negative weight) is an error message, which Rhai reports at the call site.

use rand::Rng;
use rand_distr::{Distribution, Exp, LogNormal, Normal};
use rhai::{Array, Dynamic, EvalAltResult, ImmutableString, Map, FLOAT, INT};

use crate::rng::SimRng;

/// The generator shared by every helper of one engine. A mutex rather than a `RefCell` because
/// the engine is built with Rhai's `sync` feature, so that a new version of a script can be
/// compiled and set up on another thread while the old one keeps streaming.
pub type SharedRng = std::sync::Arc<std::sync::Mutex<SimRng>>;

/// A helper's result, or the error Rhai reports for it.
pub type Fallible<T> = Result<T, Box<EvalAltResult>>;

fn fail<T>(message: impl Into<String>) -> Fallible<T> {
    Err(message.into().into())
}

/// A number, as it is held.
#[derive(Debug, Clone, Copy)]
pub enum Number {
    /// An integer.
    Int(INT),
    /// A float.
    Float(FLOAT),
}

impl Number {
    /// The number as a float.
    pub fn as_float(self) -> FLOAT {
        match self {
            Number::Int(i) => i as FLOAT,
            Number::Float(f) => f,
        }
    }
}

/// `value` as a number, `None` for anything else. The kind is read from the value's tag first:
/// a failed `as_int` or `as_float` also makes the type's name for its error, about 40
/// instructions, and the fast path's operators met a float where they tried an integer first
/// about 30 times a seed port event (valgrind). The number is then read with `read_lock`, which
/// is inlined here, where `as_float` and `as_int` are calls of about 23 instructions each, some
/// 37 a seed port event (-2.1% of its instructions).
pub fn numeric(value: &Dynamic) -> Option<Number> {
    if value.is_int() {
        value.read_lock::<INT>().map(|x| Number::Int(*x))
    } else if value.is_float() {
        value.read_lock::<FLOAT>().map(|x| Number::Float(*x))
    } else {
        None
    }
}

/// A number argument given as an integer or a float.
pub fn number(value: &Dynamic, helper: &str) -> Fallible<FLOAT> {
    match numeric(value) {
        Some(x) => Ok(x.as_float()),
        None => fail(format!(
            "{helper}: expected a number, got {}",
            value.type_name()
        )),
    }
}

/// `rand_float()`: a float in [0, 1).
pub fn rand_float(rng: &mut SimRng) -> FLOAT {
    rng.random()
}

/// `rand_float(lo, hi)`: a float in [lo, hi).
pub fn rand_float_in(rng: &mut SimRng, lo: &Dynamic, hi: &Dynamic) -> Fallible<FLOAT> {
    let (lo, hi) = (number(lo, "rand_float")?, number(hi, "rand_float")?);
    if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
        return fail(format!("rand_float: need lo < hi, got {lo} and {hi}"));
    }
    Ok(rng.random_range(lo..hi))
}

/// `rand_int(lo, hi)`: an integer in [lo, hi], both ends included.
pub fn rand_int(rng: &mut SimRng, lo: INT, hi: INT) -> Fallible<INT> {
    if lo > hi {
        return fail(format!("rand_int: need lo <= hi, got {lo} and {hi}"));
    }
    Ok(rng.random_range(lo..=hi))
}

/// `chance(p)`: true with probability p.
pub fn chance(rng: &mut SimRng, p: &Dynamic) -> Fallible<bool> {
    let p = number(p, "chance")?;
    Ok(rng.random_bool(p.clamp(0.0, 1.0)))
}

/// `normal(mean, sd)`: a normal draw.
pub fn normal(rng: &mut SimRng, mean: &Dynamic, sd: &Dynamic) -> Fallible<FLOAT> {
    let (mean, sd) = (number(mean, "normal")?, number(sd, "normal")?);
    let dist = Normal::new(mean, sd).or_else(|e| fail(format!("normal: {e}")))?;
    Ok(dist.sample(rng))
}

/// `log_normal(mu, sigma)`: exp of a normal(mu, sigma) draw; its median is exp(mu).
pub fn log_normal(rng: &mut SimRng, mu: &Dynamic, sigma: &Dynamic) -> Fallible<FLOAT> {
    let (mu, sigma) = (number(mu, "log_normal")?, number(sigma, "log_normal")?);
    let dist = LogNormal::new(mu, sigma).or_else(|e| fail(format!("log_normal: {e}")))?;
    Ok(dist.sample(rng))
}

/// `exponential(rate)`: an exponential draw with mean 1 / rate.
pub fn exponential(rng: &mut SimRng, rate: &Dynamic) -> Fallible<FLOAT> {
    let rate = number(rate, "exponential")?;
    let dist = Exp::new(rate).or_else(|e| fail(format!("exponential: {e}")))?;
    Ok(dist.sample(rng))
}

/// `uuid()`: a version-4 UUID string from the seeded generator.
pub fn uuid(rng: &mut SimRng) -> String {
    let bytes: [u8; 16] = rng.random();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// `array.pick()`: one element, uniformly.
pub fn pick(rng: &mut SimRng, items: &Array) -> Fallible<Dynamic> {
    if items.is_empty() {
        return fail("pick: the array is empty");
    }
    let index = rng.random_range(0..items.len());
    Ok(items[index].clone())
}

/// `pick_weighted(#{ key: weight })`: a key, with probability proportional to its weight.
pub fn pick_weighted_key(rng: &mut SimRng, weights: &Map) -> Fallible<String> {
    let total = weights_total(weights)?;
    let entries = weights
        .iter()
        .map(|(key, weight)| (key, number(weight, "pick_weighted").unwrap_or(0.0)));
    Ok(weighted_draw(rng, entries, total)
        .map(ToString::to_string)
        .unwrap_or_default())
}

/// The sum of a `pick_weighted` map's weights, or the error of a weight that is not a finite
/// number of at least zero, or of weights that add up to zero.
fn weights_total(weights: &Map) -> Fallible<FLOAT> {
    let mut total = 0.0;
    for (key, weight) in weights.iter() {
        let weight = number(weight, "pick_weighted")?;
        if weight.is_nan() || weight < 0.0 || weight.is_infinite() {
            return fail(format!("pick_weighted: weight of `{key}` is {weight}"));
        }
        total += weight;
    }
    if total <= 0.0 {
        return fail("pick_weighted: the weights add up to zero");
    }
    Ok(total)
}

/// One draw from `entries` (an item and its weight, in order) whose weights add up to `total`.
fn weighted_draw<T>(
    rng: &mut SimRng,
    entries: impl Iterator<Item = (T, FLOAT)>,
    total: FLOAT,
) -> Option<T> {
    let mut target = rng.random_range(0.0..total);
    let mut last = None;
    for (item, weight) in entries {
        if weight > 0.0 {
            if target < weight {
                return Some(item);
            }
            target -= weight;
            last = Some(item);
        }
    }
    // Rounding can leave `target` a hair past the last weight.
    last
}

/// A `pick_weighted(#{ key: weight })` whose map is a constant of the script: its keys and
/// weights read once, so a draw neither copies the map nor makes a new string. It draws as
/// [`pick_weighted_key`] does.
#[derive(Debug, Clone)]
pub struct WeightTable {
    keys: Vec<ImmutableString>,
    weights: Vec<FLOAT>,
    total: FLOAT,
}

impl WeightTable {
    /// The table of `weights`, or the error `pick_weighted` would report for them.
    pub fn of(weights: &Map) -> Fallible<Self> {
        let total = weights_total(weights)?;
        Ok(Self {
            keys: weights.keys().map(|key| key.as_str().into()).collect(),
            weights: weights
                .values()
                .map(|weight| number(weight, "pick_weighted").unwrap_or(0.0))
                .collect(),
            total,
        })
    }

    /// A key, with probability proportional to its weight.
    pub fn pick(&self, rng: &mut SimRng) -> ImmutableString {
        let entries = self.keys.iter().zip(self.weights.iter().copied());
        weighted_draw(rng, entries, self.total)
            .cloned()
            .unwrap_or_default()
    }
}

/// `pick_weighted(items, weights)`: an item, with probability proportional to its weight.
pub fn pick_weighted_item(rng: &mut SimRng, items: &Array, weights: &Array) -> Fallible<Dynamic> {
    if items.len() != weights.len() || items.is_empty() {
        return fail(format!(
            "pick_weighted: {} items but {} weights",
            items.len(),
            weights.len()
        ));
    }
    let weights: Vec<FLOAT> = weights
        .iter()
        .map(|w| number(w, "pick_weighted"))
        .collect::<Fallible<_>>()?;
    let index = rand_distr::weighted::WeightedIndex::new(&weights)
        .or_else(|e| fail(format!("pick_weighted: {e}")))?
        .sample(rng);
    Ok(items[index].clone())
}

/// `jitter(lat, lng, km)`: a point uniformly within `km` of the given one, rounded to 4
/// decimals (about 10 m), as `#{lat, lng}`.
pub fn jitter(rng: &mut SimRng, lat: &Dynamic, lng: &Dynamic, km: &Dynamic) -> Fallible<Map> {
    let (lat, lng) = (number(lat, "jitter")?, number(lng, "jitter")?);
    let km = number(km, "jitter")?;
    let distance = km * rng.random::<f64>().sqrt();
    let bearing = rng.random_range(0.0..std::f64::consts::TAU);
    let dlat = distance / 111.32 * bearing.cos();
    let dlng = distance / (111.32 * lat.to_radians().cos().max(1e-6)) * bearing.sin();
    let round = |x: f64| (x * 10_000.0).round() / 10_000.0;
    let mut point = Map::new();
    point.insert("lat".into(), Dynamic::from_float(round(lat + dlat)));
    point.insert("lng".into(), Dynamic::from_float(round(lng + dlng)));
    Ok(point)
}

/// `iso8601(ms)`: "2024-01-15T10:30:45.123Z", UTC with millisecond precision.
pub fn iso8601(ms: INT) -> Fallible<String> {
    use chrono::Datelike;
    let time = chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| fail(format!("time {ms} is out of range")), Ok)?;
    let date = time.date_naive();
    if !(0..=9999).contains(&date.year()) {
        // A year of other than four digits, written with its sign: chrono's RFC 3339 writer.
        return Ok(time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }
    // The digits written here, the bytes chrono's writer gives: it goes through `fmt`, about
    // 700 instructions a call, most of `iso8601`'s cost and 1.5% of a seed port event
    // (valgrind). A time from milliseconds has no leap second.
    let of_day = ms.rem_euclid(86_400_000);
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, value: i64| {
        let mut value = value;
        for place in (at..at + width).rev() {
            text[place] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, i64::from(date.year()));
    put(5, 2, i64::from(date.month()));
    put(8, 2, i64::from(date.day()));
    put(11, 2, of_day / 3_600_000);
    put(14, 2, of_day / 60_000 % 60);
    put(17, 2, of_day / 1000 % 60);
    put(20, 3, of_day % 1000);
    Ok(std::str::from_utf8(&text)
        .expect("digits and ASCII marks")
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_writes_what_chrono_writes() {
        let chrono = |ms: INT| {
            chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        // The edges of the four-digit years, of days and of the epoch, and a spread between.
        let mut times = vec![
            0,
            -1,
            1,
            86_399_999,
            86_400_000,
            1_705_312_800_000,
            -62_167_219_200_000,
            -62_167_219_200_001,
            253_402_300_799_999,
            253_402_300_800_000,
        ];
        let mut x: u64 = 1;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            times.push((x >> 11) as INT % 300_000_000_000_000 - 80_000_000_000_000);
        }
        for ms in times {
            assert_eq!(iso8601(ms).unwrap(), chrono(ms), "at {ms} ms");
        }
    }
}
