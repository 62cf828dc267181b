//! What went wrong in a blob storage, typed as distribution's storage
//! drivers type theirs (`PathNotFoundError`, `InvalidOffsetError`, ...): a
//! caller tells a storage that is away from one that refused or one whose
//! bytes are wrong without reading words, and the words stay for people.

use crate::host::{Failure, SendError};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageError {
    /// What was asked for is not there (a blob's file or object is gone).
    Absent(String),
    /// The storage does not answer: unreachable, failing (5xx), full.
    Unavailable(String),
    /// The storage did not answer within its bound.
    TimedOut(String),
    /// The storage answered no: credentials, permissions, a read-only
    /// directory, a request it takes as wrong (4xx).
    Refused(String),
    /// What the storage holds is not what was written (short, cut off).
    Corrupt(String),
}

impl StorageError {
    /// What a file operation failed with, as its kind; `doing` and the
    /// path in the words.
    pub fn of_io(doing: &str, path: &std::path::Path, e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let words = format!("blob files: cannot {doing} {}: {e}", path.display());
        match e.kind() {
            K::NotFound => Self::Absent(words),
            K::PermissionDenied | K::ReadOnlyFilesystem => Self::Refused(words),
            K::TimedOut => Self::TimedOut(words),
            K::UnexpectedEof | K::InvalidData => Self::Corrupt(words),
            _ => Self::Unavailable(words),
        }
    }

    /// An answer of an HTTP storage (a bucket) with `status`, in `words`.
    pub fn of_status(status: u16, words: String) -> Self {
        match status {
            404 => Self::Absent(words),
            408 => Self::TimedOut(words),
            429 | 500.. => Self::Unavailable(words),
            _ => Self::Refused(words),
        }
    }

    /// A request to an HTTP storage that got no answer, in `words`.
    pub fn of_send(e: &SendError, words: String) -> Self {
        match e {
            SendError::Failed {
                failure: Failure::TimedOut(..) | Failure::ResolverTimedOut,
                ..
            } => Self::TimedOut(words),
            SendError::Denied => Self::Refused(words),
            SendError::Failed { .. } => Self::Unavailable(words),
        }
    }

    fn words(&self) -> &str {
        match self {
            Self::Absent(w)
            | Self::Unavailable(w)
            | Self::TimedOut(w)
            | Self::Refused(w)
            | Self::Corrupt(w) => w,
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.words())
    }
}

/// A store call's error (the key-value store says only words): the store
/// did not do it, for now.
impl From<String> for StorageError {
    fn from(words: String) -> Self {
        Self::Unavailable(words)
    }
}

/// For callers that pass the words on (a log line, an admin answer).
impl From<StorageError> for String {
    fn from(e: StorageError) -> Self {
        e.words().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};
    use std::path::Path;

    #[test]
    fn each_failure_has_its_kind_and_keeps_its_words() {
        let gone = StorageError::of_io(
            "open",
            Path::new("/blobs/x"),
            Error::from(ErrorKind::NotFound),
        );
        assert!(matches!(gone, StorageError::Absent(_)));
        assert!(
            gone.to_string()
                .starts_with("blob files: cannot open /blobs/x")
        );
        let read_only = StorageError::of_io(
            "create",
            Path::new("/b"),
            Error::from(ErrorKind::ReadOnlyFilesystem),
        );
        assert!(matches!(read_only, StorageError::Refused(_)));
        let short = StorageError::of_io(
            "read",
            Path::new("/b"),
            Error::from(ErrorKind::UnexpectedEof),
        );
        assert!(matches!(short, StorageError::Corrupt(_)));
        let kinds: Vec<_> = [404, 403, 400, 503, 429, 408]
            .map(|s| StorageError::of_status(s, String::new()))
            .into();
        assert!(matches!(kinds[0], StorageError::Absent(_)));
        assert!(
            matches!(kinds[1], StorageError::Refused(_))
                && matches!(kinds[2], StorageError::Refused(_))
        );
        assert!(matches!(kinds[3], StorageError::Unavailable(_)));
        assert!(matches!(kinds[4], StorageError::Unavailable(_)));
        assert!(matches!(kinds[5], StorageError::TimedOut(_)));
    }
}
