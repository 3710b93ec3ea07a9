//! Tags from values: `cachette::tag!`, `#[invalidates(tags_from = ...)]`
//! (tags from the write's result) and `#[cached(tags_from = ...)]` (tags
//! from the cached value), with a book that moves between authors.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use cachette::{cached, cached_impl, invalidates, tag, Cache};
use serde::{Deserialize, Serialize};

use crate::support::each_backend;
use crate::support::source::Gate;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Book {
    id: u64,
    author: String,
    title: String,
}

/// A table of books, with a count of the queries that reached it and a
/// gate that can hold the next read after it has read.
#[derive(Clone, Default)]
struct Books {
    cache: Option<Cache>,
    rows: Arc<Mutex<HashMap<u64, Book>>>,
    queries: Arc<AtomicU64>,
    gate: Gate,
}

fn author_tag(book: &Book) -> [String; 1] {
    [tag!("author:<name>", name = book.author)]
}

#[cached_impl(cache = self.cache.as_ref().expect("a cache"))]
impl Books {
    /// A book is tagged with its author, known only from the row.
    #[cached(key = "book:<id>", ttl = 60, tags_from = author_tag)]
    async fn book(&self, id: u64) -> Option<Book> {
        self.queries.fetch_add(1, SeqCst);
        let row = self.rows.lock().unwrap().get(&id).cloned();
        self.gate.pass().await;
        row
    }

    /// The titles of an author: the author is an argument.
    #[cached(key = "by:<author>", ttl = 60, tags = ["author:<author>"])]
    async fn titles_by(&self, author: &str) -> Vec<String> {
        self.queries.fetch_add(1, SeqCst);
        let rows = self.rows.lock().unwrap();
        let mut titles: Vec<String> = rows
            .values()
            .filter(|b| b.author == author)
            .map(|b| b.title.clone())
            .collect();
        titles.sort();
        titles
    }

    /// Moves a book to another author: returns the old and the new row,
    /// and both authors' tags are busted, though neither is an argument.
    #[invalidates(calls = [self.book(id)], tags_from = |(old, new): &(Book, Book)| [
        tag!("author:<name>", name = old.author),
        tag!("author:<name>", name = new.author),
    ])]
    async fn move_book(&self, id: u64, to: &str) -> Result<(Book, Book), String> {
        let mut rows = self.rows.lock().unwrap();
        let book = rows.get_mut(&id).ok_or("no such book")?;
        let old = book.clone();
        book.author = to.to_string();
        Ok((old, book.clone()))
    }

    /// Renames an author, in every book: busts the author's tag only.
    #[invalidates(tags = ["author:<from>"])]
    async fn rename_author(&self, from: &str, to: &str) {
        for book in self.rows.lock().unwrap().values_mut() {
            if book.author == from {
                book.author = to.to_string();
            }
        }
    }
}

fn library(cache: &Cache) -> Books {
    let books = Books {
        cache: Some(cache.clone()),
        ..Books::default()
    };
    let mut rows = books.rows.lock().unwrap();
    for (id, author, title) in [
        (1, "Le Guin", "Earthsea"),
        (2, "Le Guin", "Lathe"),
        (3, "Banks", "Excession"),
    ] {
        rows.insert(
            id,
            Book {
                id,
                author: author.into(),
                title: title.into(),
            },
        );
    }
    drop(rows);
    books
}

#[test]
fn tag_renders_like_the_attributes() {
    let author = "Le Guin";
    assert_eq!(tag!("author:<a>", a = author), "author:Le%20Guin");
    assert_eq!(tag!("pair:<a>:<b>", a = 1, b = "x:y"), "pair:1:x%3Ay");
    let book = Book {
        id: 9,
        author: "A".into(),
        title: "T".into(),
    };
    assert_eq!(tag!("book:<b.id>", b = book), "book:9");
    // Each value is the caller's, never another placeholder's binding.
    let (from, to) = (1, 2);
    assert_eq!(tag!("move:<from>:<to>", from = to, to = from), "move:2:1");
}

/// A book moving to another author busts both authors' lists (tags from
/// the write's result) and the book itself.
#[tokio::test]
async fn a_book_moving_between_authors_busts_both_authors() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let books = library(&cache);
        assert_eq!(books.titles_by("Le Guin").await, ["Earthsea", "Lathe"]);
        assert_eq!(books.titles_by("Banks").await, ["Excession"]);
        let queries = books.queries.load(SeqCst);
        books.titles_by("Le Guin").await;
        books.titles_by("Banks").await;
        assert_eq!(books.queries.load(SeqCst), queries, "{backend}: cached");

        books.move_book(1, "Banks").await.unwrap();
        assert_eq!(
            books.titles_by("Le Guin").await,
            ["Lathe"],
            "{backend}: old author busted"
        );
        assert_eq!(
            books.titles_by("Banks").await,
            ["Earthsea", "Excession"],
            "{backend}: new author busted"
        );
        assert_eq!(
            books.book(1).await.unwrap().author,
            "Banks",
            "{backend}: the book busted"
        );
    }
}

