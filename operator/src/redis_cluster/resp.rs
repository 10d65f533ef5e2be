//! Just enough RESP2 to administer a Redis Cluster: send a command as an array of bulk
//! strings, read one reply. The operator issues a handful of admin commands per reconcile,
//! so a fresh connection per command keeps this free of pooling and reconnect logic.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`
    Error(String),
    /// `:1`
    Int(i64),
    /// `$n` (None for the null bulk string).
    Bulk(Option<Vec<u8>>),
    /// `*n` (None for the null array).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text (simple or bulk string), for commands like CLUSTER NODES.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// Why talking to a node failed.
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// Connect, read or write failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The node did not answer in time.
    #[error("timed out")]
    Timeout,
    /// The bytes were not RESP2.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The node answered with an error reply.
    #[error("redis error: {0}")]
    Redis(String),
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

async fn read_reply(r: &mut BufReader<TcpStream>) -> Result<Reply, RespError> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Err(RespError::Protocol("connection closed".into()));
    }
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at(line.len().min(1));
    let int = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| RespError::Protocol(format!("bad integer {s:?}")))
    };
    match kind {
        "+" => Ok(Reply::Simple(rest.into())),
        "-" => Ok(Reply::Error(rest.into())),
        ":" => Ok(Reply::Int(int(rest)?)),
        "$" => {
            let n = int(rest)?;
            if n < 0 {
                return Ok(Reply::Bulk(None));
            }
            let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0) + 2];
            r.read_exact(&mut buf).await?;
            buf.truncate(buf.len() - 2);
            Ok(Reply::Bulk(Some(buf)))
        }
        "*" => {
            let n = int(rest)?;
            if n < 0 {
                return Ok(Reply::Array(None));
            }
            let mut items = Vec::new();
            for _ in 0..n {
                items.push(Box::pin(read_reply(r)).await?);
            }
            Ok(Reply::Array(Some(items)))
        }
        _ => Err(RespError::Protocol(format!("unexpected line {line:?}"))),
    }
}

/// Opens a connection, authenticates when a password is given, sends one command and
/// returns its reply (error replies become [`RespError::Redis`]).
pub async fn command(
    addr: &str,
    password: Option<&str>,
    args: &[&str],
    timeout: Duration,
) -> Result<Reply, RespError> {
    let work = async {
        let stream = TcpStream::connect(addr).await?;
        let mut r = BufReader::new(stream);
        if let Some(pw) = password {
            r.get_mut().write_all(&encode(&["AUTH", pw])).await?;
            if let Reply::Error(e) = read_reply(&mut r).await? {
                return Err(RespError::Redis(e));
            }
        }
        r.get_mut().write_all(&encode(args)).await?;
        match read_reply(&mut r).await? {
            Reply::Error(e) => Err(RespError::Redis(e)),
            ok => Ok(ok),
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| RespError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_bulk_strings() {
        assert_eq!(encode(&["GET", "k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }

    #[tokio::test]
    async fn parses_nested_replies_from_a_socket() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"*3\r\n:7\r\n$2\r\nhi\r\n*1\r\n$-1\r\n")
                .await
                .unwrap();
        });
        let r = command(&addr, None, &["X"], Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(
            r,
            Reply::Array(Some(vec![
                Reply::Int(7),
                Reply::Bulk(Some(b"hi".to_vec())),
                Reply::Array(Some(vec![Reply::Bulk(None)])),
            ]))
        );
    }
}
