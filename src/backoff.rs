//! Waiting for something another request of the isolate does (its token fetch, its store write,
//! room in the manifest budget) by looking again after a pause. Requests never share a future:
//! each waits on its own timers, in its own request's context. The pauses start short (what is
//! waited for is often a few milliseconds away: a follower that looks every 20 ms from the start
//! adds up to 20 ms to every small object of a burst) and double up to a cap (a long wait, such as
//! a large layer's store write, then costs a few wakeups a second). The wait is counted in pauses
//! taken, so it is bounded however slowly the runtime schedules.

use std::future::Future;

/// What a look found.
#[derive(Debug, PartialEq, Eq)]
pub enum Look<T> {
    /// The wait is over, with this.
    Done(T),
    /// Not yet: look again after a pause.
    Wait,
}

/// Pauses of `first` ms, doubling up to `cap` ms.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: u32,
    pub cap: u32,
}

impl Backoff {
    /// The pauses, in order, without end.
    fn steps(self) -> impl Iterator<Item = u32> {
        let cap = self.cap.max(1);
        std::iter::successors(Some(self.first.max(1)), move |s| {
            Some(s.saturating_mul(2).min(cap))
        })
    }

    /// The pauses taken for a wait of at least `bound` ms, in order (for tests and docs).
    pub fn pauses(self, bound: u32) -> Vec<u32> {
        let mut waited = 0u32;
        self.steps()
            .take_while(|s| {
                let more = waited < bound;
                waited = waited.saturating_add(*s);
                more
            })
            .collect()
    }
}

/// Looks with `look` until it is done, pausing as `backoff` says between looks; `None` once the
/// pauses taken add up to `bound` ms.
pub async fn look_until<T, P, Fut>(
    mut look: impl FnMut() -> Look<T>,
    pause: P,
    backoff: Backoff,
    bound: u32,
) -> Option<T>
where
    P: Fn(u32) -> Fut,
    Fut: Future<Output = ()>,
{
    let (mut waited, mut steps) = (0u32, backoff.steps());
    loop {
        if let Look::Done(t) = look() {
            return Some(t);
        }
        if waited >= bound {
            return None;
        }
        let step = steps.next().unwrap_or(1);
        pause(step).await;
        waited = waited.saturating_add(step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use std::cell::{Cell, RefCell};

    const B: Backoff = Backoff { first: 2, cap: 20 };

    #[test]
    fn pauses_start_short_and_double_up_to_the_cap() {
        assert_eq!(B.pauses(100), [2, 4, 8, 16, 20, 20, 20, 20]);
        assert_eq!(B.pauses(0), Vec::<u32>::new());
        assert_eq!(Backoff { first: 0, cap: 0 }.pauses(3), [1, 1, 1]);
    }

    #[test]
    fn a_wait_ends_when_the_look_is_done_and_takes_the_pauses_in_order() {
        let taken = RefCell::new(Vec::new());
        let looks = Cell::new(0);
        let found = block_on(look_until(
            || {
                looks.set(looks.get() + 1);
                if looks.get() == 4 {
                    Look::Done("landed")
                } else {
                    Look::Wait
                }
            },
            |ms| {
                taken.borrow_mut().push(ms);
                async {}
            },
            B,
            1_000,
        ));
        assert_eq!(found, Some("landed"));
        assert_eq!(*taken.borrow(), [2, 4, 8]);
    }

    #[test]
    fn a_wait_gives_up_once_its_pauses_reach_the_bound() {
        let taken = RefCell::new(Vec::new());
        let found: Option<()> = block_on(look_until(
            || Look::Wait,
            |ms| {
                taken.borrow_mut().push(ms);
                async {}
            },
            B,
            100,
        ));
        assert_eq!(found, None);
        assert_eq!(*taken.borrow(), B.pauses(100));
        let done_at_once: Option<u8> = block_on(look_until(
            || Look::Done(7),
            |_| async { panic!("no pause when already done") },
            B,
            100,
        ));
        assert_eq!(done_at_once, Some(7));
    }
}
