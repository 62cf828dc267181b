//! The S3 backend against a real Garage server: the conformance suite, and
//! what only a bucket can show (a presigned GET, nothing left behind).
