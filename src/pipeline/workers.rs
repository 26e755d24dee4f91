//! Making events on every core, with exactly the output one worker would make.
//!
//! Each worker is a [`Scenario`] fork (an engine of its own over the same compiled script and the
//! same state) with an encoder of its own. The workers make a batch's arrivals *ahead of their
//! turn* (see `super::ahead`): they run the script and encode the events, but commit nothing.
//! The pipeline takes the results in timeline order, committing each as it comes, and keeps one
//! only if making it in turn could not have given anything else:
//!
//! - its random draws come from a stream named by the event's identity (see
//!   [`crate::rng::event_rng`]), so they are the same whoever makes it, whenever;
//! - it read no memory key that an event committed earlier in the batch wrote (each event's
//!   memory journal lists what it read, see [`crate::script::Journal`]);
//! - if it read `ctx.seq`, it was given the number it gets in turn (a follow-up falling due
//!   between arrivals shifts the numbers after it);
//! - it did not fail (a failure is made again in turn, to report the error as a serial run would).
//!
//! Otherwise the event is made again, in turn, by the first worker. So the events, their order
//! and their contents depend on the seed alone, not on the number of workers; what workers buy is
//! speed, as long as events rarely read what the events just before them wrote. Scenarios help by
//! keying memory by entity (a customer, a merchant) rather than one key that every event reads.

use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Map};

use super::PipelineError;
use crate::encode::{EventEncoder, PlainValues};
use crate::labels;
use crate::schema::Violation;
use crate::script::{Effects, Scenario, Scheduled, ScriptError, Thaw};

/// Below this many arrivals a batch is made by the first worker alone: handing out work costs
/// more than it saves.
pub const MIN_PARALLEL: usize = 32;

/// One event to make.
#[derive(Debug, Clone)]
pub enum Job {
    /// An arrival of the timeline: `event(ctx)`.
    Arrival {
        /// Its time, milliseconds since the epoch.
        time_ms: i64,
        /// Its identity: the arrival's ordinal on the timeline.
        id: u64,
    },
    /// A follow-up the script scheduled.
    FollowUp(Scheduled),
}

impl Job {
    /// When the event happens, milliseconds since the epoch.
    pub fn time_ms(&self) -> i64 {
        match self {
            Job::Arrival { time_ms, .. } => *time_ms,
            Job::FollowUp(scheduled) => scheduled.at_ms,
        }
    }

    /// The script function that makes it: `event`, or the follow-up's.
    pub fn function(&self) -> &str {
        match self {
            Job::Arrival { .. } => "event",
            Job::FollowUp(scheduled) => &scheduled.function,
        }
    }

    /// The identity that names the event's random stream.
    pub fn id(&self) -> u64 {
        match self {
            Job::Arrival { id, .. } => *id,
            Job::FollowUp(scheduled) => scheduled.id,
        }
    }
}

/// What the workers do to each event besides encoding it.
#[derive(Debug, Clone, Copy, Default)]
pub struct MakeOptions {
    /// Add the `_label` field (`--labels`).
    pub labels: bool,
    /// Check each event against the schema and the script's `check` (`sim check`, reload).
    pub validate: bool,
    /// Add the `_meta` field (`--meta`): the revision (this one), the sequence number and the
    /// function that made the event.
    pub meta: Option<u64>,
    /// Time making it (for `sim_event_seconds`, when the metrics endpoint reads it).
    pub timed: bool,
}

/// One event, encoded and ready for the sink.
#[derive(Debug)]
pub struct Outgoing {
    /// The message key.
    pub key: Vec<u8>,
    /// The value: JSON, or Avro in the Confluent wire format.
    pub payload: Vec<u8>,
    /// The fraud pattern that made it, if any (ground truth).
    pub pattern: Option<String>,
    /// What it broke of the schema and invariants, when validating.
    pub violations: Vec<Violation>,
}

/// What making one job gave.
#[derive(Debug)]
pub struct Made {
    /// The events, or why there are none.
    pub outgoing: Result<Vec<Outgoing>, PipelineError>,
    /// What it did besides.
    pub effects: Effects,
    /// The sequence number it was made with.
    pub seq: i64,
    /// How long making it took (the script, the checks and the encoding), when timed.
    pub took: Option<Duration>,
}

