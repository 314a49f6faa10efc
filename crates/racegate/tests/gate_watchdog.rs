//! A holder that never releases is still reported by the hold warning (its own test binary: the
//! watchdog thread logs through the global `tracing` subscriber).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use racegate::{Gate, GateConfig};

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_stuck_holder_is_reported_while_it_holds() {
    let sink = Sink::default();
    let writer = sink.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    )
    .unwrap();
    let gate = Gate::with_config(
        "stuck",
        GateConfig::default().with_hold_warning(Duration::from_millis(20)),
    )
    .unwrap();
    let _stuck = gate.labeled("vision").acquire_blocking();
    let text = || String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    // Wait (bounded) for the observable effect: the watchdog's line.
    let start = Instant::now();
    while !text().contains("gate still held past the hold warning") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no warning about the stuck holder: {}",
            text()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = text();
    assert!(out.contains("gate=stuck"), "{out}");
    assert!(
        out.contains("label=\"vision\"") || out.contains("label=vision"),
        "{out}"
    );
    // Reported once per hold, not once per watchdog tick.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(text().matches("gate still held").count(), 1, "{}", text());
}
