//! Two futures run side by side on one thread (wasm has no other): each polled whenever the task
//! wakes, the pair ready when both are.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;

/// Both outputs, once both futures are done.
pub async fn both<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut ra, mut rb) = (None, None);
    poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => Poll::Ready((x, y)),
            (x, y) => {
                (ra, rb) = (x, y);
                Poll::Pending
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Ready after `n` polls, noting the order it finished in.
    async fn after(n: u32, order: &Cell<u32>) -> u32 {
        let mut left = n;
        poll_fn(|cx| {
            if left == 0 {
                order.set(order.get() + 1);
                return Poll::Ready(order.get());
            }
            left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await
    }

    #[test]
    fn both_run_side_by_side_and_the_pair_waits_for_the_slower() {
        for (a, b, want) in [(0, 3, (1, 2)), (3, 0, (2, 1)), (2, 2, (1, 2))] {
            let order = Cell::new(0);
            let got = futures::executor::block_on(both(after(a, &order), after(b, &order)));
            assert_eq!(got, want, "{a} {b}");
        }
    }
}