impl Made {
    /// Whether this result, made ahead of its turn, is what making it as number `seq` after the
    /// writes to `written` would give.
    pub fn holds(
        &self,
        seq: i64,
        written: &std::collections::HashSet<rhai::ImmutableString>,
    ) -> bool {
        self.outgoing.is_ok()
            && (!self.effects.read_seq || self.seq == seq)
            && !self.effects.journal.read_any_of(written)
    }
}

/// `encoder`, writing the scenario state's maps and pools in an event where they lie.
fn reading_the_state(mut encoder: EventEncoder) -> EventEncoder {
    encoder.read_plain_with(PlainValues {
        read: crate::script::read_frozen,
        thaw: crate::script::thaw,
    });
    encoder
}

/// A scenario and its encoder.
pub struct Worker {
    /// The scenario version this worker runs.
    pub scenario: Scenario,
    encoder: EventEncoder,
}

impl Worker {
    /// A worker running `scenario`, encoding events with `encoder`.
    pub fn new(scenario: Scenario, encoder: EventEncoder) -> Self {
        Self {
            scenario,
            encoder: reading_the_state(encoder),
        }
    }

    /// Another worker over the same scenario version, encoding alike.
    pub fn fork(&self) -> Result<Self, ScriptError> {
        Ok(Self::new(self.scenario.fork()?, self.encoder.clone()))
    }

    /// Encodes events with `encoder` from now on.
    pub fn encode_with(&mut self, encoder: EventEncoder) {
        self.encoder = reading_the_state(encoder);
    }

    /// Makes `job` as event number `seq`: runs the script, checks and encodes what it returned.
    pub fn make(&mut self, job: &Job, seq: i64, options: MakeOptions) -> Made {
        let started = options.timed.then(Instant::now);
        // Checks read events as plain values; the JSON writer reads the state's values in them
        // where they are.
        let thaw = if options.validate || !self.encoder.reads_in_place() {
            Thaw::Deep
        } else {
            Thaw::Outer
        };
        let result = match job {
            Job::Arrival { time_ms, id } => self.scenario.arrival_as(*time_ms, seq, *id, thaw),
            Job::FollowUp(scheduled) => self.scenario.follow_up_as(scheduled.clone(), seq, thaw),
        };
        let outgoing = result
            .map_err(PipelineError::from)
            .and_then(|made| self.encode_all(made, seq, job.function(), options));
        // After encoding: a script's `check` is part of making the event.
        let mut effects = self.scenario.take_effects();
        // `_meta` carries the sequence number: made ahead under another, it must be made again.
        effects.read_seq |= options.meta.is_some();
        Made {
            outgoing,
            effects,
            seq,
            took: started.map(|started| started.elapsed()),
        }
    }

    fn encode_all(
        &mut self,
        made: Dynamic,
        seq: i64,
        function: &str,
        options: MakeOptions,
    ) -> Result<Vec<Outgoing>, PipelineError> {
        if made.is_map() {
            Ok(vec![self.encode(
                made.cast::<Map>(),
                seq,
                function,
                options,
            )?])
        } else if made.is_array() {
            made.cast::<Array>()
                .into_iter()
                .filter_map(|event| event.try_cast::<Map>())
                .map(|event| self.encode(event, seq, function, options))
                .collect()
        } else {
            Ok(Vec::new())
        }
    }

