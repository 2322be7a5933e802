//! A bounded worker pool: a few threads take jobs from a shared queue, in job order.
//! Used wherever kiln fetches, pushes or unpacks many things at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Runs `f` on every job on at most `threads` threads (at least one, never more than
/// there are jobs), each thread taking the next job in order as it frees up. Returns the
/// results in job order.
///
/// After a job fails no further job is started (those running finish); the error
/// returned is that of the earliest job, in job order, that failed.
pub fn run_parallel<T, R, E>(
    jobs: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E>
where
    T: Sync,
    R: Send,
    E: Send,
{
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<R, E>>>> = Mutex::new(jobs.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, jobs.len().max(1)) {
            s.spawn(|| loop {
                if failed.load(Ordering::SeqCst) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { break };
                let r = f(job);
                if r.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                results.lock().expect("results lock")[i] = Some(r);
            });
        }
    });
    let mut out = Vec::with_capacity(jobs.len());
    // A job not started because another failed: that failure is the one reported.
    for r in results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .flatten()
    {
        out.push(r?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn results_in_job_order() {
        let jobs: Vec<u64> = (0..50).collect();
        let out = run_parallel(&jobs, 4, |&j| {
            // Later jobs finish first.
            std::thread::sleep(Duration::from_micros((50 - j) * 100));
            Ok::<_, String>(j * 2)
        })
        .unwrap();
        assert_eq!(out, jobs.iter().map(|j| j * 2).collect::<Vec<_>>());
    }

    #[test]
    fn zero_jobs() {
        let jobs: Vec<u32> = Vec::new();
        let out = run_parallel(&jobs, 8, |_| Err::<u32, _>("never called")).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn zero_threads_means_one() {
        let out = run_parallel(&[1, 2, 3], 0, |&j| Ok::<_, ()>(j + 1)).unwrap();
        assert_eq!(out, vec![2, 3, 4]);
    }

    #[test]
    fn first_error_stops_the_rest() {
        let jobs: Vec<usize> = (0..100).collect();
        let started = AtomicUsize::new(0);
        let r = run_parallel(&jobs, 2, |&j| {
            started.fetch_add(1, Ordering::SeqCst);
            if j == 3 {
                Err(format!("job {j} failed"))
            } else {
                std::thread::sleep(Duration::from_millis(2));
                Ok(j)
            }
        });
        assert_eq!(r.unwrap_err(), "job 3 failed");
        // Two threads: at most the job running beside the failing one is started after it.
        assert!(started.load(Ordering::SeqCst) <= 6, "{started:?}");
    }

    #[test]
    fn earliest_failed_job_wins() {
        let jobs: Vec<usize> = (0..4).collect();
        // All four run at once; job 1 fails last in time but first in order.
        let r = run_parallel(&jobs, 4, |&j| {
            if j == 1 {
                std::thread::sleep(Duration::from_millis(50));
            }
            if j % 2 == 1 {
                Err(j)
            } else {
                Ok(j)
            }
        });
        assert_eq!(r.unwrap_err(), 1);
    }
}
