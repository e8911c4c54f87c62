//! The ordered worker pool: jobs run on worker threads, results come back in
//! job order. Validation (function bodies), scanning and `optimize`'s
//! compressions use it inside the library; the `segpack` CLI uses it to
//! assemble output blocks. Results
//! never depend on the number of threads, nor on which pool runs them:
//!
//! * feature `rayon`: the rayon pool the call is made from (rayon's global
//!   pool outside one), so a producer that runs rayon runs one pool;
//! * else feature `parallel`: worker threads of its own, over crossbeam
//!   channels, started for the call;
//! * else, or with one thread: the calling thread.

/// Runs `work` on every job and hands the results to `consume` in job order,
/// on the calling thread.
///
/// With the `parallel` feature and `threads > 1`, a pool of `threads`
/// workers takes job numbers from a bounded crossbeam channel while the
/// calling thread consumes: at most `2 × threads` jobs are in flight, and a
/// reorder buffer keyed by job number hands results back in order, so
/// `consume` sees exactly the sequence of the serial loop. Where threads
/// cannot be started (wasm32 without threads), everything runs on the
/// calling thread.
///
/// With the `rayon` feature (which takes precedence) and `threads > 1`, jobs
/// run in batches of `4 × threads` on the current rayon pool; the calling
/// thread consumes one batch while the pool runs the next.
///
/// ```
/// let jobs = [1u64, 2, 3, 4, 5];
/// let mut squares = Vec::new();
/// segpack::pool::map_ordered(&jobs, 2, |n| n * n, |i, sq| squares.push((i, sq)));
/// assert_eq!(squares, [(0, 1), (1, 4), (2, 9), (3, 16), (4, 25)]);
/// ```
pub fn map_ordered<J: Sync, R: Send>(
    jobs: &[J],
    threads: usize,
    work: impl Fn(&J) -> R + Sync,
    mut consume: impl FnMut(usize, R),
) {
    #[cfg(feature = "rayon")]
    if threads > 1 && jobs.len() > 1 {
        return map_rayon(jobs, threads, &work, &mut consume);
    }
    #[cfg(all(feature = "parallel", not(feature = "rayon")))]
    if threads > 1 && jobs.len() > 1 {
        return map_parallel(jobs, threads, &work, &mut consume);
    }
    let _ = threads;
    for (i, job) in jobs.iter().enumerate() {
        consume(i, work(job));
    }
}

/// Batches of jobs on the current rayon pool, consumed in order on the
/// calling thread while the pool runs the next batch. `in_place_scope` runs
/// its body here, so `consume` need not be `Send`; when the calling thread
/// is a worker of the pool it runs pending jobs while it waits, so a pool of
/// any size, one included, makes progress.
#[cfg(feature = "rayon")]
fn map_rayon<J: Sync, R: Send>(
    jobs: &[J],
    threads: usize,
    work: &(impl Fn(&J) -> R + Sync),
    consume: &mut impl FnMut(usize, R),
) {
    use rayon::prelude::*;

    let batch = 4 * threads.min(MAX_THREADS);
    let run = |batch: &[J], results: &mut Vec<R>| {
        batch.par_iter().map(work).collect_into_vec(results);
    };
    let mut batches = jobs.chunks(batch);
    let mut done = Vec::with_capacity(batch);
    let mut next = Vec::with_capacity(batch);
    if let Some(first) = batches.next() {
        run(first, &mut done);
    }
    let mut consumed = 0;
    loop {
        let following = batches.next();
        rayon::in_place_scope(|scope| {
            if let Some(following) = following {
                let next = &mut next;
                scope.spawn(move |_| run(following, next));
            }
            for result in done.drain(..) {
                consume(consumed, result);
                consumed += 1;
            }
        });
        if following.is_none() {
            break;
        }
        std::mem::swap(&mut done, &mut next);
    }
}

#[cfg(all(feature = "parallel", not(feature = "rayon")))]
fn map_parallel<J: Sync, R: Send>(
    jobs: &[J],
    threads: usize,
    work: &(impl Fn(&J) -> R + Sync),
    consume: &mut impl FnMut(usize, R),
) {
    use crossbeam_channel::{bounded, unbounded};
    use std::collections::BTreeMap;

    let threads = threads.min(MAX_THREADS);
    let window = 2 * threads;
    // Jobs go out by number; results come back tagged with it.
    let (job_tx, job_rx) = bounded::<usize>(window);
    let (result_tx, result_rx) = unbounded::<(usize, R)>();
    std::thread::scope(|scope| {
        let mut started = 0;
        for _ in 0..threads {
            let job_rx = job_rx.clone();
            let result_tx = result_tx.clone();
            let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
                for i in job_rx {
                    if result_tx.send((i, work(&jobs[i]))).is_err() {
                        return;
                    }
                }
            });
            // A target without threads refuses the first spawn.
            if spawned.is_err() {
                break;
            }
            started += 1;
        }
        drop(result_tx);
        if started == 0 {
            drop(job_tx);
            for (i, job) in jobs.iter().enumerate() {
                consume(i, work(job));
            }
            return;
        }
        // Invariant: jobs `next..sent` are in flight or waiting in `pending`,
        // never more than `window` of them; `pending` holds finished jobs
        // after `next`, the next one to consume.
        let mut pending: BTreeMap<usize, R> = BTreeMap::new();
        let (mut sent, mut next) = (0, 0);
        while next < jobs.len() {
            while sent < jobs.len() && sent - next < window {
                job_tx.send(sent).expect("workers outlive the sender");
                sent += 1;
            }
            let (i, result) = result_rx.recv().expect("a worker panicked");
            pending.insert(i, result);
            while let Some(result) = pending.remove(&next) {
                consume(next, result);
                next += 1;
            }
        }
        drop(job_tx);
    });
}

