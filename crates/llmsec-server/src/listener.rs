//! Accepting and serving connections.
//!
//! The listener holds at most `max_connections` open: the next accept waits
//! for a permit, so excess clients queue in the kernel's backlog instead of
//! exhausting file descriptors (mini-redis does the same). One client
//! address (an IPv6 /64) holds at most `max_connections_per_ip` of them;
//! more from it are closed as soon as they are accepted, so one address
//! cannot take every permit. A connection that moves no byte either way for
//! `idle_timeout_ms` is closed; hyper closes an HTTP/1 connection whose
//! request head (the first, or the next on a kept-alive connection) takes
//! longer than `header_read_timeout_ms`.
//!
//! Behind a load balancer every connection comes from the balancer: with
//! `trusted_proxies` set, a request from one of them carries the client
//! address its `X-Forwarded-For` names ([`TrustedProxies::client`]) as its
//! [`ConnectInfo`], so per-address limits, throttles and blocks apply to
//! the client, not to the balancer. Connection caps stay per connection
//! peer: they protect sockets, which the balancer holds.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

use crate::config::LimitsConfig;

/// The address a per-client limit counts under: the address itself for
/// IPv4 (and IPv4-mapped IPv6), its /64 for IPv6, since one host commonly
/// holds a whole /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// Open connections per client address.
#[derive(Debug)]
struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    /// Counts a connection from `ip`, unless it already has `max`.
    fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let ip = client_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot { per_ip: self.clone(), ip })
    }
}

/// One connection's place in its address's count; given back on drop.
#[derive(Debug)]
struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.per_ip.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A listener with a connection cap, a per-address cap and an idle deadline.
#[derive(Debug)]
pub struct CappedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
    idle: Duration,
    trusted: Arc<TrustedProxies>,
}

/// The proxies whose `X-Forwarded-For` is believed (`[limits]
/// trusted_proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// Entries of `X-Forwarded-For` read at most, from the right: a chain of
/// proxies is short, and a client can pad the header.
const MAX_HOPS: usize = 16;

impl TrustedProxies {
    /// Reads addresses (`10.0.0.7`, `::1`) and CIDR blocks (`10.0.0.0/8`);
    /// the error is the index of the first bad entry and why.
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, (usize, String)> {
        let mut nets = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let e = e.trim();
            let net = match e.parse::<IpNet>() {
                Ok(n) => n.trunc(),
                Err(_) => match e.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err((i, format!("{e:?} is not an IP address or CIDR block"))),
                },
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client of a request that came over a connection from `peer`:
    /// `peer` itself unless it is a trusted proxy; then the rightmost
    /// address of `X-Forwarded-For` (all such headers, in order) that is
    /// not a trusted proxy, read right to left so that a client cannot
    /// choose it by writing its own header. An entry that is not an address
    /// ends the walk at the last proxy seen. The port stays the peer's.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if self.0.is_empty() || !self.trusts(peer.ip()) {
            return peer;
        }
        let mut hops: Vec<&str> = Vec::new();
        for v in headers.get_all("x-forwarded-for") {
            let Ok(v) = v.to_str() else { return peer };
            hops.extend(v.split(','));
        }
        let mut client = peer.ip();
        for hop in hops.iter().rev().take(MAX_HOPS) {
            let Some(ip) = parse_hop(hop.trim()) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        SocketAddr::new(client.to_canonical(), peer.port())
    }
}

/// One `X-Forwarded-For` entry: an address, with a port or in brackets as
/// some proxies write them (`203.0.113.9:4711`, `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = hop.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    hop.strip_prefix('[').and_then(|h| h.strip_suffix(']')).and_then(|h| h.parse().ok())
}

impl CappedListener {
    /// Caps `inner` at `limits.max_connections` open connections,
    /// `limits.max_connections_per_ip` per client address, each closed after
    /// `limits.idle_timeout_ms` without traffic.
    pub fn new(inner: TcpListener, limits: &LimitsConfig) -> CappedListener {
        CappedListener {
            inner,
            permits: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            per_ip: Arc::new(PerIp { max: limits.max_connections_per_ip.max(1), open: Mutex::default() }),
            idle: Duration::from_millis(limits.idle_timeout_ms),
            // `ServerConfig::validate` names a bad entry before a listener is made.
            trusted: Arc::new(TrustedProxies::parse(&limits.trusted_proxies).unwrap_or_default()),
        }
    }