    fn encode(
        &mut self,
        mut event: Map,
        seq: i64,
        function: &str,
        options: MakeOptions,
    ) -> Result<Outgoing, PipelineError> {
        let pattern = labels::take_fraud_pattern_as(&mut event, seq, crate::script::thaw)?;
        let mut violations = Vec::new();
        if options.validate {
            self.scenario.check_event(&event, &mut violations)?;
        }
        if options.labels {
            labels::add_label(&mut event, pattern.as_deref());
        }
        if let Some(revision) = options.meta {
            labels::add_meta(&mut event, revision, seq, function);
        }
        self.encoder.encode(&event, seq)?;
        self.scenario.recycle(event);
        Ok(Outgoing {
            key: self.encoder.key.clone(),
            payload: self.encoder.payload.clone(),
            pattern,
            violations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::tests::set_up;

    /// Each event's key and value.
    type Records = Vec<(Vec<u8>, Vec<u8>)>;

    /// What a worker makes of arrival `seq` of `source`, keyed by `key_field`: each event's
    /// key and value, checked (its state thawed before it is written) or not (written in place).
    fn made(source: &str, seq: i64, key_field: &str, checked: bool) -> Result<Records, String> {
        let (scenario, _) = set_up(source, 1, &[]);
        let mut worker = Worker::new(scenario, EventEncoder::new(key_field));
        // A JSON worker writes the state where it lies: unchecked events are left frozen.
        assert!(worker.encoder.reads_in_place());
        let options = MakeOptions {
            validate: checked,
            ..MakeOptions::default()
        };
        let job = Job::Arrival {
            time_ms: 0,
            id: seq as u64,
        };
        let made = worker.make(&job, seq, options);
        let outgoing = made.outgoing.map_err(|err| err.to_string())?;
        Ok(outgoing.into_iter().map(|o| (o.key, o.payload)).collect())
    }

    /// The JSON writer reads the state's maps and arrays in an event where they are
    /// ([`Thaw::Outer`]): the key and the value come out byte for byte as from the thawed event
    /// (what a checked event is), for records, nested maps, pools, a large table, a record
    /// changed in a variable, one held through a closure, an event that is an array of maps, and
    /// a key that is a map or a pool of the state.
    #[test]
    fn an_event_written_with_the_state_left_frozen_is_the_thawed_event_byte_for_byte() {
        let source = r#"
            fn setup(ctx) {
                let table = #{};
                for i in 0..100 { table[`k${i}`] = [i, #{ even: i % 2 == 0 }]; }
                #{
                    rec: #{ zeta: "last", alpha: 1, mid: #{ x: 1.5, y: [1, "two", ()] } },
                    items: pool([#{ b: 2, a: 1 }, #{ a: "x\"y", b: [] }]),
                    list: ["a\nb", 3],
                    table: table,
                }
            }
            fn event(ctx) {
                let rec = ctx.state.rec;
                let held = || rec;
                let changed = ctx.state.rec;
                changed.beta = true;
                let one = #{
                    rec: ctx.state.rec, items: ctx.state.items, list: ctx.state.list,
                    table: ctx.state.table, held: held.call(), changed: changed,
                    inside: [ctx.state.rec.mid, #{ deeper: ctx.state.items }],
                };
                if ctx.seq == 0 { one } else { [one, #{ rec: ctx.state.rec.mid }] }
            }
        "#;
        for (seq, key_field) in [(0, "list"), (0, "rec"), (1, "rec")] {
            let frozen = made(source, seq, key_field, false).unwrap();
            let thawed = made(source, seq, key_field, true).unwrap();
            assert_eq!(frozen, thawed, "event {seq} keyed by {key_field}");
            assert!(String::from_utf8_lossy(&frozen[0].1).contains(r#""alpha":1"#));
        }
        // The unchecked event is indeed left frozen for the writer.
        let (mut scenario, _) = set_up(source, 1, &[]);
        let event = scenario
            .arrival_as(0, 0, 0, Thaw::Outer)
            .unwrap()
            .cast::<Map>();
        assert!(event["rec"].is::<crate::script::StateMap>());
    }

    /// A `_fraud` label that is a map of the state is refused naming its type as a script sees
    /// a plain map's, though the event left it frozen.
    #[test]
    fn a_frozen_map_as_the_fraud_label_is_refused_as_a_map() {
        let source = "fn setup(ctx) { #{ rec: #{ a: 1 } } }\n\
                      fn event(ctx) { #{ customer_id: \"c\", _fraud: ctx.state.rec } }";
        let err = made(source, 4, "customer_id", false).unwrap_err();
        assert!(
            err.contains(
                "event 4 has `_fraud` of type map; it must be a fraud pattern's name or ()"
            ),
            "{err}"
        );
    }
}
