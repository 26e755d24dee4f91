use super::*;
use crate::clock::TimeSource;
use crate::settings::{resolve, OnError, UserInput};
use crate::sink::{DeliveryAccount, SinkError};
use std::path::Path;

/// Keeps every record's timestamp and payload.
#[derive(Default)]
struct Recorder {
    records: Vec<(i64, serde_json::Value)>,
    /// With a clock, the simulated time (ms) at which each record was sent.
    sent_at: Option<(SimClock, Vec<i64>)>,
    /// A stop asked for once this many records are sent.
    stop_after: Option<(usize, Shutdown)>,
    /// A slow sink for history: each record timestamped before the given millisecond moves
    /// paused time on by the given duration, as a backfill into a real broker takes real time.
    slow_history: Option<(TimeSource, Duration, i64)>,
    /// Records sent when the stream last went idle, for each time it did.
    idle_after: Vec<usize>,
}

impl Sink for Recorder {
    fn send(&mut self, record: Record<'_>) -> Result<(), SinkError> {
        let value = serde_json::from_slice(record.payload).unwrap();
        self.records.push((record.timestamp_ms, value));
        if let Some((time, per_record, before_ms)) = &self.slow_history {
            if record.timestamp_ms < *before_ms {
                time.advance(*per_record);
            }
        }
        if let Some((clock, sent_at)) = &mut self.sent_at {
            sent_at.push(clock.now().timestamp_millis());
        }
        if let Some((count, shutdown)) = &self.stop_after {
            if self.records.len() >= *count {
                shutdown.trigger();
            }
        }
        Ok(())
    }
    fn idle(&mut self) -> Result<(), SinkError> {
        self.idle_after.push(self.records.len());
        Ok(())
    }
    fn close(&mut self, _: Duration) -> Result<DeliveryAccount, SinkError> {
        let n = self.records.len() as u64;
        Ok(DeliveryAccount {
            produced: n,
            delivered: n,
            failed: 0,
        })
    }
}

fn pipeline<'s>(source: &str, sink: &'s mut Recorder, env: &[(&str, &str)]) -> Pipeline<'s> {
    let (scenario, settings) = crate::script::tests::set_up(source, 11, env);
    Pipeline::new(scenario, &settings, 11, sink, Arc::new(Metrics::default()))
}

const SEQ_EVENT: &str = "fn event(ctx) { #{ customer_id: `c${ctx.seq % 7}`, seq: ctx.seq } }";

/// A Monday, 10:00 UTC.
fn monday() -> DateTime<Utc> {
    DateTime::from_timestamp(1_705_312_800, 0).unwrap()
}

/// A clock on paused time from `start`: the live stream runs through it without waiting.
fn paused_clock(start: DateTime<Utc>) -> SimClock {
    SimClock::on(TimeSource::paused(), start)
}

#[test]
fn backfill_hands_over_to_live_with_no_gap_or_overlap() {
    let mut sink = Recorder::default();
    let now = monday();
    // 60,000 per minute: the live part makes about 1,000 events in its second.
    let mut p = pipeline(SEQ_EVENT, &mut sink, &[("EVENT_RATE", "60000")]);
    let backfilled = p.backfill(now, 500, 1.0, &Shutdown::new()).unwrap();
    let clock = paused_clock(now);
    let until = now + chrono::Duration::seconds(1);
    let live = p.live(&clock, &Shutdown::new(), Some(until)).unwrap();
    assert_eq!(backfilled, 500);
    assert!(live > 0);
    let now_ms = now.timestamp_millis();
    let (history, stream) = sink.records.split_at(500);
    assert!(history
        .iter()
        .all(|(t, _)| *t < now_ms && *t >= now_ms - 86_400_000));
    let outside: Vec<i64> = stream
        .iter()
        .map(|(t, _)| *t)
        // Millisecond timestamps: an arrival just before `until` shares its millisecond.
        .filter(|t| *t < now_ms || *t > until.timestamp_millis())
        .collect();
    assert!(outside.is_empty(), "now {now_ms}: {outside:?}");
    // Sequence numbers run on without a gap or a repeat, and time never goes back.
    for (i, (_, event)) in sink.records.iter().enumerate() {
        assert_eq!(event["seq"], i as i64);
    }
    assert!(sink.records.windows(2).all(|w| w[0].0 <= w[1].0));
}

