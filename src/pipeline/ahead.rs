//! A batch's events made ahead of their turn by the other workers while the first one commits.
//!
//! The batch is cut into chunks of [`CHUNK`] jobs. Helper threads (the workers after the first)
//! claim chunks in order and make them; the committing thread takes the chunks in order and
//! commits their events one by one. When the chunk it needs is still being made, it does not
//! wait: it claims the next unclaimed chunk and makes that, and waits only once every chunk is
//! claimed. So the helpers keep making while the first worker commits, and the first worker
//! makes what it has time for: the work of a batch is spread over the cores instead of every
//! helper idling through the commit of the whole batch (see `Pipeline::emit_jobs`).
//!
//! A chunk made while earlier events of the batch were being committed may have read what they
//! wrote: the pipeline checks every event made here against the writes committed since the
//! batch began ([`super::workers::Made::holds`]), as it checks any event made ahead.

use std::sync::{Condvar, Mutex, MutexGuard};

use super::workers::{Job, Made, MakeOptions, Worker};
use crate::sync::lock;

/// Jobs claimed at once: a batch of 2,048 is 64 chunks, so the last chunk, committed while the
/// helpers have nothing left to make, is a small part of the batch; and a claim costs a lock
/// every 32 events.
pub const CHUNK: usize = 32;

/// The chunks of one batch, shared by the threads that make them and the one that commits them.
pub struct Board<'b> {
    jobs: &'b [Job],
    /// The sequence number each job is made with.
    seqs: &'b [i64],
    options: MakeOptions,
    state: Mutex<State>,
    /// Signalled when a chunk is made or a helper leaves.
    changed: Condvar,
}

/// What the threads share of a board.
struct State {
    /// The first chunk nobody claimed; chunks are claimed in order.
    next: usize,
    /// Chunks made and not yet taken.
    made: Vec<Option<Vec<Made>>>,
    /// Helpers still at work.
    helping: usize,
    /// No more claims: the batch ended early, or the workers were replaced.
    stopped: bool,
}

impl<'b> Board<'b> {
    /// A board for `jobs`, the `i`-th made as number `seqs[i]`, for `helpers` helper threads.
    pub fn new(jobs: &'b [Job], seqs: &'b [i64], options: MakeOptions, helpers: usize) -> Self {
        Self {
            jobs,
            seqs,
            options,
            state: Mutex::new(State {
                next: 0,
                made: (0..jobs.len().div_ceil(CHUNK)).map(|_| None).collect(),
                helping: helpers,
                stopped: false,
            }),
            changed: Condvar::new(),
        }
    }

    /// A helper's work: makes chunks with `worker` until none is left or the board stops.
    pub fn help(&self, worker: &mut Worker) {
        // Leaving, by a panic too, is told to the committing thread, which may be waiting for
        // a chunk this helper claimed.
        let _leaving = Leaving(self);
        loop {
            // Claimed in a statement of its own: the lock is let go before the making.
            let claimed = self.claim(&mut self.state());
            let Some(chunk) = claimed else { break };
            let made = self.make(chunk, worker);
            self.state().made[chunk] = Some(made);
            self.changed.notify_all();
        }
    }

