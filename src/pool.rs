//! The ordered worker pool: jobs run on worker threads, results come back in
//! job order. Scanning uses it inside the library; the `segpack` CLI uses it
//! to assemble output blocks. Results never depend on the number of threads.

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
    #[cfg(feature = "parallel")]
    if threads > 1 && jobs.len() > 1 {
        return map_parallel(jobs, threads, &work, &mut consume);
    }
    let _ = threads;
    for (i, job) in jobs.iter().enumerate() {
        consume(i, work(job));
    }
}

#[cfg(feature = "parallel")]
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

/// Worker threads for `threads` (0: one per core, as
/// `std::thread::available_parallelism` says; 1 where it cannot tell).
///
/// More workers than [`MAX_THREADS`] are never started: past the core count
/// they only cost memory, and a huge request must not fail to spawn.
///
/// ```
/// assert_eq!(segpack::pool::thread_count(3), 3);
/// assert!(segpack::pool::thread_count(0) >= 1);
/// assert_eq!(segpack::pool::thread_count(100_000), segpack::pool::MAX_THREADS);
/// ```
pub fn thread_count(threads: usize) -> usize {
    if threads > 0 {
        return threads.min(MAX_THREADS);
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS))
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
}
