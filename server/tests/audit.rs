//! The audit log pages newest first, a hundred lines a page, filtered by user and action in
//! SQL, with the count of what matches.

use diaban_server::store::{AUDIT_PAGE, Db};

#[tokio::test]
async fn the_audit_log_pages_newest_first_under_its_filters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join("audit.sqlite").to_string_lossy()).await.expect("open");
    for n in 0..250 {
        let (user, action) = if n % 5 == 0 { ("quantri", "export") } else { ("kiemduyet", "web_login") };
        db.audit(Some(user), action, &format!("line {n}")).await.expect("audit");
    }
    for (user, action, expected) in [(None, None, 250), (Some("quantri"), None, 50), (None, Some("web_login"), 200)] {
        let (mut before, mut seen) = (None, Vec::new());
        loop {
            let (page, total) = db.audit_page(user, action, before).await.expect("a page");
            assert_eq!(total, expected);
            assert!(page.len() as i64 <= AUDIT_PAGE);
            assert!(page.iter().all(|e| user.is_none_or(|u| e.username.as_deref() == Some(u))));
            assert!(page.iter().all(|e| action.is_none_or(|a| e.action == a)));
            seen.extend(page.iter().map(|e| e.id));
            if (page.len() as i64) < AUDIT_PAGE {
                break;
            }
            before = page.last().map(|e| e.id);
        }
        assert_eq!(seen.len() as i64, expected, "{user:?} {action:?}: every line once");
        assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first");
    }
}