/// Runs `a` on the calling thread and `b` beside it, when `threads` (as
/// [`thread_count`] reads it) allows more than one; else `a`, then `b`.
/// Validation runs a data section's headers (which need the module's
/// validator, on this thread) beside the function bodies before it.
#[cfg_attr(not(feature = "module"), allow(dead_code))]
pub(crate) fn join<RA, RB: Send>(
    threads: usize,
    a: impl FnOnce() -> RA,
    b: impl FnOnce() -> RB + Send,
) -> (RA, RB) {
    #[cfg(feature = "rayon")]
    if thread_count(threads) > 1 {
        let mut done_b = None;
        let done_a = rayon::in_place_scope(|scope| {
            scope.spawn(|_| done_b = Some(b()));
            a()
        });
        return (done_a, done_b.expect("the scope ran b"));
    }
    #[cfg(all(feature = "parallel", not(feature = "rayon")))]
    if thread_count(threads) > 1 {
        // `b` stays here if no thread can be started (wasm32 without threads).
        let b = std::sync::Mutex::new(Some(b));
        let take = || b.lock().expect("not poisoned").take();
        return std::thread::scope(|scope| {
            let spawned = std::thread::Builder::new().spawn_scoped(scope, || take().map(|b| b()));
            let done_a = a();
            let done_b = spawned.ok().and_then(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            });
            (
                done_a,
                done_b.unwrap_or_else(|| take().expect("b not taken")()),
            )
        });
    }
    let _ = threads;
    (a(), b())
}

/// Worker threads for `threads`: 0 means one per core (as
/// `std::thread::available_parallelism` says, 1 where it cannot tell), or
/// with the `rayon` feature as many as the current rayon pool has. Without
/// `parallel` or `rayon` it is always 1: no thread is ever started.
///
/// More workers than [`MAX_THREADS`] are never started: past the core count
/// they only cost memory, and a huge request must not fail to spawn.
///
/// ```
/// # #[cfg(any(feature = "parallel", feature = "rayon"))] {
/// assert_eq!(segpack::pool::thread_count(3), 3);
/// assert_eq!(segpack::pool::thread_count(100_000), segpack::pool::MAX_THREADS);
/// # }
/// assert!(segpack::pool::thread_count(0) >= 1);
/// ```
pub fn thread_count(threads: usize) -> usize {
    if cfg!(not(any(feature = "parallel", feature = "rayon"))) {
        return 1;
    }
    if threads > 0 {
        return threads.min(MAX_THREADS);
    }
    #[cfg(feature = "rayon")]
    let cores = rayon::current_num_threads();
    #[cfg(not(feature = "rayon"))]
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(MAX_THREADS)
}

/// The most worker threads ever started.
pub const MAX_THREADS: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order_for_any_thread_count() {
        let jobs: Vec<u64> = (0..200).collect();
        for threads in [1, 2, 3, 8] {
            let mut seen = Vec::new();
            map_ordered(&jobs, threads, |&n| n * 3, |i, r| seen.push((i, r)));
            let expected: Vec<(usize, u64)> = (0..200).map(|i| (i, i as u64 * 3)).collect();
            assert_eq!(seen, expected, "threads {threads}");
        }
    }

    /// Both results, on any number of threads; with more than one, where
    /// threads can be started (not on wasm32 without threads), `b` runs
    /// beside `a`, not after it: `a` waits for `b` to begin.
    #[test]
    fn join_runs_both_and_beside_when_it_can() {
        for threads in [1, 2, 3] {
            assert_eq!(join(threads, || 1, || "b"), (1, "b"), "threads {threads}");
        }
        let threads_start = std::thread::Builder::new().spawn(|| {}).is_ok();
        if thread_count(2) > 1 && threads_start {
            let (tx, rx) = std::sync::mpsc::channel();
            let (a, ()) = join(
                2,
                || rx.recv_timeout(std::time::Duration::from_secs(10)),
                move || tx.send(()).unwrap(),
            );
            assert_eq!(a, Ok(()));
        }
    }

    /// On rayon: in order from outside a pool and from inside pools of one
    /// and two threads (a worker that waits runs jobs, so one thread is
    /// enough), and the jobs run on the pool's threads.
    #[cfg(feature = "rayon")]
    #[test]
    fn rayon_results_come_back_in_order_on_the_callers_pool() {
        let jobs: Vec<u64> = (0..200).collect();
        let expected: Vec<(usize, u64)> = (0..200).map(|i| (i, i as u64 * 3)).collect();
        let run = |threads| {
            let mut seen = Vec::new();
            map_ordered(&jobs, threads, |&n| n * 3, |i, r| seen.push((i, r)));
            seen
        };
        assert_eq!(run(4), expected);
        for pool_threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(pool_threads)
                .build()
                .unwrap();
            pool.install(|| {
                assert_eq!(thread_count(0), pool_threads);
                assert_eq!(run(0), expected, "pool of {pool_threads}");
                assert_eq!(run(3), expected, "pool of {pool_threads}");
                let mut on_pool = Vec::new();
                map_ordered(
                    &jobs,
                    2,
                    |_| rayon::current_thread_index().is_some(),
                    |_, r| on_pool.push(r),
                );
                assert!(on_pool.iter().all(|&r| r), "a job ran off the pool");
            });
        }
    }
}
