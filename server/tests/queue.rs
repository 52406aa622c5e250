//! The review queue pages in SQL: walking its pages from the first to the last shows every
//! record the reviewer may read exactly once, newest change first, under any filter, with the
//! count of what matches; on SQLite and on PostgreSQL. The demo province is the data: its
//! records were all written in one second, so the order's ties fall across page boundaries.

mod common;

use std::collections::HashSet;

use diaban_server::demo;
use diaban_server::domain::access::Access;
use diaban_server::store::{Db, QUEUE_PAGE, QueueQuery, RecordRow};

/// Every page of `query`, first to last; asserts each page's size and count as it goes.
async fn walk(db: &Db, mut query: QueueQuery<'_>) -> (Vec<(i64, String)>, i64) {
    let (mut seen, mut total) = (Vec::new(), None);
    loop {
        let page = db.queue_page(&query).await.expect("a queue page");
        assert!(page.rows.len() as i64 <= QUEUE_PAGE);
        assert_eq!(*total.get_or_insert(page.total), page.total, "the count does not change across pages");
        seen.extend(page.rows.iter().map(|r| (r.updated_at, r.id.clone())));
        match page.next {
            Some(next) => {
                assert_eq!(page.rows.len() as i64, QUEUE_PAGE, "only the last page is short");
                query.after = Some(next);
            }
            None => return (seen, total.unwrap_or(0)),
        }
    }
}

/// Which rows a filter keeps, as the plain list is filtered in Rust.
type Keep = Box<dyn Fn(&RecordRow) -> bool>;

/// What the queue should show: the same records, filtered in Rust.
fn expected(all: &[RecordRow], keep: impl Fn(&RecordRow) -> bool) -> HashSet<String> {
    all.iter().filter(|r| keep(r)).map(|r| r.id.clone()).collect()
}

async fn pages_show_every_record_once_in_order(db: &Db) {
    demo::seed(db).await.expect("the demo seeds");
    let reviewer = db.users().await.expect("users").into_iter().find(|u| u.username == "kiemduyet").expect("reviewer");
    let access = Access::of(db, &reviewer).await.expect("access");
    // The oracle: every record of every template the reviewer may read, as the exports read them.
    let mut all = Vec::new();
    for template in db.published_templates().await.expect("templates") {
        if access.template(&template.id) {
            all.extend(db.template_records(&template.id, &access.units).await.expect("records"));
        }
    }
    assert!(all.len() as i64 > 3 * QUEUE_PAGE, "the demo fills several pages");

    let base = QueueQuery { units: &access.units, hidden: &access.hidden, ..Default::default() };
    let cases: [(&str, QueueQuery, Keep); 4] = [
        ("no filter", base.clone(), Box::new(|_| true)),
        (
            "a template",
            QueueQuery { template: Some("person_record"), ..base.clone() },
            Box::new(|r| r.template_id == "person_record"),
        ),
        ("a state", QueueQuery { state: Some("submitted"), ..base.clone() }, Box::new(|r| r.state == "submitted")),
        (
            "a commune and a template",
            QueueQuery { unit: Some("03694"), template: Some("commune_monthly_report"), ..base.clone() },
            Box::new(|r| r.unit_code == "03694" && r.template_id == "commune_monthly_report"),
        ),
    ];
    for (name, query, keep) in cases {
        let want = expected(&all, keep);
        assert!(!want.is_empty(), "{name}: the demo has such records");
        let (seen, total) = walk(db, query).await;
        assert_eq!(total as usize, want.len(), "{name}: the count");
        assert_eq!(seen.len(), want.len(), "{name}: no record twice");
        assert_eq!(seen.iter().map(|(_, id)| id.clone()).collect::<HashSet<_>>(), want, "{name}: the records");
        assert!(seen.windows(2).all(|w| w[0] > w[1]), "{name}: newest first, then by id");
    }

    let newest = all.iter().map(|r| r.updated_at).max().unwrap_or_default();
    let ties = all.iter().filter(|r| r.updated_at == newest).count() as i64;
    assert!(ties > QUEUE_PAGE, "records changed in the same second span a page boundary ({ties})");

    let nothing = QueueQuery { template: Some("no_such_template"), ..base.clone() };
    let page = db.queue_page(&nothing).await.expect("a page");
    assert!(page.rows.is_empty() && page.total == 0 && page.next.is_none());
}

#[tokio::test]
async fn the_queue_pages_every_record_once_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join("queue.sqlite").to_string_lossy()).await.expect("open");
    pages_show_every_record_once_in_order(&db).await;
}

#[tokio::test]
async fn the_queue_pages_every_record_once_on_postgres() {
    if !common::use_postgres() {
        return;
    }
    let cluster = common::postgres_cluster().expect("the test cluster");
    let db = Db::open(&common::new_postgres_database(&cluster)).await.expect("open");
    pages_show_every_record_once_in_order(&db).await;
}
