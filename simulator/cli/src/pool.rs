//! Running independent jobs on worker threads (`std::thread::scope`), results in input
//! order so that output never depends on the thread count or on scheduling.
//!
//! Each job (one simulated run) is single-threaded and shares nothing mutable with the
//! others; workers pull the next index from an atomic counter. A job that panics is
//! caught and reported as that job's error, so one bad seed does not hide the others.
//! Not covered: cancellation, work stealing beyond the shared counter.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most worker threads (a sanity bound on `--jobs`).
pub const JOBS_MAX: usize = 1024;

/// The worker count for `--jobs`: the flag's value, or the available parallelism.
pub fn jobs(flag: Option<u64>) -> anyhow::Result<usize> {
    let jobs = match flag {
        Some(j) => usize::try_from(j).map_err(|_| anyhow::anyhow!("--jobs {j}: too many"))?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    Ok(jobs.clamp(1, JOBS_MAX))
}

/// Run `work` on every item with up to `jobs` threads; `done` is called with each item's
/// result as it finishes (from the worker, e.g. to advance a progress bar). Results are in `items` order; a
/// panicking item yields `Err(panic message)`.
pub fn run_parallel<T, R>(
    jobs: usize,
    items: &[T],
    work: impl Fn(&T) -> R + Sync,
    done: impl Fn(&Result<R, String>) + Sync,
) -> Vec<Result<R, String>>
where
    T: Sync,
    R: Send,
{
    assert!((1..=JOBS_MAX).contains(&jobs), "jobs out of range: {jobs}");
    let threads = jobs.min(items.len()).max(1);
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut mine = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= items.len() {
                break;
            }
            let r = catch_unwind(AssertUnwindSafe(|| work(&items[i]))).map_err(panic_message);
            done(&r);
            mine.push((i, r));
        }
        mine
    };
    let mut results: Vec<(usize, Result<R, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(worker)).collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a worker panicked outside a job"))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    assert_eq!(results.len(), items.len());
    results.into_iter().map(|(_, r)| r).collect()
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn results_are_in_input_order_whatever_the_thread_count() {
        // Goal: the same items give the same output for 1, 3 and 16 threads.
        let items: Vec<u64> = (0..200).rev().collect();
        let count = AtomicU64::new(0);
        let expected: Vec<u64> = items.iter().map(|x| x * x).collect();
        for jobs in [1, 3, 16] {
            count.store(0, Ordering::Relaxed);
            let got: Vec<u64> = run_parallel(
                jobs,
                &items,
                |x| x * x,
                |_| {
                    count.fetch_add(1, Ordering::Relaxed);
                },
            )
            .into_iter()
            .map(Result::unwrap)
            .collect();
            assert_eq!(got, expected);
            assert_eq!(count.load(Ordering::Relaxed), 200);
        }
        assert!(run_parallel(4, &[] as &[u64], |x| *x, |_| {}).is_empty());
    }

    #[test]
    fn a_panicking_job_is_reported_not_fatal() {
        // Goal: one panicking item becomes an Err with its message; the others still run.
        let items = [1u32, 2, 3];
        let got = run_parallel(
            2,
            &items,
            |&x| if x == 2 { panic!("boom {x}") } else { x },
            |_| {},
        );
        assert_eq!(got, vec![Ok(1), Err("boom 2".to_string()), Ok(3)]);
    }
}