#[test]
fn after_a_slow_backfill_live_events_leave_when_their_timestamps_say() {
    let now = monday();
    let time = TimeSource::paused();
    // The clock starts with the stream, before the backfill, as `sim run` starts it.
    let clock = SimClock::on(time.clone(), now);
    let mut sink = Recorder {
        sent_at: Some((clock.clone(), Vec::new())),
        // 3,000 arrivals at 1 ms each: the backfill takes 3 s.
        slow_history: Some((
            time.clone(),
            Duration::from_millis(1),
            now.timestamp_millis(),
        )),
        ..Recorder::default()
    };
    let mut reported = None;
    let mut report = |notice| {
        if let StreamNotice::BackfillDone {
            arrivals, events, ..
        } = notice
        {
            reported = Some((arrivals, events));
        }
    };
    let mut p = pipeline(SEQ_EVENT, &mut sink, &[("EVENT_RATE", "6000")]);
    p.report_to(&mut report);
    let backfill = BackfillSpec {
        arrivals: 3_000,
        days: 1.0,
    };
    let until = now + chrono::Duration::seconds(10);
    p.stream(&clock, Some(backfill), &Shutdown::new(), Some(until))
        .unwrap();
    drop(p);
    assert_eq!(reported, Some((3_000, 3_000)));
    // The backfill wrote in one block; the live stream handed on its events before each sleep.
    assert!(sink.idle_after.iter().all(|&n| n >= 3_000));
    assert!(sink.idle_after.len() > 500, "{}", sink.idle_after.len());
    let (_, sent_at) = sink.sent_at.as_ref().unwrap();
    let backfill_ended = now.timestamp_millis() + 3_000;
    let live: Vec<(i64, i64)> = sink
        .records
        .iter()
        .zip(sent_at)
        .map(|((stamp, _), sent)| (*stamp, *sent))
        .filter(|(stamp, _)| *stamp >= now.timestamp_millis())
        .collect();
    // What fell due during the backfill is made as soon as it ends; everything after leaves
    // at its timestamp, the last event included.
    let paced: Vec<&(i64, i64)> = live.iter().filter(|(t, _)| *t > backfill_ended).collect();
    assert!(paced.len() > 500, "{} paced of {}", paced.len(), live.len());
    for (stamp, sent) in paced.iter().chain(live.last().as_ref()) {
        assert!(
            (0..=100).contains(&(sent - stamp)),
            "stamped {stamp}, sent at {sent}"
        );
    }
}

#[test]
fn a_stop_signal_ends_the_live_stream() {
    let mut sink = Recorder::default();
    let mut p = pipeline(SEQ_EVENT, &mut sink, &[]);
    let shutdown = Shutdown::new();
    shutdown.trigger();
    let clock = SimClock::starting_at(Utc::now());
    // Without the signal this would stream forever.
    p.live(&clock, &shutdown, None).unwrap();
}

#[test]
fn a_stop_asked_for_while_streaming_ends_the_stream_at_once() {
    let shutdown = Shutdown::new();
    let mut sink = Recorder {
        stop_after: Some((100, shutdown.clone())),
        ..Recorder::default()
    };
    let mut p = pipeline(SEQ_EVENT, &mut sink, &[("EVENT_RATE", "600")]);
    // An endless stream on virtual time: only the stop (asked by the sink) ends it.
    let sent = p.live(&paused_clock(monday()), &shutdown, None).unwrap();
    // The event being sent when the stop came was the last.
    assert_eq!(sent, 100);
    assert_eq!(sink.records.len(), 100);
}

#[test]
fn the_live_stream_sends_each_event_at_its_deadline() {
    let start = monday();
    let clock = paused_clock(start);
    let mut sink = Recorder {
        sent_at: Some((clock.clone(), Vec::new())),
        ..Recorder::default()
    };
    // 60 a minute at any hour.
    let mut p = pipeline(RETRYING, &mut sink, &[("EVENT_RATE", "60")]);
    // Ten minutes of simulated time; on paused time it takes no waiting.
    let until = start + chrono::Duration::minutes(10);
    let sent = p.live(&clock, &Shutdown::new(), Some(until)).unwrap();
    assert_eq!(clock.now(), until, "the run is waited out");
    // 60 a minute, and a retry for every third payment but the last 30 s of them.
    assert!((650..950).contains(&sent), "{sent}");
    let (_, sent_at) = sink.sent_at.as_ref().unwrap();
    let deadlines: Vec<i64> = sink.records.iter().map(|(t, _)| *t).collect();
    assert_eq!(sent_at, &deadlines, "every event is sent at its time");
    assert!(deadlines.windows(2).all(|w| w[0] <= w[1]));
    assert!(deadlines
        .iter()
        .any(|t| *t > start.timestamp_millis() + 590_000));
}