    /// The made events of `chunk` (the chunks are taken in order). A chunk nobody claimed is
    /// made here with `worker`; while a helper is making it, the next unclaimed chunks are
    /// made here meanwhile, and once none is left, this waits. A chunk whose helper left
    /// without making it (it panicked) is made here too.
    pub fn take(&self, chunk: usize, worker: &mut Worker) -> Vec<Made> {
        let mut state = self.state();
        loop {
            if let Some(made) = state.made[chunk].take() {
                return made;
            }
            let claimed = chunk < state.next;
            if !claimed || state.helping == 0 {
                if !claimed {
                    state.next = chunk + 1;
                }
                drop(state);
                return self.make(chunk, worker);
            }
            match self.claim(&mut state) {
                Some(other) => {
                    drop(state);
                    let made = self.make(other, worker);
                    state = self.state();
                    state.made[other] = Some(made);
                }
                None => {
                    state = self
                        .changed
                        .wait(state)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
            }
        }
    }

    /// No chunk is claimed from now on; the helpers finish the one they are making.
    pub fn stop(&self) {
        self.state().stopped = true;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Claims the next chunk, if one is left and the board goes on.
    fn claim(&self, state: &mut State) -> Option<usize> {
        if state.stopped || state.next >= state.made.len() {
            return None;
        }
        state.next += 1;
        Some(state.next - 1)
    }

    fn make(&self, chunk: usize, worker: &mut Worker) -> Vec<Made> {
        let first = chunk * CHUNK;
        let last = (first + CHUNK).min(self.jobs.len());
        self.jobs[first..last]
            .iter()
            .zip(&self.seqs[first..last])
            .map(|(job, &seq)| worker.make(job, seq, self.options))
            .collect()
    }
}

/// Stops a board's claims when dropped: however the committing thread's batch ends (its limit,
/// an error, a panic), the helpers then finish the chunk they are making and leave.
pub struct StopOnDrop<'a, 'b>(pub &'a Board<'b>);

impl Drop for StopOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Counts a helper out when dropped.
struct Leaving<'a, 'b>(&'a Board<'b>);

impl Drop for Leaving<'_, '_> {
    fn drop(&mut self) {
        self.0.state().helping -= 1;
        self.0.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::EventEncoder;

    /// A worker whose events carry the sequence number they were made with.
    fn worker() -> Worker {
        let (scenario, settings) = crate::script::tests::set_up(
            r#"fn event(ctx) { #{ customer_id: "c", seq: ctx.seq } }"#,
            1,
            &[],
        );
        Worker::new(scenario, EventEncoder::new(&settings.key_field))
    }

    fn jobs(count: usize) -> (Vec<Job>, Vec<i64>) {
        let jobs = (0..count as u64)
            .map(|id| Job::Arrival {
                time_ms: 1_705_312_800_000,
                id,
            })
            .collect();
        (jobs, (0..count as i64).collect())
    }

    fn seqs(made: &[Made]) -> Vec<i64> {
        made.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn without_helpers_the_committing_thread_makes_each_chunk_as_it_needs_it() {
        let (jobs, numbers) = jobs(70);
        let board = Board::new(&jobs, &numbers, MakeOptions::default(), 0);
        let mut first = worker();
        assert_eq!(
            seqs(&board.take(0, &mut first)),
            (0..32).collect::<Vec<_>>()
        );
        assert_eq!(board.state().next, 1, "only the chunk needed was made");
        assert_eq!(
            seqs(&board.take(1, &mut first)),
            (32..64).collect::<Vec<_>>()
        );
        assert_eq!(
            seqs(&board.take(2, &mut first)),
            (64..70).collect::<Vec<_>>()
        );
    }

    #[test]
    fn while_a_helper_makes_the_chunk_needed_the_committing_thread_makes_the_next_ones() {
        let (jobs, numbers) = jobs(4 * CHUNK);
        let board = Board::new(&jobs, &numbers, MakeOptions::default(), 1);
        // A helper claimed chunk 0 and is slow to make it.
        let claimed = board.claim(&mut board.state());
        assert_eq!(claimed, Some(0));
        let (finish, finished) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|scope| {
            let board = &board;
            scope.spawn(move || {
                let mut helper = worker();
                // Made only once the committing thread has claimed every other chunk.
                finished.recv().unwrap();
                let made = board.make(0, &mut helper);
                board.state().made[0] = Some(made);
                board.state().helping -= 1;
                board.changed.notify_all();
            });
            let watcher = scope.spawn(move || {
                while board.state().next < 4 {
                    std::thread::yield_now();
                }
                finish.send(()).unwrap();
            });
            let mut first = worker();
            assert_eq!(
                seqs(&board.take(0, &mut first)),
                (0..32).collect::<Vec<_>>()
            );
            watcher.join().unwrap();
            // Chunks 1 to 3 were made meanwhile, by the committing thread.
            for chunk in 1..4 {
                let made = board.state().made[chunk].take();
                assert_eq!(made.map(|m| m.len()), Some(CHUNK), "chunk {chunk}");
            }
        });
    }

    #[test]
    fn helpers_make_every_chunk_once_and_it_is_taken_in_order() {
        let (jobs, numbers) = jobs(10 * CHUNK + 5);
        let board = Board::new(&jobs, &numbers, MakeOptions::default(), 2);
        let mut taken = Vec::new();
        std::thread::scope(|scope| {
            for _ in 0..2 {
                let board = &board;
                scope.spawn(move || board.help(&mut worker()));
            }
            let mut first = worker();
            for chunk in 0..11 {
                taken.extend(seqs(&board.take(chunk, &mut first)));
            }
        });
        assert_eq!(taken, (0..10 * CHUNK as i64 + 5).collect::<Vec<_>>());
        assert_eq!(board.state().helping, 0);
    }

    #[test]
    fn a_chunk_whose_helper_panicked_is_made_by_the_committing_thread() {
        let (jobs, numbers) = jobs(2 * CHUNK);
        let board = Board::new(&jobs, &numbers, MakeOptions::default(), 1);
        let panicked = std::thread::scope(|scope| {
            let board = &board;
            let helper = scope.spawn(move || {
                let _leaving = Leaving(board);
                // Claims every chunk, then fails before making any.
                while board.claim(&mut board.state()).is_some() {}
                panic!("a helper fails");
            });
            let mut first = worker();
            assert_eq!(board.take(0, &mut first).len(), CHUNK);
            assert_eq!(board.take(1, &mut first).len(), CHUNK);
            helper.join().is_err()
        });
        assert!(panicked);
    }

    #[test]
    fn a_stopped_board_gives_no_more_chunks_to_its_helpers() {
        let (jobs, numbers) = jobs(3 * CHUNK);
        let board = Board::new(&jobs, &numbers, MakeOptions::default(), 1);
        board.stop();
        board.help(&mut worker());
        let state = board.state();
        assert_eq!((state.next, state.helping), (0, 0));
        assert!(state.made.iter().all(Option::is_none));
    }
}
