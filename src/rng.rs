//! The one seeded random number generator type that every random draw in `sim` comes from.
//!
//! ChaCha8 is used rather than `rand`'s `SmallRng` or `StdRng` because its output is specified
//! and stable across `rand` releases and platforms: `--seed N` must give the same events on every
//! machine and every future build. Independent consumers of randomness (the timeline, the script)
//! get independent *streams* of the same seed, so a change in one (an edited script drawing one
//! more number per event) does not shift the other (the arrival times).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The generator type used for all simulation randomness.
pub type SimRng = ChaCha8Rng;

/// Which part of the simulator a random stream belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// Arrival times of the live (and sampled) Poisson timeline.
    Timeline = 1,
    /// Arrival times of the backfill window.
    Backfill = 3,
    /// Draws made by the scenario script (its helpers, UUIDs).
    Script = 2,
}

/// Builds the generator for `stream` under `seed`.
pub fn stream_rng(seed: u64, stream: Stream) -> SimRng {
    let mut rng = SimRng::seed_from_u64(seed);
    rng.set_stream(stream as u64);
    rng
}

/// The generator whose streams the events of the `generation`-th version of a script draw from
/// (generation 0 until the first reload), one stream an event (see [`event_rng`]). It has a key
/// of its own rather than being a stream of `seed`'s key, so that event identities can use every
/// stream number without meeting the timeline's or the setup's.
pub fn event_base(seed: u64, generation: u64) -> SimRng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&generation.to_le_bytes());
    key[16..24].copy_from_slice(b"sim.evnt");
    SimRng::from_seed(key)
}

/// The generator of the event with identity `id`: what an event draws depends on the seed and
/// the event alone, not on which worker made it or what was made before it.
pub fn event_rng(base: &SimRng, id: u64) -> SimRng {
    let mut rng = base.clone();
    rng.set_stream(id);
    rng.set_word_pos(0);
    rng
}

/// The identity of the `index`-th follow-up that the event with identity `parent` scheduled.
/// Arrivals are numbered from 0; follow-ups have the top bit set, so the two never meet.
pub fn follow_up_id(parent: u64, index: u64) -> u64 {
    // splitmix64's finaliser: a bijection that spreads nearby inputs far apart.
    let mut z = parent ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | (1 << 63)
}

/// A fresh seed from the operating system, for runs where the user gave none.
pub fn fresh_seed() -> u64 {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn same_seed_same_stream_gives_same_draws() {
        let a: Vec<u64> = (0..4)
            .map(|_| stream_rng(7, Stream::Script).random())
            .collect();
        let b: Vec<u64> = (0..4)
            .map(|_| stream_rng(7, Stream::Script).random())
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn an_event_draws_the_same_whatever_was_drawn_before() {
        let base = event_base(7, 0);
        let mut first = event_rng(&base, 5);
        let _: u64 = first.random();
        let again: u64 = event_rng(&base, 5).random();
        let fresh: u64 = event_rng(&event_base(7, 0), 5).random();
        assert_eq!(again, fresh);
        assert_ne!(fresh, event_rng(&base, 6).random::<u64>());
        assert_ne!(fresh, event_rng(&event_base(7, 1), 5).random::<u64>());
    }

    #[test]
    fn follow_up_ids_never_look_like_arrivals() {
        let ids: std::collections::HashSet<u64> = (0..1000)
            .flat_map(|parent| (0..4).map(move |k| follow_up_id(parent, k)))
            .collect();
        assert_eq!(ids.len(), 4000);
        assert!(ids.iter().all(|id| id >> 63 == 1));
    }

    #[test]
    fn streams_of_one_seed_differ() {
        let a: u64 = stream_rng(7, Stream::Script).random();
        let b: u64 = stream_rng(7, Stream::Timeline).random();
        assert_ne!(a, b);
    }
}
