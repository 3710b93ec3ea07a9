//! A TCP proxy between the cache and redis-server that can pass traffic,
//! stall it, reset every connection, or send new connections to another
//! server (an address that moves on a failover), on command.

use std::sync::atomic::{AtomicU16, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Pass,
    /// Bytes are held, not forwarded, until the mode changes.
    Stall,
    /// Bytes from the server to the client are held until the mode
    /// changes; the client's bytes still reach the server.
    StallDown,
    /// Every chunk from the server to the client waits this long first
    /// (in order).
    DelayDown(std::time::Duration),
}

/// A proxied connection: the client side and its two pumps.
type Conn = (Arc<TcpStream>, JoinHandle<()>, JoinHandle<()>);

pub struct FaultProxy {
    pub port: u16,
    upstream: Arc<AtomicU16>,
    mode: watch::Sender<Mode>,
    conns: Arc<Mutex<Vec<Conn>>>,
    /// Client sides of connections that forward nothing any more, kept
    /// open.
    silenced: Mutex<Vec<Arc<TcpStream>>>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    pub async fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, _) = watch::channel(Mode::Pass);
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        let upstream = Arc::new(AtomicU16::new(upstream));
        let accept = tokio::spawn({
            let (mode, conns, upstream) = (mode.clone(), conns.clone(), upstream.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let to = upstream.load(SeqCst);
                    let Ok(server) = TcpStream::connect(("127.0.0.1", to)).await else {
                        continue; // upstream down: the client sees the close
                    };
                    let (client, server) = (Arc::new(client), Arc::new(server));
                    let up = tokio::spawn(pump(
                        client.clone(),
                        server.clone(),
                        mode.subscribe(),
                        false,
                    ));
                    let down =
                        tokio::spawn(pump(server.clone(), client.clone(), mode.subscribe(), true));
                    conns.lock().unwrap().push((client, up, down));
                }
            }
        });
        FaultProxy {
            port,
            upstream,
            mode,
            conns,
            silenced: Mutex::default(),
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Sends new connections to the server on `port`, and resets the open
    /// ones: what a virtual IP or a proxy in front of a failover does.
    pub fn retarget(&self, port: u16) {
        self.upstream.store(port, SeqCst);
        self.reset_all();
    }

    /// Stops forwarding on every open connection without closing it, as a
    /// blackholed peer does (no FIN, no RST); new connections pass.
    pub fn silence_open(&self) -> usize {
        let conns: Vec<_> = std::mem::take(&mut *self.conns.lock().unwrap());
        let n = conns.len();
        for (client, up, down) in conns {
            up.abort();
            down.abort();
            self.silenced.lock().unwrap().push(client);
        }
        n
    }

    /// How many connections were accepted (and are forwarded) since the
    /// last `silence_open` or `reset_all`.
    pub fn open_count(&self) -> usize {
        self.conns.lock().unwrap().len()
    }

    /// Resets every open connection (RST, not FIN).
    pub fn reset_all(&self) -> usize {
        let conns: Vec<_> = std::mem::take(&mut *self.conns.lock().unwrap());
        let n = conns.len();
        for (client, up, down) in conns {
            up.abort();
            down.abort();
            let _ = client.set_zero_linger();
            drop(client);
        }
        n
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.reset_all();
    }
}

/// Copies `from` to `to` (`down`: from the server to the client) under
/// the proxy's mode.
async fn pump(
    from: Arc<TcpStream>,
    to: Arc<TcpStream>,
    mut mode: watch::Receiver<Mode>,
    down: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = loop {
            from.readable().await.ok();
            match from.try_read(&mut buf) {
                Ok(0) => return,
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
        };
        loop {
            let now = *mode.borrow_and_update();
            match now {
                Mode::Stall => {}
                Mode::StallDown if down => {}
                Mode::DelayDown(delay) if down => {
                    tokio::time::sleep(delay).await;
                    break;
                }
                _ => break,
            }
            if mode.changed().await.is_err() {
                return;
            }
        }
        let mut written = 0;
        while written < n {
            to.writable().await.ok();
            match to.try_write(&buf[written..n]) {
                Ok(k) => written += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
        }
    }
}
