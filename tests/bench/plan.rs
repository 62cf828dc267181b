//! The sizes of one run, smoke or full, and the two images it pulls.

use std::time::Duration;

/// The image of one big layer.
pub const BIG: &str = "bench/big";
/// The image of many small layers.
pub const MANY: &str = "bench/many";

/// The sizes of one run.
pub struct Plan {
    pub full: bool,
    pub big_layer: u64,
    pub small_layers: usize,
    pub small_layer: u64,
    pub repetitions: usize,
    pub latency_requests: usize,
    /// The soak's length, and how often it samples memory.
    pub soak: (Duration, Duration),
}

impl Plan {
    pub fn new(full: bool) -> Self {
        if full {
            Plan {
                full,
                big_layer: 1 << 30,
                small_layers: 20,
                small_layer: 256 << 10,
                repetitions: 3,
                latency_requests: 2000,
                soak: (Duration::from_secs(600), Duration::from_secs(30)),
            }
        } else {
            Plan {
                full,
                big_layer: 16 << 20,
                small_layers: 20,
                small_layer: 16 << 10,
                repetitions: 1,
                latency_requests: 64,
                soak: (Duration::from_secs(20), Duration::from_secs(5)),
            }
        }
    }

    /// The blob the crowds GET, and the object-storage section's second size.
    pub fn crowd_blob(&self) -> u64 {
        if self.full { 256 << 20 } else { self.big_layer }
    }
}
