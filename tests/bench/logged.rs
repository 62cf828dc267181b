//! What the benchmark reads from a Spin instance's access log.

use std::time::Duration;
use support::spin;

/// Waits until `n` requests are logged: a request is, once its answer is
/// out and what it left for later (a copy's check) is done.
pub fn wait_for_requests(instance: &spin::Instance, n: usize) {
    for _ in 0..2400 {
        if instance.access_log().len() >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} never logged {n} requests", instance.addr);
}

/// The largest linear memory any request of the instance ended with, MiB.
pub fn peak_memory_mib(instance: &spin::Instance) -> f64 {
    let bytes = instance
        .access_log()
        .iter()
        .filter_map(|e| e["memory"].as_u64())
        .max()
        .unwrap_or_default();
    bytes as f64 / (1 << 20) as f64
}
