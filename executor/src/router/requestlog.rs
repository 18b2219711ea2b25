//! HAProxy's request log, received over UDP while a gate watches: each request's server, status
//! and time, so a gate judges a true p99 over its own window (HAProxy's statistics keep only an
//! average response time over each server's last 1,024 requests).
//!
//! HAProxy sends one syslog datagram per request to the `log` address of its frontend (HAProxy
//! Configuration Manual, 4.2 `log`; 8.2.4 "Custom log format"). cutover reads the lines of this
//! format, which the frontend must declare:
//!
//! ```text
//! log 127.0.0.1:5514 local0
//! log-format "cutover %si:%sp %ST %Ta"
//! ```
//!
//! `%si:%sp` is the server's address, `%ST` the HTTP status, `%Ta` the request's total active
//! time in milliseconds, from its first byte to the last byte of the response (manual, 8.4
//! "Timing events"). A request no server answered logs `-` as its server and is not counted.
//!
//! One socket per address serves every gate of the process watching at the same time (two
//! services' canaries in one release): each gate subscribes and gets every line; the socket
//! closes when the last one is done. Outside gates nothing listens, and HAProxy's datagrams are
//! dropped, which costs it nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use tokio::sync::broadcast;

/// One request of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The server's `address:port`.
    pub server: String,
    /// The HTTP status HAProxy sent.
    pub status: u16,
    /// Total active time, in milliseconds.
    pub ms: u64,
}

/// The listening socket of one address, shared by its subscribers.
struct Shared {
    tx: broadcast::Sender<Entry>,
    task: tokio::task::AbortHandle,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A gate's view of the log: every entry received from its subscription on.
pub struct Subscription {
    _shared: Arc<Shared>,
    /// The entries.
    pub rx: broadcast::Receiver<Entry>,
}

static LISTENERS: Mutex<BTreeMap<String, Weak<Shared>>> = Mutex::new(BTreeMap::new());

/// Subscribes to the log HAProxy sends to `addr` (`host:port`), binding its UDP socket unless
/// another gate of this process already did. Errors: the address does not parse, or it cannot
/// be bound (another program has it).
pub fn subscribe(addr: &str) -> std::io::Result<Subscription> {
    let mut map = LISTENERS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(shared) = map.get(addr).and_then(Weak::upgrade) {
        return Ok(Subscription {
            rx: shared.tx.subscribe(),
            _shared: shared,
        });
    }
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    let socket = tokio::net::UdpSocket::from_std(socket)?;
    let (tx, _) = broadcast::channel(1 << 16);
    let sender = tx.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 8192];
        loop {
            if let Ok(n) = socket.recv(&mut buf).await
                && let Some(e) = parse(&buf[..n])
            {
                let _ = sender.send(e);
            }
        }
    });
    let shared = Arc::new(Shared {
        tx,
        task: task.abort_handle(),
    });
    map.insert(addr.to_string(), Arc::downgrade(&shared));
    Ok(Subscription {
        rx: shared.tx.subscribe(),
        _shared: shared,
    })
}

/// The request in one syslog datagram of the `cutover %si:%sp %ST %Ta` format; `None` for
/// another line, or a request no server answered.
pub fn parse(datagram: &[u8]) -> Option<Entry> {
    let text = std::str::from_utf8(datagram).ok()?;
    let rest = &text[text.find("cutover ")? + "cutover ".len()..];
    let mut f = rest.split_whitespace();
    let server = f.next()?;
    if server.starts_with('-') {
        return None;
    }
    let status = f.next()?.parse().ok()?;
    let ms = f.next()?.parse::<i64>().ok()?.max(0) as u64;
    Some(Entry {
        server: server.to_string(),
        status,
        ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cutover_format_in_a_syslog_line() {
        let line = b"<134>Dec  1 15:40:01 haproxy[812]: cutover 127.0.0.1:3334 503 1207";
        assert_eq!(
            parse(line),
            Some(Entry {
                server: "127.0.0.1:3334".into(),
                status: 503,
                ms: 1207
            })
        );
        assert_eq!(parse(b"<134>Dec  1 haproxy[812]: cutover -:- 503 0"), None);
        assert_eq!(parse(b"<134>Dec  1 haproxy[812]: Proxy fe started."), None);
    }

    #[tokio::test]
    async fn two_gates_share_one_socket_and_both_see_every_line() {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap().to_string();
        drop(probe);
        let mut a = subscribe(&addr).unwrap();
        let mut b = subscribe(&addr).unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .send_to(b"<134>haproxy[1]: cutover 127.0.0.1:9 200 12", &addr)
            .unwrap();
        let wait = std::time::Duration::from_secs(5);
        let first = tokio::time::timeout(wait, a.rx.recv())
            .await
            .unwrap()
            .unwrap();
        let second = tokio::time::timeout(wait, b.rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((first.ms, second.server.as_str()), (12, "127.0.0.1:9"));
        drop((a, b));
        // The last one gone, the address is free again.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(std::net::UdpSocket::bind(&addr).is_ok());
    }
}