/// A book's entry carries its author's tag, derived from the row: busting
/// the author reaches it. The first miss of a key learns its tags and
/// stores nothing; the next stores; then it is served.
#[tokio::test]
async fn tags_from_the_value_are_busted_like_any_tag() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        let books = library(&cache);
        let q = || books.queries.load(SeqCst);
        books.book(1).await; // learns author:Le Guin
        books.book(1).await; // stores
        let before = q();
        assert_eq!(books.book(1).await.unwrap().author, "Le Guin");
        assert_eq!(q(), before, "{backend}: served from the cache");

        books.rename_author("Le Guin", "U. K. Le Guin").await;
        assert_eq!(
            books.book(1).await.unwrap().author,
            "U. K. Le Guin",
            "{backend}: busted through the tag derived from the value"
        );
        // Its author changed: the tags it reads changed with it.
        books.book(1).await;
        let before = q();
        books.book(1).await;
        assert_eq!(q(), before, "{backend}: cached again, under the new author");
        books.rename_author("U. K. Le Guin", "Ursula").await;
        assert_eq!(books.book(1).await.unwrap().author, "Ursula", "{backend}");
    }
}

#[derive(Clone, Default)]
struct Shelf {
    author: Arc<Mutex<String>>,
    runs: Arc<AtomicU64>,
    gate: Gate,
}

fn author_of(value: &String) -> [String; 1] {
    [tag!("author:<a>", a = value)]
}

#[cached(key = "shelf:<id>", ttl = 60, tags_from = author_of, cache = cache, unkeyed = [shelf])]
async fn shelf_author(cache: &Cache, shelf: &Shelf, id: u64) -> String {
    let _ = id;
    shelf.runs.fetch_add(1, SeqCst);
    let author = shelf.author.lock().unwrap().clone();
    shelf.gate.pass().await;
    author
}

#[invalidates(tags = ["author:<from>"], cache = cache)]
async fn rename_shelf_author(cache: &Cache, shelf: &Shelf, from: &str, to: &str) {
    let _ = from;
    *shelf.author.lock().unwrap() = to.to_string();
}

/// Concurrent misses of a key whose derived tags change still collapse
/// (I8): the leader learns the new tags and stores nothing, and the callers
/// that waited for it read again under those tags instead of each running
/// the body in turn. The body runs twice: once to learn, once to store.
#[tokio::test]
async fn concurrent_misses_under_new_derived_tags_collapse() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        for warm in [true, false] {
            let shelf = Shelf::default();
            *shelf.author.lock().unwrap() = "Le Guin".into();
            let id = u64::from(warm);
            if warm {
                shelf_author(&cache, &shelf, id).await;
                shelf_author(&cache, &shelf, id).await; // stored
                rename_shelf_author(&cache, &shelf, "Le Guin", "Ursula").await;
            }
            let runs = shelf.runs.load(SeqCst);
            let coalesced = cache.stats().coalesced;
            let (reached, release) = shelf.gate.hold_next(false);
            let call =
                |cache: Cache, shelf: Shelf| async move { shelf_author(&cache, &shelf, id).await };
            let leader = tokio::spawn(call(cache.clone(), shelf.clone()));
            reached.notified().await;
            let followers: Vec<_> = (0..5)
                .map(|_| tokio::spawn(call(cache.clone(), shelf.clone())))
                .collect();
            let c = cache.clone();
            crate::support::eventually("5 followers", || c.stats().coalesced >= coalesced + 5)
                .await;
            release.notify_one();
            let author = if warm { "Ursula" } else { "Le Guin" };
            assert_eq!(leader.await.unwrap(), author);
            for f in followers {
                f.await.unwrap();
            }
            assert_eq!(
                shelf.runs.load(SeqCst) - runs,
                2,
                "{backend} (warm: {warm}): once to learn the tags, once to store"
            );
        }
    }
}

/// The race that keeps a fill from reading a derived tag's version after
/// its body: the body reads the row, the author is renamed and busted, then
/// the body ends. The value is from before the bust: it is not served
/// after it (I1).
#[tokio::test]
async fn a_bust_of_a_derived_tag_during_the_body_is_not_missed() {
    for (cache, _server) in each_backend().await {
        let backend = cache.backend_name();
        for learned in [false, true] {
            let books = library(&cache);
            cache.invalidate_keys(["book:1"]).await.unwrap();
            if learned {
                books.book(1).await; // the author's tag is known
            }
            let (reached, release) = books.gate.hold_next(false);
            let read = {
                let books = books.clone();
                tokio::spawn(async move { books.book(1).await })
            };
            reached.notified().await; // read the row under "Le Guin"
            books.rename_author("Le Guin", "Ursula").await;
            release.notify_one();
            assert_eq!(read.await.unwrap().unwrap().author, "Le Guin");
            assert_eq!(
                books.book(1).await.unwrap().author,
                "Ursula",
                "{backend} (tags learned: {learned}): the value read before the bust is not served"
            );
        }
    }
}
