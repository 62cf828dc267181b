//! What a request did, noted as it goes: counters and their Prometheus
//! exposition.

pub mod metrics;
pub mod reads;
pub mod stats;
