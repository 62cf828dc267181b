//! RESP2, the protocol Redis speaks on its TCP port: the few shapes a
//! command and its reply take, for the Redis client that reaches Redis over
//! a socket of the component's own (`hosts/spin/redis_socket.rs`), where
//! every wait has a deadline. Replies are decoded by `redis-protocol` (the
//! codec of the `fred` client); a command is written here, in eight lines
//! that copy each argument once.

use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::types::OwnedFrame;

/// A reply, as Redis sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A null bulk string or array: `GET` of a key that is not there.
    Nil,
    /// `+OK`.
    Status(String),
    /// `-ERR …`: Redis refused the command.
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
}

impl Reply {
    /// The reply, or Redis's refusal as an error.
    pub fn ok(self) -> Result<Reply, String> {
        match self {
            Reply::Error(e) => Err(format!("Redis refused: {e}")),
            other => Ok(other),
        }
    }

    /// An integer reply (`INCRBY`, `DEL`, `EVAL` of a number).
    pub fn integer(self) -> Result<i64, String> {
        match self.ok()? {
            Reply::Integer(n) => Ok(n),
            other => Err(format!("Redis answered {other:?}, not a number")),
        }
    }

    /// A bulk string reply, `None` for nil (`GET`).
    pub fn bulk(self) -> Result<Option<Vec<u8>>, String> {
        match self.ok()? {
            Reply::Nil => Ok(None),
            Reply::Bulk(b) => Ok(Some(b)),
            other => Err(format!("Redis answered {other:?}, not a value")),
        }
    }

    /// The strings of an array reply (`KEYS`); what is not one is left out.
    pub fn strings(self) -> Result<Vec<String>, String> {
        let items = match self.ok()? {
            Reply::Array(items) => items,
            Reply::Nil => Vec::new(),
            one => vec![one],
        };
        Ok(items
            .into_iter()
            .filter_map(|r| match r {
                Reply::Bulk(b) => String::from_utf8(b).ok(),
                _ => None,
            })
            .collect())
    }
}

/// Command `args` (its name first) as Redis reads it: an array of bulk
/// strings, so keys and values may hold any bytes.
pub fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The reply at the start of `buf` and the bytes it took, or `None` while
/// it is not all there yet. A reply that is no RESP is an error: the
/// connection cannot be trusted with another command.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    decode(buf)
        .map(|d| d.map(|(frame, used)| (reply(frame), used)))
        .map_err(|e| format!("Redis sent what is not RESP: {e:?}"))
}

fn reply(frame: OwnedFrame) -> Reply {
    match frame {
        OwnedFrame::SimpleString(s) => Reply::Status(String::from_utf8_lossy(&s).into()),
        OwnedFrame::Error(e) => Reply::Error(e),
        OwnedFrame::Integer(n) => Reply::Integer(n),
        OwnedFrame::BulkString(b) => Reply::Bulk(b),
        OwnedFrame::Array(items) => Reply::Array(items.into_iter().map(reply).collect()),
        OwnedFrame::Null => Reply::Nil,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_an_array_of_bulk_strings_that_may_hold_any_bytes() {
        assert_eq!(
            command(&[b"SET", b"k\r\n", b""]),
            b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$0\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn every_reply_shape_parses_and_says_how_much_it_took() {
        let cases: [(&[u8], Reply); 7] = [
            (b"+OK\r\n", Reply::Status("OK".into())),
            (b"-ERR no\r\n", Reply::Error("ERR no".into())),
            (b":-12\r\n", Reply::Integer(-12)),
            (b"$3\r\na\r\n\r\n", Reply::Bulk(b"a\r\n".to_vec())),
            (b"$-1\r\n", Reply::Nil),
            (b"*-1\r\n", Reply::Nil),
            (
                b"*2\r\n$1\r\nk\r\n:1\r\n",
                Reply::Array(vec![Reply::Bulk(b"k".to_vec()), Reply::Integer(1)]),
            ),
        ];
        for (wire, reply) in cases {
            let mut buf = wire.to_vec();
            buf.extend_from_slice(b"+NEXT\r\n");
            assert_eq!(parse(&buf), Ok(Some((reply, wire.len()))), "{wire:?}");
        }
    }

    #[test]
    fn a_reply_cut_anywhere_waits_for_the_rest() {
        let wire = b"*2\r\n$5\r\nhello\r\n$-1\r\n";
        for cut in 0..wire.len() {
            assert_eq!(parse(&wire[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse(wire).unwrap().is_some());
    }

    #[test]
    fn what_is_not_resp_is_an_error() {
        assert!(parse(b"HTTP/1.1 400 Bad Request\r\n").is_err());
        assert!(parse(b":twelve\r\n").is_err());
    }

    #[test]
    fn replies_read_as_what_the_command_returns() {
        assert_eq!(Reply::Nil.bulk(), Ok(None));
        assert_eq!(Reply::Integer(3).integer(), Ok(3));
        assert!(Reply::Error("WRONGTYPE".into()).integer().is_err());
        let keys = Reply::Array(vec![Reply::Bulk(b"a".to_vec()), Reply::Bulk(b"b".to_vec())]);
        assert_eq!(keys.strings(), Ok(vec!["a".to_string(), "b".to_string()]));
    }
}
