//! The broker's wire format, over a private `socketpair(2)`.
//!
//! Request: `id: u64`, `job_len: u32`, `msg_len: u64` (big-endian), then
//! `job_len` bytes of [`LocalJob`] JSON and `msg_len` bytes of message.
//! Reply: `id: u64`, `len: u32`, then `len` bytes of [`Outcome`] JSON.
//!
//! Every length is checked against a limit before anything is allocated,
//! and an oversized part is read and thrown away rather than trusted, so
//! the stream never loses its framing whatever the peer sends.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::mda::{LocalJob, Outcome};

/// Longest job description: argv, environment and paths, far below this.
pub const MAX_JOB: u32 = 1024 * 1024;
/// Longest reply (an outcome's detail is one log line).
pub const MAX_REPLY: u32 = 64 * 1024;

/// One request as read by the broker; `job` is `Err` when it did not
/// decode or was too large, and is answered as a failure.
pub struct Request {
    pub id: u64,
    pub job: Result<(LocalJob, Vec<u8>), String>,
}

pub async fn write_request<W: AsyncWrite + Unpin>(
    w: &mut W,
    id: u64,
    job: &[u8],
    content: &[u8],
) -> std::io::Result<()> {
    let job_len = u32::try_from(job.len())
        .ok()
        .filter(|&l| l <= MAX_JOB)
        .ok_or_else(|| std::io::Error::other("mda job too large"))?;
    let mut head = Vec::with_capacity(20);
    head.extend_from_slice(&id.to_be_bytes());
    head.extend_from_slice(&job_len.to_be_bytes());
    head.extend_from_slice(&(content.len() as u64).to_be_bytes());
    w.write_all(&head).await?;
    w.write_all(job).await?;
    w.write_all(content).await?;
    w.flush().await
}

/// Reads the next request; `Ok(None)` at a clean end of stream.
pub async fn read_request<R: AsyncRead + Unpin>(
    r: &mut R,
    max_message: u64,
) -> std::io::Result<Option<Request>> {
    let id = match r.read_u64().await {
        Ok(id) => id,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    let job_len = r.read_u32().await?;
    let msg_len = r.read_u64().await?;
    let job = read_part(r, u64::from(job_len), u64::from(MAX_JOB)).await?;
    let content = read_part(r, msg_len, max_message).await?;
    let job = match (job, content) {
        (Some(job), Some(content)) => match serde_json::from_slice::<LocalJob>(&job) {
            Ok(job) => Ok((job, content)),
            Err(e) => Err(format!("invalid mda job: {e}")),
        },
        (None, _) => Err(format!("mda job of {job_len} bytes is too large")),
        (_, None) => Err(format!(
            "message of {msg_len} bytes is larger than the delivery limit of {max_message}"
        )),
    };
    Ok(Some(Request { id, job }))
}

/// Reads `len` bytes, or skips them and returns `None` when over `max`.
async fn read_part<R: AsyncRead + Unpin>(
    r: &mut R,
    len: u64,
    max: u64,
) -> std::io::Result<Option<Vec<u8>>> {
    if len > max {
        let skipped = tokio::io::copy(&mut r.take(len), &mut tokio::io::sink()).await?;
        if skipped < len {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(std::io::Error::other)?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(len).map_err(std::io::Error::other)?;
    buf.resize(len, 0);
    r.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

pub async fn write_reply<W: AsyncWrite + Unpin>(
    w: &mut W,
    id: u64,
    outcome: &Outcome,
) -> std::io::Result<()> {
    let mut body = serde_json::to_vec(outcome).map_err(std::io::Error::other)?;
    if body.len() > MAX_REPLY as usize {
        let short: String = outcome.detail().chars().take(1024).collect();
        let cut = match outcome {
            Outcome::Ok(_) => Outcome::Ok(short),
            Outcome::TempFail(_) => Outcome::TempFail(short),
            Outcome::PermFail(_) => Outcome::PermFail(short),
        };
        body = serde_json::to_vec(&cut).map_err(std::io::Error::other)?;
    }
    let mut frame = Vec::with_capacity(12 + body.len());
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame).await?;
    w.flush().await
}

/// Reads the next reply; `Ok(None)` at a clean end of stream.
pub async fn read_reply<R: AsyncRead + Unpin>(
    r: &mut R,
) -> std::io::Result<Option<(u64, Outcome)>> {
    let id = match r.read_u64().await {
        Ok(id) => id,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = r.read_u32().await?;
    if len > MAX_REPLY {
        return Err(std::io::Error::other("broker reply too large"));
    }
    let mut body = vec![0; len as usize];
    r.read_exact(&mut body).await?;
    let outcome = serde_json::from_slice(&body).map_err(std::io::Error::other)?;
    Ok(Some((id, outcome)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mda::JobMethod;

    fn job() -> LocalJob {
        LocalJob {
            method: JobMethod::Maildir {
                path: "/tmp/x".into(),
                junk: false,
            },
            uid: 1000,
            gid: 1000,
            sender: None,
        }
    }

    #[tokio::test]
    async fn requests_and_replies_round_trip() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let j = serde_json::to_vec(&job()).unwrap();
        write_request(&mut a, 7, &j, b"hello").await.unwrap();
        write_request(&mut a, 8, b"not json", b"x").await.unwrap();
        write_request(&mut a, 9, &j, &[b'y'; 100]).await.unwrap();
        write_request(&mut a, 10, &j, b"after").await.unwrap();
        drop(a);
        let r = read_request(&mut b, 50).await.unwrap().unwrap();
        assert_eq!(r.id, 7);
        assert_eq!(r.job.unwrap(), (job(), b"hello".to_vec()));
        let r = read_request(&mut b, 50).await.unwrap().unwrap();
        assert!(r.job.unwrap_err().contains("invalid mda job"));
        // Too large: refused, and the stream stays in step.
        let r = read_request(&mut b, 50).await.unwrap().unwrap();
        assert_eq!(r.id, 9);
        assert!(r.job.unwrap_err().contains("larger than"));
        let r = read_request(&mut b, 50).await.unwrap().unwrap();
        assert_eq!(r.job.unwrap().1, b"after");
        assert!(read_request(&mut b, 50).await.unwrap().is_none());

        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_reply(&mut a, 3, &Outcome::TempFail("later".into()))
            .await
            .unwrap();
        drop(a);
        assert_eq!(
            read_reply(&mut b).await.unwrap(),
            Some((3, Outcome::TempFail("later".into())))
        );
        assert_eq!(read_reply(&mut b).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_cut_frame_is_an_error() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        a.write_all(&1u64.to_be_bytes()).await.unwrap();
        a.write_all(&5u32.to_be_bytes()).await.unwrap();
        drop(a);
        assert!(read_request(&mut b, 50).await.is_err());
    }
}
