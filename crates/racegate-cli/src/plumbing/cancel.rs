//! A cancellation token: set once (an interrupt, a caller giving up), observed by every task and
//! thread of an engine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// Cheap to clone; every clone sees the same cancellation. Async code awaits
/// [`cancelled`](Self::cancelled); threads poll [`is_cancelled`](Self::is_cancelled) or block in
/// [`wait_timeout`](Self::wait_timeout).
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    notify: Notify,
    // For threads: the same flag under a lock, so a blocked waiter cannot miss the wake-up.
    flag: Mutex<bool>,
    changed: Condvar,
}

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Cancel: every waiter wakes, every later check sees it.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
        // A poisoned lock still holds a plain bool.
        let mut flag = self.inner.flag.lock().unwrap_or_else(|p| p.into_inner());
        *flag = true;
        self.inner.changed.notify_all();
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Resolves once cancelled.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses nothing.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            // Register before checking the flag so a cancel in between is not missed.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// Block the calling thread until cancelled or `timeout` passes; returns whether it was
    /// cancelled. For engines that run on plain threads (hunt's executor).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let flag = self.inner.flag.lock().unwrap_or_else(|p| p.into_inner());
        let (flag, _) = self
            .inner
            .changed
            .wait_timeout_while(flag, timeout, |cancelled| !*cancelled)
            .unwrap_or_else(|p| p.into_inner());
        *flag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_waiters() {
        let t = CancelToken::new();
        let t2 = t.clone();
        let waiter = tokio::spawn(async move { t2.cancelled().await });
        t.cancel();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("waiter woke")
            .unwrap();
        assert!(t.is_cancelled());
        t.cancelled().await;
    }

    #[test]
    fn wakes_blocked_threads() {
        let t = CancelToken::new();
        assert!(
            !t.wait_timeout(Duration::from_millis(1)),
            "not cancelled yet"
        );
        let t2 = t.clone();
        // Bounded: the waiter gives up after 30 s, so a lost wake-up fails instead of hanging.
        let waiter = std::thread::spawn(move || t2.wait_timeout(Duration::from_secs(30)));
        t.cancel();
        assert!(waiter.join().unwrap(), "the blocked thread saw the cancel");
        assert!(
            t.wait_timeout(Duration::ZERO),
            "and later waits return at once"
        );
    }
}