#[test]
fn the_scripts_rate_shapes_the_timeline() {
    // 600/min in even minutes, none in odd ones.
    let source =
        format!("{SEQ_EVENT}\nfn rate(t) {{ if (t / 60000) % 2 == 0 {{ 600.0 }} else {{ 0.0 }} }}");
    let mut sink = Recorder::default();
    let mut p = pipeline(&source, &mut sink, &[]);
    let start = DateTime::from_timestamp(1_705_312_800, 0).unwrap();
    p.sample(start, 3_000).unwrap();
    assert!(sink.records.iter().all(|(t, _)| (t / 60_000) % 2 == 0));
    let minutes = (sink.records.last().unwrap().0 - start.timestamp_millis()) / 60_000;
    // Five minutes of 600/min, every other minute empty: about ten minutes.
    assert!((8..=12).contains(&minutes), "{minutes}");
}

#[test]
fn a_reload_swaps_rules_and_rate_between_events() {
    let script = |tag: &str, rate: f64| {
        format!(
            "fn config() {{ #{{ rate: {rate:.1}, peak_factor: 1.0, tag: \"{tag}\" }} }}\n\
                 fn event(ctx) {{ #{{ customer_id: \"c\", seq: ctx.seq, v: ctx.settings.tag }} }}"
        )
    };
    let mut sink = Recorder::default();
    let metrics = Arc::new(Metrics::default());
    let mut p = pipeline(&script("old", 60_000.0), &mut sink, &[]);
    p.metrics = metrics.clone();
    let mut next = Scenario::from_source(Path::new("t.rhai"), &script("new", 6_000.0)).unwrap();
    let settings = resolve(&UserInput::default(), &next.config().unwrap()).unwrap();
    next.setup(&settings, 11, 0).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    p.accept_reloads(rx);
    let time = TimeSource::paused();
    let now = monday();
    let clock = SimClock::on(time.clone(), now);
    p.live(
        &clock,
        &Shutdown::new(),
        Some(now + chrono::Duration::milliseconds(200)),
    )
    .unwrap();
    tx.send(Candidate {
        scenario: next,
        forks: Vec::new(),
        settings,
        revision: 2,
        encoder: None,
    })
    .unwrap();
    let later = clock.now();
    let clock = SimClock::on(time, later);
    p.live(
        &clock,
        &Shutdown::new(),
        Some(later + chrono::Duration::milliseconds(300)),
    )
    .unwrap();
    let tags: Vec<&str> = sink
        .records
        .iter()
        .map(|(_, e)| e["v"].as_str().unwrap())
        .collect();
    let switch = tags
        .iter()
        .position(|t| *t == "new")
        .expect("the new version ran");
    assert!(switch > 0);
    assert!(tags[switch..].iter().all(|t| *t == "new"));
    assert_eq!(metrics.revision(), 2);
    // 6,000 per minute is 100 per second.
    assert_eq!(metrics.target_per_second(), 100.0);
}

