//! The private executor of the blocking calls: a blocked thread drives the same future an async
//! task would, so blocked threads and async tasks wait in one FIFO queue (the gate's semaphore)
//! and mixing them cannot deadlock or reorder.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Instant;

/// Panics (with Tokio's own message) when the current thread drives a Tokio runtime: blocking
/// there could starve the very task that would release the gate. Tokio's check is private; its
/// `blocking_recv` on a ready channel runs that check and nothing else.
#[inline]
pub(super) fn assert_blocking_allowed() {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let _ = tx.send(());
    let _ = rx.blocking_recv();
}

struct ThreadWaker(thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives `fut` on the current thread, parking between polls; `None` when `deadline` passes
/// (the future is then dropped, which is how a blocking caller leaves the queue).
pub(super) fn block_on<F: Future>(fut: F, deadline: Option<Instant>) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        match deadline {
            None => thread::park(),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return None;
                }
                thread::park_timeout(d - now);
            }
        }
    }
}
