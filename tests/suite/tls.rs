//! `rediss://` against a real redis-server with TLS, using a CA made here
//! with openssl: a trusted certificate connects, an untrusted one and wrong
//! credentials fail at `Cache::connect` and say which.
#![cfg(feature = "tls")]

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cachette::Cache;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is needed by the TLS tests: apt-get install -y openssl");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A CA and a server certificate for 127.0.0.1 signed by it, plus a second,
/// unrelated CA.
fn make_certificates(dir: &Path) {
    let day = ["-days", "1"];
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=cachette test CA",
            day[0],
            day[1],
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "other.key",
            "-out",
            "other.crt",
            "-subj",
            "/CN=someone else",
            day[0],
            day[1],
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("san.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-extfile",
            "san.cnf",
            day[0],
            day[1],
        ],
    );
}

struct TlsServer(Child);

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_tls_server(dir: &Path, port: u16) -> TlsServer {
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            "server.crt",
            "--tls-key-file",
            "server.key",
        ])
        .args(["--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--user", "app", "on", ">s3cret", "~*", "+@all"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is needed: apt-get install -y redis-server");
    let server = TlsServer(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server with TLS did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

#[tokio::test]
async fn tls_connects_with_a_trusted_ca_and_says_why_it_does_not_otherwise() {
    let dir = std::env::temp_dir().join(format!("cachette-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    make_certificates(&dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = start_tls_server(&dir, port);
    let ca = std::fs::read(dir.join("ca.crt")).unwrap();
    let other = std::fs::read(dir.join("other.crt")).unwrap();
    let url = format!("rediss://app:s3cret@127.0.0.1:{port}");

    let cache = Cache::builder()
        .tls_root_certificates(ca.clone())
        .command_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
        .expect("a trusted certificate connects");
    let load = || async { Ok::<_, std::io::Error>(42u32) };
    cache
        .get_or_fetch("tls:1", &[], Duration::from_secs(60), load())
        .await
        .unwrap();
    cache
        .get_or_fetch("tls:1", &[], Duration::from_secs(60), load())
        .await
        .unwrap();
    cache.invalidate_keys(["tls:1"]).await.unwrap();
    assert_eq!((cache.stats().hits, cache.stats().errors), (1, 0));

    let untrusted = Cache::builder()
        .tls_root_certificates(other)
        .connect(&url)
        .await
        .unwrap_err();
    assert!(untrusted.is_tls(), "{untrusted:?}");
    assert!(untrusted.to_string().contains("certificate"), "{untrusted}");

    let wrong = format!("rediss://app:nope@127.0.0.1:{port}");
    let refused = Cache::builder()
        .tls_root_certificates(ca)
        .connect(&wrong)
        .await
        .unwrap_err();
    assert!(refused.is_auth(), "{refused:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `rediss://` URL whose server is not what TLS expects: one that closes
/// the connection after the client's hello, and one that answers in plain
/// text (as a server without TLS does). Both are TLS failures, each saying
/// why.
#[tokio::test]
async fn a_handshake_that_fails_says_why() {
    use std::io::{Read, Write};
    /// A peer that reads the hello, then answers `reply` (if any) and
    /// closes.
    fn peer(reply: &'static [u8]) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(1) {
                let mut stream = stream.unwrap();
                let mut hello = [0u8; 4096];
                let _ = stream.read(&mut hello);
                let _ = stream.write_all(reply);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        port
    }
    for (port, why) in [
        (peer(b""), "closed the connection during the handshake"),
        (
            peer(b"-ERR unknown command\r\n"),
            "does that port speak TLS?",
        ),
    ] {
        let err = Cache::builder()
            .connect_timeout(Duration::from_secs(2))
            .connect(&format!("rediss://127.0.0.1:{port}"))
            .await
            .unwrap_err();
        assert!(err.is_tls(), "{err:?}");
        assert!(err.to_string().contains(why), "{err}");
    }
}

/// Upstash's REST API over HTTPS, against the protocol server with a
/// certificate made here: trusted through the configured roots it
/// connects and caches; trusted by nothing (the platform's roots, or
/// another CA) it fails, saying why.
#[cfg(feature = "upstash")]
#[tokio::test]
async fn https_to_the_rest_api_checks_the_certificate() {
    let dir = std::env::temp_dir().join(format!("cachette-https-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    make_certificates(&dir);
    let redis = crate::support::RedisServer::start();
    let rest = cachette_rest_server::RestServer::start_tls(
        &redis.url(),
        &dir.join("server.crt"),
        &dir.join("server.key"),
    );
    assert!(rest.url.starts_with("https://"));
    let ca = std::fs::read(dir.join("ca.crt")).unwrap();
    let other = std::fs::read(dir.join("other.crt")).unwrap();

    let cache = Cache::builder()
        .tls_root_certificates(ca)
        .command_timeout(Duration::from_secs(5))
        .connect_upstash(&rest.url, &rest.token)
        .await
        .expect("a trusted certificate connects");
    let load = || async { Ok::<_, std::io::Error>(42u32) };
    for _ in 0..2 {
        cache
            .get_or_fetch("https:1", &[], Duration::from_secs(60), load())
            .await
            .unwrap();
    }
    cache.invalidate_keys(["https:1"]).await.unwrap();
    assert_eq!((cache.stats().hits, cache.stats().errors), (1, 0));

    for builder in [
        Cache::builder(),
        Cache::builder().tls_root_certificates(other),
    ] {
        let untrusted = builder
            .connect_upstash(&rest.url, &rest.token)
            .await
            .unwrap_err();
        assert!(untrusted.is_tls(), "{untrusted:?}");
        assert!(untrusted.to_string().contains("certificate"), "{untrusted}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
