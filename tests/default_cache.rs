//! The default cache's guard rails, in a process of their own (they are
//! process-wide): a function without `cache = ...` in a process that built
//! caches of its own and never called `init` is warned about, once, by
//! name; and `forbid_default_cache` turns that into a panic.

use std::io::Write;
use std::sync::{Arc, Mutex};

use cachette::{cached, Cache};

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(cache = self.cache, key = "user:<id>", ttl = 60)]
    async fn user(&self, id: u64) -> u64 {
        id
    }

    // Forgot `cache = self.cache`.
    #[cached(key = "email:<id>", ttl = 60)]
    async fn email(&self, id: u64) -> String {
        format!("{id}@example.com")
    }
}

#[tokio::test]
async fn a_forgotten_cache_option_is_loud_and_can_be_forbidden() {
    let logs = Logs::default();
    let writer = logs.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();

    let repo = Repo {
        cache: Cache::memory(),
    };
    repo.user(1).await;
    repo.email(1).await;
    repo.email(2).await;
    let text = logs.text();
    assert_eq!(
        text.lines().filter(|l| l.contains("Repo::email")).count(),
        1,
        "one warning naming the method: {text}"
    );
    assert!(text.contains("cache = ..."), "{text}");

    cachette::forbid_default_cache();
    let panicked = tokio::spawn(async move { repo.email(3).await })
        .await
        .unwrap_err();
    let message = panicked.into_panic();
    let message = message
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    assert!(message.contains("Repo::email"), "{message}");
}
