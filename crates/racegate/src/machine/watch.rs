//! Waiting on files: block until one of several lock files could be locked, with an optional
//! deadline, without a thread per waiter.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use super::lock::{blocking_flock, open_ro};

/// Block until one of `paths` could be locked (shared or exclusive), or until `deadline`.
/// Returns `false` on deadline. The lock itself is released again at once: the caller looks
/// again and takes what it needs under the protocol's rules.
///
/// Each path is watched by at most one helper thread per process, blocked in `flock`, shared by
/// every thread waiting on that path. A caller that times out simply stops listening; the
/// helper ends when the path is released (by its owner leaving, or its death), so helpers never
/// pile up beyond one per watched file. A helper that starts when nobody listens any more
/// (its caller timed out first, on a busy machine) ends without locking: its lock, however
/// short, would make others' non-waiting attempts fail for nothing.
pub(crate) fn wait_until_free(
    paths: &[PathBuf],
    exclusive: bool,
    deadline: Option<Instant>,
) -> bool {
    let (registry, cv) = watchers();
    let mut reg = registry.lock().unwrap_or_else(PoisonError::into_inner);
    let watches: Vec<Arc<Watch>> = paths
        .iter()
        .map(|p| {
            let key = (p.clone(), exclusive);
            Arc::clone(reg.entry(key.clone()).or_insert_with(|| {
                let watch = Arc::new(Watch {
                    fired: AtomicBool::new(false),
                    listeners: AtomicUsize::new(0),
                });
                spawn_watcher(key, Arc::clone(&watch));
                watch
            }))
        })
        .collect();
    // Counted under the registry lock, which a helper takes to see whether anyone listens.
    for w in &watches {
        w.listeners.fetch_add(1, Ordering::Relaxed);
    }
    let stop_listening = |watches: &[Arc<Watch>]| {
        for w in watches {
            w.listeners.fetch_sub(1, Ordering::Relaxed);
        }
    };
    loop {
        if watches.iter().any(|w| w.fired.load(Ordering::Acquire)) {
            // A watch whose thread could not start fired at once; forget it so the next waiter
            // tries again rather than spinning on it.
            reg.retain(|_, w| !w.fired.load(Ordering::Acquire));
            stop_listening(&watches);
            return true;
        }
        match deadline {
            None => reg = cv.wait(reg).unwrap_or_else(PoisonError::into_inner),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    stop_listening(&watches);
                    return false;
                }
                reg = cv
                    .wait_timeout(reg, d - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
    }
}

struct Watch {
    fired: AtomicBool,
    /// Callers waiting on it now (changed under the registry lock).
    listeners: AtomicUsize,
}

type Registry = Mutex<HashMap<(PathBuf, bool), Arc<Watch>>>;

fn watchers() -> &'static (Registry, Condvar) {
    static W: OnceLock<(Registry, Condvar)> = OnceLock::new();
    W.get_or_init(|| (Mutex::new(HashMap::new()), Condvar::new()))
}

fn spawn_watcher(key: (PathBuf, bool), watch: Arc<Watch>) {
    let mine = Arc::clone(&watch);
    let run = move || {
        let (registry, cv) = watchers();
        let listening = {
            let _reg = registry.lock().unwrap_or_else(PoisonError::into_inner);
            watch.listeners.load(Ordering::Relaxed) > 0
        };
        // Any outcome wakes the waiters: released, gone (its owner left), or an error that the
        // waiters will meet themselves when they look again.
        if listening {
            if let Ok(f) = open_ro(&key.0) {
                let _ = blocking_flock(&f, key.1);
            }
        }
        let mut reg = registry.lock().unwrap_or_else(PoisonError::into_inner);
        watch.fired.store(true, Ordering::Release);
        if reg.get(&key).is_some_and(|w| Arc::ptr_eq(w, &watch)) {
            reg.remove(&key);
        }
        cv.notify_all();
    };
    if std::thread::Builder::new()
        .name("racegate-watch".into())
        .spawn(run)
        .is_err()
    {
        // No thread: report "fired" so the caller looks again instead of sleeping forever.
        mine.fired.store(true, Ordering::Release);
    }
}
