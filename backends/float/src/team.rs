//! A team of rayon's workers that stays awake through one forward pass, so
//! that its many short parallel steps (a decode step has four per layer and
//! the head's) do not each wait for a sleeping worker to be woken.
//!
//! [`Team::scope`] occupies the pool's other workers with a loop that
//! spins on the team's ticket until the pass ends. [`run`] hands a step's
//! tasks to that team when the calling thread leads one, and to rayon
//! otherwise, so callers need not know which. Each task runs exactly once;
//! `run` returns after every task has finished, whoever ran it.
//!
//! The ticket packs the step's number, its task count and the next task to
//! claim into one atomic word: a worker claims a task with one
//! compare-and-swap that also proves the step it read the job of is still
//! the current one, so a worker late from an earlier step can never run a
//! task of the next one with the earlier job.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// A step's tasks: `job(i)` for each task `i`.
type Job<'a> = dyn Fn(usize) + Sync + 'a;

/// What the team's workers share.
struct Shared {
    /// `step << 32 | tasks << 16 | next`: the step, its task count and the
    /// next task to claim.
    ticket: AtomicU64,
    /// The current step's job (a `*const &Job`, valid while the step runs).
    job: AtomicPtr<()>,
    /// Tasks of the current step that have finished.
    done: AtomicUsize,
    /// The pass is over: the workers return.
    stop: AtomicBool,
    /// A task of the current step panicked.
    panicked: AtomicBool,
}

/// Most tasks one step may hand the team (the ticket's 16 bits).
const MAX_TASKS: usize = u16::MAX as usize;

thread_local! {
    /// The team the current thread leads, if any.
    static LEADS: Cell<*const Shared> = const { Cell::new(std::ptr::null()) };
    /// The current thread is running a team's task (a step inside it goes
    /// to rayon).
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

/// A team for the duration of one call (see the module documentation).
pub struct Team;

impl Team {
    /// Runs `f` on the current thread while the pool's other workers wait
    /// on its steps, spinning; [`run`] inside `f` (on this thread) uses
    /// them. With one thread, or when already leading a team, `f` just runs.
    pub fn scope<R>(f: impl FnOnce() -> R) -> R {
        let helpers = rayon::current_num_threads().saturating_sub(1);
        if helpers == 0 || !LEADS.with(|l| l.get().is_null()) {
            return f();
        }
        let shared = Shared {
            ticket: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
        };
        rayon::in_place_scope(|s| {
            for _ in 0..helpers {
                let shared = &shared;
                s.spawn(move |_| serve(shared));
            }
            // Stops the helpers however `f` ends (a panic included), so that
            // the scope's end, which waits for them, is reached.
            struct Stop<'a>(&'a Shared);
            impl Drop for Stop<'_> {
                fn drop(&mut self) {
                    LEADS.with(|l| l.set(std::ptr::null()));
                    self.0.stop.store(true, Ordering::Release);
                }
            }
            let _stop = Stop(&shared);
            LEADS.with(|l| l.set(&shared));
            f()
        })
    }
}

/// A helper's loop: claim and run tasks of each step until the pass ends.
fn serve(shared: &Shared) {
    let mut seen = shared.ticket.load(Ordering::Acquire) >> 32;
    let mut idle = 0u32;
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let t = shared.ticket.load(Ordering::Acquire);
        if t >> 32 == seen || !claim_all(shared, t) {
            // Nothing new: spin, then let other threads have the core.
            idle = idle.saturating_add(1);
            if idle < 1 << 14 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
            continue;
        }
        seen = t >> 32;
        idle = 0;
    }
}

/// Claims and runs tasks of the step `t` names while any is left; false if
/// none could be claimed.
fn claim_all(shared: &Shared, mut t: u64) -> bool {
    let mut ran = false;
    loop {
        let (tasks, next) = (((t >> 16) & 0xffff) as usize, (t & 0xffff) as usize);
        if next >= tasks {
            return ran;
        }
        // The job of the step the ticket names: the claim below succeeds
        // only if the ticket is unchanged, i.e. this step is still current
        // and its job still alive (it lives until every task has finished).
        let job = shared.job.load(Ordering::Acquire);
        match shared
            .ticket
            .compare_exchange_weak(t, t + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                // SAFETY: the step is current and this task unfinished, so
                // the job `run` published for it is alive (see above).
                let job = unsafe { &**(job as *const &Job<'_>) };
                IN_TASK.with(|f| f.set(true));
                if catch_unwind(AssertUnwindSafe(|| job(next))).is_err() {
                    shared.panicked.store(true, Ordering::Relaxed);
                }
                IN_TASK.with(|f| f.set(false));
                shared.done.fetch_add(1, Ordering::Release);
                ran = true;
                t += 1;
            }
            Err(now) => {
                if now >> 32 != t >> 32 {
                    return ran;
                }
                t = now;
            }
        }
    }
}

/// Runs `job(i)` for every `i < tasks`, on the team the current thread
/// leads if any, else on rayon's pool; returns when all have finished.
pub fn run(tasks: usize, job: &(dyn Fn(usize) + Sync)) {
    let lead = LEADS.with(|l| l.get());
    if lead.is_null() || tasks > MAX_TASKS || IN_TASK.with(|f| f.get()) {
        use rayon::prelude::*;
        (0..tasks).into_par_iter().for_each(job);
        return;
    }
    // SAFETY: `lead` is the team this thread leads (set by `Team::scope`
    // for the duration of its call, on this thread).
    let shared = unsafe { &*lead };
    let step = (shared.ticket.load(Ordering::Relaxed) >> 32) + 1;
    shared.done.store(0, Ordering::Relaxed);
    let job_ref: &Job<'_> = job;
    shared
        .job
        .store(&job_ref as *const &Job<'_> as *mut (), Ordering::Relaxed);
    // Publishes the job and the reset count with the new step.
    shared
        .ticket
        .store(step << 32 | (tasks as u64) << 16, Ordering::Release);
    claim_all(shared, step << 32 | (tasks as u64) << 16);
    while shared.done.load(Ordering::Acquire) < tasks {
        std::hint::spin_loop();
    }
    if shared.panicked.swap(false, Ordering::Relaxed) {
        panic!("a task of a parallel step panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    /// Every task of every step runs exactly once, with a team or without,
    /// and steps see the results of earlier ones.
    #[test]
    fn every_task_runs_once_per_step() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for lead in [true, false] {
            let counts: Vec<AtomicU32> = (0..500).map(|_| AtomicU32::new(0)).collect();
            let body = || {
                for step in 0..2000usize {
                    let n = 1 + step % 37;
                    run(n, &|i| {
                        counts[(step * 7 + i) % 500].fetch_add(1, Ordering::Relaxed);
                    });
                }
            };
            pool.install(|| if lead { Team::scope(body) } else { body() });
            let total: u32 = counts.iter().map(|c| c.load(Ordering::Relaxed)).sum();
            let want: usize = (0..2000usize).map(|s| 1 + s % 37).sum();
            assert_eq!(total as usize, want, "lead {lead}");
        }
    }
}