    /// The next connection within the limits.
    pub async fn accept(&mut self) -> (CappedStream, SocketAddr) {
        loop {
            // The semaphore is never closed, so acquiring cannot fail.
            let Ok(permit) = self.permits.clone().acquire_owned().await else { continue };
            match self.inner.accept().await {
                Ok((io, addr)) => {
                    let Some(slot) = self.per_ip.enter(addr.ip()) else {
                        // Dropping the socket closes it; the permit stays for the next accept.
                        metrics::counter!(crate::metrics::CONNECTIONS_REFUSED, "reason" => "per_ip").increment(1);
                        tracing::debug!(peer = %addr, "connection refused: too many from this address");
                        continue;
                    };
                    let _ = io.set_nodelay(true);
                    let stream = CappedStream {
                        io,
                        idle: self.idle,
                        last: Instant::now(),
                        timer: Box::pin(tokio::time::sleep(self.idle)),
                        _slot: slot,
                        _permit: permit,
                    };
                    return (stream, addr);
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    drop(permit);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// connections finish their requests. HTTP/1 and HTTP/2 (gRPC) share the
/// port; each request carries the peer's [`ConnectInfo`].
pub async fn serve(
    mut listener: CappedListener,
    app: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The parser's own limits sit above `[limits]`'s, so that a request
    // head over those reaches the head-limits middleware and gets a JSON
    // 414 or 431 (the parser would answer with an empty body).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_headers(crate::config::MAX_HEADER_COUNT)
        .max_buf_size(crate::config::MAX_HEADER_BYTES);
    // The extended CONNECT protocol carries WebSockets over HTTP/2.
    builder.http2().timer(TokioTimer::new()).enable_connect_protocol();
    let graceful = GracefulShutdown::new();
    let trusted = listener.trusted.clone();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            conn = listener.accept() => conn,
            () = &mut shutdown => break,
        };
        let trusted = trusted.clone();
        let service = app.clone().map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
            let client = trusted.client(peer, req.headers());
            req.extensions_mut().insert(ConnectInfo(client));
            req
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service));
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection closed with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A connection that gives its permits back when closed and fails once it
/// has been idle too long.
#[derive(Debug)]
pub struct CappedStream {
    io: TcpStream,
    idle: Duration,
    /// When a byte last moved.
    last: Instant,
    timer: Pin<Box<Sleep>>,
    _slot: IpSlot,
    _permit: OwnedSemaphorePermit,
}

impl CappedStream {
    /// Ready with an error once no byte has moved for `idle`. The timer is
    /// moved forward only when it fires, so traffic costs a clock read.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let due = self.last + self.idle;
            if Instant::now() >= due {
                return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "connection idle"));
            }
            self.timer.as_mut().reset(due);
        }
    }

    fn moved(&mut self, n: usize) {
        if n > 0 {
            self.last = Instant::now();
        }
    }
}

impl AsyncRead for CappedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                self.moved(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                self.moved(n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // A peer that stops reading stalls writes: the same deadline applies.
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                self.moved(n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::TrustedProxies;

    fn xff(values: &[&str]) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap_or_else(|_| panic!("{v}")));
        }
        h
    }

    #[test]
    fn forwarded_for_is_believed_from_trusted_proxies_only() {
        let t = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.7".into(), "::1".into()]).unwrap_or_default();
        let lb: std::net::SocketAddr = "10.1.2.3:5000".parse().unwrap_or_else(|_| unreachable!());
        let ip = |h: &axum::http::HeaderMap, peer| t.client(peer, h).ip().to_string();
        // The rightmost untrusted hop, whatever the client wrote before it.
        assert_eq!(ip(&xff(&["6.6.6.6, 203.0.113.9, 10.9.9.9"]), lb), "203.0.113.9");
        assert_eq!(ip(&xff(&["6.6.6.6", "203.0.113.9:4711"]), lb), "203.0.113.9");
        assert_eq!(ip(&xff(&["[2001:db8::1]:443"]), lb), "2001:db8::1");
        // A peer that is not a proxy is the client; its header is ignored.
        let direct: std::net::SocketAddr = "198.51.100.4:1".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(ip(&xff(&["203.0.113.9"]), direct), "198.51.100.4");
        // No header, only proxies, or garbage: the last proxy seen.
        assert_eq!(ip(&xff(&[]), lb), "10.1.2.3");
        assert_eq!(ip(&xff(&["10.2.2.2"]), lb), "10.2.2.2");
        assert_eq!(ip(&xff(&["203.0.113.9, unknown"]), lb), "10.1.2.3");
        // An IPv4 proxy seen over an IPv6 socket.
        let mapped: std::net::SocketAddr = "[::ffff:10.1.2.3]:5000".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(ip(&xff(&["203.0.113.9"]), mapped), "203.0.113.9");
        // Nothing trusted: nothing believed.
        assert_eq!(TrustedProxies::default().client(lb, &xff(&["203.0.113.9"])), lb);
    }

    #[test]
    fn bad_entries_are_named_by_index() {
        assert_eq!(TrustedProxies::parse(&["10.0.0.0/8".into(), "proxy.local".into()]).map(|_| ()).unwrap_err().0, 1);
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
    }

    use super::*;

    #[test]
    fn ipv6_addresses_count_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), IpAddr::V4([192, 0, 2, 7].into()));
    }

    #[test]
    fn per_address_slots_are_given_back() {
        let per_ip = Arc::new(PerIp { max: 2, open: Mutex::default() });
        let ip = IpAddr::V4([127, 0, 0, 1].into());
        let one = per_ip.enter(ip);
        let two = per_ip.enter(ip);
        assert!(one.is_some() && two.is_some());
        assert!(per_ip.enter(ip).is_none(), "a third from the same address is refused");
        assert!(per_ip.enter(IpAddr::V4([127, 0, 0, 2].into())).is_some(), "other addresses are not");
        drop(one);
        assert!(per_ip.enter(ip).is_some());
    }
}