const RETRYING: &str = "
    fn config() { #{ rate: 600.0, peak_factor: 1.0 } }
    fn event(ctx) {
        if ctx.seq % 3 == 0 { ctx.follow_up(30000, \"retry\", #{ of: ctx.seq }); }
        #{ customer_id: \"c\", kind: \"pay\", seq: ctx.seq }
    }
    fn retry(ctx, data) { #{ customer_id: \"c\", kind: \"retry\", of: data.of, seq: ctx.seq } }";

#[test]
fn follow_ups_come_at_their_time_in_order_with_the_arrivals() {
    let mut sink = Recorder::default();
    let mut p = pipeline(RETRYING, &mut sink, &[]);
    let start = DateTime::from_timestamp(1_705_312_800, 0).unwrap();
    assert_eq!(p.sample(start, 3_000).unwrap(), 3_000);
    assert!(sink.records.windows(2).all(|w| w[0].0 <= w[1].0));
    let time_of: std::collections::HashMap<i64, i64> = sink
        .records
        .iter()
        .map(|(t, e)| (e["seq"].as_i64().unwrap(), *t))
        .collect();
    let retries: Vec<&(i64, serde_json::Value)> = sink
        .records
        .iter()
        .filter(|(_, e)| e["kind"] == "retry")
        .collect();
    assert!(retries.len() > 500, "{}", retries.len());
    for (t, retry) in retries {
        let of = retry["of"].as_i64().unwrap();
        assert_eq!(of % 3, 0);
        assert_eq!(*t, time_of[&of] + 30_000);
    }
    // Every sequence number once.
    let mut seqs: Vec<i64> = time_of.keys().copied().collect();
    seqs.sort();
    assert_eq!(seqs, (0..3_000).collect::<Vec<_>>());
}

#[test]
fn follow_ups_scheduled_late_in_the_backfill_come_in_the_live_stream() {
    let script = RETRYING.replace("30000", "1000").replace("600.0", "6000.0");
    let mut sink = Recorder::default();
    let mut p = pipeline(&script, &mut sink, &[]);
    let now = monday();
    p.backfill(now, 1_000, 0.01, &Shutdown::new()).unwrap();
    let clock = paused_clock(now);
    let until = now + chrono::Duration::milliseconds(1_500);
    p.live(&clock, &Shutdown::new(), Some(until)).unwrap();
    let now_ms = now.timestamp_millis();
    let time_of: std::collections::HashMap<i64, i64> = sink
        .records
        .iter()
        .map(|(t, e)| (e["seq"].as_i64().unwrap(), *t))
        .collect();
    // Retries of backfilled payments, due after the window, arrive in the live stream.
    let carried = sink
        .records
        .iter()
        .filter(|(t, e)| {
            e["kind"] == "retry" && *t >= now_ms && time_of[&e["of"].as_i64().unwrap()] < now_ms
        })
        .count();
    assert!(carried > 0);
    assert!(sink.records.windows(2).all(|w| w[0].0 <= w[1].0));
}

#[test]
fn arrays_emit_several_events_at_one_arrival() {
    let source = "fn event(ctx) { [#{ customer_id: \"a\" }, #{ customer_id: \"b\" }] }";
    let mut sink = Recorder::default();
    let mut p = pipeline(source, &mut sink, &[]);
    let sent = p.sample(Utc::now(), 10).unwrap();
    assert_eq!(sent, 10);
    assert_eq!(sink.records.len(), 10);
    assert_eq!(sink.records[0].0, sink.records[1].0);
}

#[test]
fn events_are_timed_only_once_something_reads_the_timings() {
    let made_and_timed = |timed: bool, workers: usize| {
        let mut sink = Recorder::default();
        let metrics = Arc::new(Metrics::default());
        if timed {
            metrics.timings.time_events();
        }
        let (scenario, settings) = crate::script::tests::set_up(SEQ_EVENT, 11, &[]);
        let mut p = Pipeline::new(scenario, &settings, 11, &mut sink, metrics.clone());
        p.set_workers(workers).unwrap();
        let sent = p.sample(Utc::now(), 300).unwrap();
        drop(p);
        (sent, metrics.timings.event.snapshot().count)
    };
    for workers in [1, 2] {
        assert_eq!(
            made_and_timed(false, workers),
            (300, 0),
            "{workers} workers"
        );
        assert_eq!(
            made_and_timed(true, workers),
            (300, 300),
            "{workers} workers"
        );
    }
}

/// The records a backfill of `count` arrivals over a day makes with `workers` workers, and the
/// (made ahead, made again) counts.
fn backfill_with(
    source: &str,
    workers: usize,
    count: u64,
) -> (Vec<(i64, serde_json::Value)>, (u64, u64)) {
    let mut sink = Recorder::default();
    let metrics = Arc::new(Metrics::default());
    let (scenario, settings) = crate::script::tests::set_up(source, 11, &[]);
    let mut p = Pipeline::new(scenario, &settings, 11, &mut sink, metrics.clone());
    p.set_workers(workers).unwrap();
    let end = DateTime::from_timestamp(1_705_312_800, 0).unwrap();
    p.backfill(end, count, 1.0, &Shutdown::new()).unwrap();
    drop(p);
    (sink.records, metrics.ahead_and_again())
}

/// Every event reads and writes one memory key (a running total), so every event made ahead
/// reads what the event before it wrote; each customer's last amount is remembered too.
const SHARED_MEMORY: &str = r#"
    fn event(ctx) {
        let customer = `c${rand_int(0, 20)}`;
        let amount = rand_int(1, 1000);
        let total = (recall("total") ?? 0) + amount;
        remember("total", total);
        let last = recall(customer);
        remember(customer, amount);
        if rand_float() < 0.1 { forget(customer); }
        #{ customer_id: customer, amount: amount, total: total, last: last, id: uuid(),
           keys: memory_size() }
    }"#;

#[test]
fn workers_make_what_one_worker_makes_even_when_every_event_reads_the_last_ones_writes() {
    let (one, (ahead, _)) = backfill_with(SHARED_MEMORY, 1, 2_000);
    assert_eq!(ahead, 0, "one worker makes everything in turn");
    for workers in [2, 3] {
        let (many, (ahead, again)) = backfill_with(SHARED_MEMORY, workers, 2_000);
        assert_eq!(ahead, 2_000);
        // All but the first of each batch read the total its predecessor wrote.
        assert!(again > 1_900, "{again}");
        assert_eq!(many, one, "{workers} workers");
    }
    // The running total really runs: each event sees the one before it.
    let totals: Vec<i64> = one
        .iter()
        .map(|(_, e)| e["total"].as_i64().unwrap())
        .collect();
    let amounts: Vec<i64> = one
        .iter()
        .map(|(_, e)| e["amount"].as_i64().unwrap())
        .collect();
    assert!(totals
        .windows(2)
        .zip(&amounts[1..])
        .all(|(w, a)| w[1] == w[0] + a));
}

/// Memory keyed by customer (a rare write), follow-ups at short delays (they fall due between
/// the arrivals of a batch, shifting the sequence numbers), and `ctx.seq` read by some events.
const KEYED_WITH_FOLLOW_UPS: &str = r#"
    fn event(ctx) {
        let customer = `c${rand_int(0, 5000)}`;
        let seen = recall(customer) ?? 0;
        if rand_float() < 0.02 { remember(customer, seen + 1); }
        if rand_float() < 0.1 { ctx.follow_up(rand_int(0, 120000), "later", #{ of: customer }); }
        let seq = if rand_float() < 0.05 { ctx.seq } else { () };
        #{ customer_id: customer, seen: seen, seq: seq, id: uuid() }
    }
    fn later(ctx, data) {
        #{ customer_id: data.of, seen: recall(data.of) ?? 0, seq: ctx.seq, id: uuid() }
    }"#;

#[test]
fn workers_make_what_one_worker_makes_with_follow_ups_and_sequence_numbers() {
    let (one, _) = backfill_with(KEYED_WITH_FOLLOW_UPS, 1, 5_000);
    let (two, (ahead, again)) = backfill_with(KEYED_WITH_FOLLOW_UPS, 2, 5_000);
    assert_eq!(ahead, 5_000);
    // Some were made again (a follow-up shifted a number they read), most were not.
    assert!(again > 0 && again < 1_000, "{again}");
    assert!(one.len() > 5_300, "follow-ups were made: {}", one.len());
    assert_eq!(two, one);
}

#[test]
fn an_error_made_ahead_is_reported_as_one_worker_reports_it() {
    let source = r#"fn event(ctx) { if ctx.seq == 700 { throw "boom"; } #{ customer_id: "c" } }"#;
    for workers in [1, 2] {
        let mut sink = Recorder::default();
        let (scenario, settings) = crate::script::tests::set_up(source, 11, &[]);
        let mut p = Pipeline::new(scenario, &settings, 11, &mut sink, Arc::default());
        p.set_workers(workers).unwrap();
        let end = DateTime::from_timestamp(1_705_312_800, 0).unwrap();
        let err = p.backfill(end, 2_000, 1.0, &Shutdown::new()).unwrap_err();
        assert!(err.to_string().contains("event"), "{err}");
        drop(p);
        assert_eq!(sink.records.len(), 700, "{workers} workers");
    }
}

#[test]
fn the_follow_ups_still_scheduled_are_counted() {
    let mut sink = Recorder::default();
    let metrics = Arc::new(Metrics::default());
    let (scenario, settings) = crate::script::tests::set_up(RETRYING, 11, &[]);
    let mut p = Pipeline::new(scenario, &settings, 11, &mut sink, metrics.clone());
    let start = DateTime::from_timestamp(1_705_312_800, 0).unwrap();
    p.sample(start, 300).unwrap();
    drop(p);
    // Every third payment schedules a retry 30 s later; at 10 a second, the last 30 s of
    // payments' retries (about 100) are still waiting.
    let retries = sink
        .records
        .iter()
        .filter(|(_, e)| e["kind"] == "retry")
        .count() as u64;
    let payments = sink.records.len() as u64 - retries;
    let pending = metrics.pending_follow_ups();
    assert_eq!(
        retries + pending,
        payments.div_ceil(3),
        "{retries} + {pending}"
    );
    assert!(pending > 50, "{pending}");
}

#[test]
fn a_self_multiplying_follow_up_stops_at_its_cap_naming_the_function() {
    let mut sink = Recorder::default();
    let source = "fn event(ctx) { ctx.follow_up(1000, \"echo\", 1); #{ customer_id: \"c\" } }\n\
                  fn echo(ctx, n) { ctx.follow_up(1000, \"echo\", n); ctx.follow_up(1000, \"echo\", n); #{ customer_id: \"c\" } }";
    let mut p = pipeline(source, &mut sink, &[("MAX_FOLLOW_UPS", "1000")]);
    let err = p.sample(monday(), 1_000_000).unwrap_err();
    assert!(
        matches!(err, PipelineError::FollowUpCap { cap: 1000, .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("`echo`"), "{message}");
    assert!(p.pending_follow_ups() <= 1000);
}

#[test]
fn remembered_keys_stop_at_their_cap() {
    let mut sink = Recorder::default();
    let source = "fn event(ctx) { remember(`k${ctx.seq}`, 1); #{ customer_id: \"c\" } }";
    let mut p = pipeline(source, &mut sink, &[("MAX_REMEMBERED", "50")]);
    let err = p.sample(monday(), 100).unwrap_err();
    assert!(err.to_string().contains("setting max_remembered"), "{err}");
    assert_eq!(sink.records.len(), 50);
}

/// Fails on one arrival in 50 (by its random draw), remembering a key and scheduling a
/// follow-up first, so a skipped event's effects can be seen to be dropped.
const RARELY_FAILING: &str = r#"
    fn event(ctx) {
        let fail = rand_float() < 0.02;
        if fail {
            remember("poison", ctx.seq);
            ctx.follow_up(1000, "after", #{});
            throw "rare path";
        }
        #{ customer_id: `c${rand_int(0, 9)}`, seq: ctx.seq, poison: recall("poison") }
    }
    fn after(ctx, data) { #{ customer_id: "c", seq: ctx.seq, kind: "after" } }"#;

/// Backfills 3,000 arrivals of `source` with `workers` workers under `on_error = skip`: the
/// records, the skipped count and the skip notices.
fn backfill_skipping(source: &str, workers: usize) -> (Vec<serde_json::Value>, u64, Vec<u64>) {
    let mut sink = Recorder::default();
    let mut notices = Vec::new();
    let mut report = |notice| {
        if let StreamNotice::Skipped { skipped, .. } = notice {
            notices.push(skipped);
        }
    };
    let (scenario, settings) = crate::script::tests::set_up(source, 11, &[]);
    let metrics = Arc::new(Metrics::default());
    let mut p = Pipeline::new(scenario, &settings, 11, &mut sink, metrics.clone());
    p.set_workers(workers).unwrap();
    p.on_error(OnError::Skip);
    p.report_to(&mut report);
    let end = DateTime::from_timestamp(1_705_312_800, 0).unwrap();
    let sent = p.backfill(end, 3_000, 1.0, &Shutdown::new()).unwrap();
    let skipped = p.skipped();
    drop(p);
    assert_eq!(sent as usize, sink.records.len());
    assert_eq!(metrics.script_errors(), skipped);
    let records = sink.records.into_iter().map(|(_, v)| v).collect();
    (records, skipped, notices)
}

#[test]
fn under_skip_a_failing_event_is_dropped_counted_and_reported_and_the_stream_goes_on() {
    let (records, skipped, notices) = backfill_skipping(RARELY_FAILING, 1);
    assert!((20..=110).contains(&skipped), "{skipped} skipped");
    assert_eq!(records.len() as u64, 3_000 - skipped);
    assert_eq!(notices, (1..=skipped).collect::<Vec<_>>());
    // Its sequence number, its memory write and its follow-up were dropped with it.
    let seqs: Vec<i64> = records.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*seqs.last().unwrap(), 3_000 - 1);
    assert!(records
        .iter()
        .all(|e| e["poison"].is_null() && e["kind"].is_null()));
    // The same events whatever the number of workers.
    for workers in [2, 3] {
        let (many, skipped_many, _) = backfill_skipping(RARELY_FAILING, workers);
        assert_eq!(
            (many, skipped_many),
            (records.clone(), skipped),
            "{workers}"
        );
    }
}

#[test]
fn under_stop_the_first_failing_event_ends_the_step() {
    let mut sink = Recorder::default();
    let (scenario, settings) = crate::script::tests::set_up(RARELY_FAILING, 11, &[]);
    let mut p = Pipeline::new(scenario, &settings, 11, &mut sink, Arc::default());
    let end = DateTime::from_timestamp(1_705_312_800, 0).unwrap();
    let err = p.backfill(end, 3_000, 1.0, &Shutdown::new()).unwrap_err();
    assert!(err.to_string().contains("rare path"), "{err}");
}

#[test]
fn errors_that_are_not_the_events_own_stop_even_under_skip() {
    // The follow-up cap is the stream's limit, not one event's failure.
    let source = "fn event(ctx) { ctx.follow_up(1000, \"echo\", 1); #{ customer_id: \"c\" } }\n\
                  fn echo(ctx, n) { ctx.follow_up(1000, \"echo\", n); ctx.follow_up(1000, \"echo\", n); #{ customer_id: \"c\" } }";
    let mut sink = Recorder::default();
    let mut p = pipeline(source, &mut sink, &[("MAX_FOLLOW_UPS", "100")]);
    p.on_error(OnError::Skip);
    let err = p.sample(monday(), 100_000).unwrap_err();
    assert!(matches!(err, PipelineError::FollowUpCap { .. }), "{err}");
}

/// Streams revision 1 of `script(1)` for 200 ms, then swaps in `script(2)` as revision 2 and
/// streams `seconds` more under `on_error = skip`; returns the `v` of each event and the
/// notices.
fn reload_under_skip(
    script: impl Fn(u32) -> String,
    workers: usize,
    seconds: i64,
) -> (Vec<(String, i64)>, Vec<String>, Arc<Metrics>) {
    let mut sink = Recorder::default();
    let metrics = Arc::new(Metrics::default());
    let mut notices = Vec::new();
    let mut report = |notice: StreamNotice| {
        notices.push(match notice {
            StreamNotice::RolledBack {
                from,
                to,
                health,
                cause,
            } => {
                let cause = cause.map(|c| format!(" {c}")).unwrap_or_default();
                format!(
                    "rolled back {from}->{to} {}/{}{cause}",
                    health.failures, health.attempts
                )
            }
            StreamNotice::Skipped { revision, .. } => format!("skipped {revision}"),
            StreamNotice::BackfillDone { .. } => "backfill".into(),
        })
    };
    let (scenario, settings) = crate::script::tests::set_up(&script(1), 11, &[]);
    let mut p = Pipeline::new(scenario, &settings, 11, &mut sink, metrics.clone());
    p.set_workers(workers).unwrap();
    p.on_error(OnError::Skip);
    p.report_to(&mut report);
    let (tx, rx) = std::sync::mpsc::channel();
    p.accept_reloads(rx);
    let time = TimeSource::paused();
    let now = monday();
    let clock = SimClock::on(time.clone(), now);
    let until = now + chrono::Duration::milliseconds(200);
    p.live(&clock, &Shutdown::new(), Some(until)).unwrap();
    let mut next = Scenario::from_source(Path::new("t.rhai"), &script(2)).unwrap();
    let settings = resolve(&UserInput::default(), &next.config().unwrap()).unwrap();
    next.setup(&settings, 11, 0).unwrap();
    let forks = (1..workers).map(|_| next.fork().unwrap()).collect();
    tx.send(Candidate {
        scenario: next,
        forks,
        settings,
        revision: 2,
        encoder: None,
    })
    .unwrap();
    let clock = SimClock::on(time, until);
    let until = until + chrono::Duration::seconds(seconds);
    p.live(&clock, &Shutdown::new(), Some(until)).unwrap();
    drop(p);
    let made = sink
        .records
        .iter()
        .map(|(_, e)| {
            (
                e["v"].as_str().unwrap().to_string(),
                e["seq"].as_i64().unwrap(),
            )
        })
        .collect();
    (made, notices, metrics)
}

/// Revision 2 fails every `every`-th event (by its random draw); 1 never does.
fn failing_from_revision_2(every: u32) -> impl Fn(u32) -> String {
    move |revision| {
        let fail = if revision == 2 {
            format!("if rand_int(1, {every}) == 1 {{ throw \"broken path\"; }}")
        } else {
            String::new()
        };
        format!(
            "fn config() {{ #{{ rate: 60000.0, peak_factor: 1.0 }} }}\n\
             fn event(ctx) {{ {fail} remember(\"last\", ctx.seq); \
             #{{ customer_id: `c${{ctx.seq % 5}}`, seq: ctx.seq, v: \"r{revision}\" }} }}"
        )
    }
}

#[test]
fn a_reloaded_revision_that_fails_too_often_is_rolled_back_and_the_stream_goes_on() {
    // 1,000 events a second; revision 2 fails one event in 5, far over 1%.
    let (made, notices, metrics) = reload_under_skip(failing_from_revision_2(5), 1, 2);
    let rolled: Vec<&String> = notices.iter().filter(|n| n.starts_with("rolled")).collect();
    assert_eq!(rolled.len(), 1, "{notices:?}");
    assert!(rolled[0].starts_with("rolled back 2->1 "), "{}", rolled[0]);
    let first_new = made.iter().position(|(v, _)| v == "r2").expect("r2 ran");
    let back = made[first_new..]
        .iter()
        .position(|(v, _)| v == "r1")
        .expect("r1 runs again")
        + first_new;
    assert!(
        made[back..].iter().all(|(v, _)| v == "r1"),
        "one rollback, for good"
    );
    assert!(made.len() > 2_000, "the stream went on: {}", made.len());
    // Every sequence number once, in order, but those of the skipped events.
    let seqs: Vec<i64> = made.iter().map(|(_, s)| *s).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let numbers = (*seqs.last().unwrap() + 1) as u64;
    assert_eq!(numbers, made.len() as u64 + metrics.script_errors());
    assert_eq!(metrics.revision(), 1);
    assert_eq!(metrics.rollbacks(), 1);
    assert!(metrics.script_errors() > 0);
}

#[test]
fn a_reloaded_rate_curve_that_fails_later_is_rolled_back() {
    // Revision 2's curve fails from the stream's second minute on (it is sampled once a
    // minute), long after the check of its first events.
    let script = |revision: u32| {
        let rate = if revision == 2 {
            "fn rate(t) { if t >= 1705312860000 { throw \"no rate for this hour\"; } 600.0 }"
        } else {
            ""
        };
        format!(
            "fn config() {{ #{{ rate: 600.0, peak_factor: 1.0 }} }}\n{rate}\n\
             fn event(ctx) {{ #{{ customer_id: \"c\", seq: ctx.seq, v: \"r{revision}\" }} }}"
        )
    };
    let (made, notices, metrics) = reload_under_skip(script, 1, 70);
    let rolled: Vec<&String> = notices.iter().filter(|n| n.starts_with("rolled")).collect();
    assert_eq!(rolled.len(), 1, "{notices:?}");
    assert!(rolled[0].contains("no rate for this hour"), "{}", rolled[0]);
    assert_eq!(made.last().unwrap().0, "r1");
    assert!(made.iter().any(|(v, _)| v == "r2"));
    assert_eq!(metrics.revision(), 1);
}

#[test]
fn a_rollback_made_ahead_by_workers_gives_what_one_worker_gives() {
    let one = reload_under_skip(failing_from_revision_2(5), 1, 2).0;
    let two = reload_under_skip(failing_from_revision_2(5), 2, 2).0;
    assert_eq!(one, two);
}

#[test]
fn a_reloaded_revision_that_fails_rarely_stays_with_its_failures_skipped() {
    // One in 1,000: under 1% of its events, and never 10 in a row.
    let (made, notices, metrics) = reload_under_skip(failing_from_revision_2(1_000), 1, 2);
    assert!(
        notices.iter().all(|n| !n.starts_with("rolled")),
        "{notices:?}"
    );
    assert_eq!(made.last().unwrap().0, "r2");
    assert_eq!(metrics.revision(), 2);
    assert_eq!(metrics.rollbacks(), 0);
}

/// A group of one member whose shards are given by the test: shard `s` from arrival `from`.
struct FixedShare {
    ownership: Ownership,
    /// Shards to take on, behind the timeline, at the first step after arrival `at`.
    later: Option<(u64, u32, u64)>,
    commits: Vec<u64>,
}

impl Share for FixedShare {
    fn ownership(&self) -> &Ownership {
        &self.ownership
    }
    fn step(&mut self, next: u64) -> Result<Vec<CatchUp>, PipelineError> {
        match self.later {
            Some((at, shard, from)) if next >= at => {
                self.later = None;
                self.ownership.take(shard, from);
                Ok(vec![CatchUp { shard, from }])
            }
            _ => Ok(Vec::new()),
        }
    }
    fn commit(&mut self, next: u64) -> Result<(), PipelineError> {
        self.commits.push(next);
        Ok(())
    }
    fn all_reached(&mut self, _total: u64) -> Result<bool, PipelineError> {
        Ok(true)
    }
    fn live_origin(&self) -> Nanos {
        0
    }
}

#[test]
fn a_member_makes_its_shards_arrivals_numbered_by_their_place_and_catches_up_a_shard_taken_late() {
    let mut alone = Recorder::default();
    pipeline(SEQ_EVENT, &mut alone, &[])
        .backfill(monday(), 3_000, 1.0, &Shutdown::new())
        .unwrap();
    let mut sink = Recorder::default();
    let mut p = pipeline(SEQ_EVENT, &mut sink, &[]);
    let mut ownership = Ownership::none(3);
    ownership.take(0, 0);
    // Shard 2 is taken on at arrival 1,024, from arrival 700: 700..1024 are made as a catch-up.
    p.share_with(Box::new(FixedShare {
        ownership,
        later: Some((1_024, 2, 700)),
        commits: Vec::new(),
    }));
    p.backfill(monday(), 3_000, 1.0, &Shutdown::new()).unwrap();
    drop(p);
    let seqs: Vec<i64> = sink
        .records
        .iter()
        .map(|(_, e)| e["seq"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = (0..3_000)
        .filter(|i| i % 3 == 0 || (i % 3 == 2 && *i >= 700))
        .collect();
    let mut sorted = seqs.clone();
    sorted.sort();
    assert_eq!(
        sorted, expected,
        "each owned arrival once, from its shard's hand-over on"
    );
    // Each arrival is the event one instance alone makes of it, timestamp included.
    for (time, event) in &sink.records {
        let seq = event["seq"].as_i64().unwrap() as usize;
        assert_eq!(
            (time, event),
            (&alone.records[seq].0, &alone.records[seq].1)
        );
    }
}
