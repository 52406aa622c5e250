//! Group commit: SQLite (WAL, `synchronous=FULL`) spends most of a small write transaction on
//! the fsync of its commit. Writers that arrive together share one transaction and one fsync,
//! and the last writer of a burst commits for all. Every writer returns only after the commit
//! that holds its work is durable, so nothing is acknowledged before it is on disk.
//!
//! A failed job undoes only itself: each job that another may follow ends with a savepoint (its
//! [`Mark`]), and a failed job rolls back to the one before it. The marks alternate between two
//! names, so a job that set its own mark and was cut off still rolls back to its predecessor's.
//! A job may send its mark with its last statement, which saves a hand-off to SQLite's thread
//! while the writer lock is held.
//!
//! On PostgreSQL the shared transaction first takes the cluster-wide write lock
//! ([`crate::store::PG_WRITE_LOCK`]): writers on every node read and write records one
//! transaction at a time, as on SQLite, and change-log sequences commit in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};
use tokio::sync::{Mutex, MutexGuard, oneshot, watch};

use crate::store::{Backend, DbError};

/// A batch commits once it holds this many jobs, even while more writers queue.
const MAX_BATCH: usize = 64;
/// The savepoints that end the jobs of a transaction, by turns (see [`Mark`]), and the way
/// back to each. [`with_marks!`] spells the same names.
const MARKS: [&str; 2] = ["SAVEPOINT done_a", "SAVEPOINT done_b"];
const BACK_TO: [&str; 2] = ["ROLLBACK TO done_a", "ROLLBACK TO done_b"];

/// A statement (literals, or macros that expand to them) in three forms: as it is, then
/// ending with either of [`MARKS`]. A job's last statement is sent in the form
/// [`Mark::send`] picks (static SQL: sqlx takes no SQL built at run time).
macro_rules! with_marks {
    ($($sql:tt)+) => {
        [
            concat!($($sql)+),
            concat!($($sql)+, "; SAVEPOINT done_a"),
            concat!($($sql)+, "; SAVEPOINT done_b"),
        ]
    };
}
pub(crate) use with_marks;

/// A writer whose batch was left open (the writer meant to commit it went away) commits it
/// itself after this long.
const FLUSH_AFTER: Duration = Duration::from_millis(20);

pub struct Committer {
    state: Mutex<Batch>,
    /// Writers waiting for `state`: while any wait, the holder leaves the batch open for them.
    queued: AtomicUsize,
    /// Transactions committed so far.
    commits: AtomicUsize,
    /// Bumped after each commit here, and on PostgreSQL after each NOTIFY from any node:
    /// what waiting devices watch.
    announced: watch::Sender<u64>,
}

pub struct Batch {
    backend: Backend,
    /// The writers' connection, kept from one transaction to the next (sqlx pings a
    /// connection each time it goes back to the pool: one more hand-off per commit).
    conn: Option<PoolConnection<Any>>,
    /// Whether a transaction is open on `conn`.
    open: bool,
    /// Jobs done in the open transaction: the last one's mark is `MARKS[(done - 1) % 2]`.
    done: usize,
    /// A BEGIN was sent and its writer cut off before it returned: the connection may hold a
    /// transaction nobody tracks, rolled back before the next BEGIN.
    beginning: bool,
    /// How to undo the job running in the transaction; if it is cut off (its future dropped),
    /// the next writer undoes it first.
    running: Undo,
    /// Writers whose work is in the open transaction, told when it is durable.
    waiting: Vec<oneshot::Sender<Result<(), String>>>,
}

/// How a job's work is taken back out of the shared transaction.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Undo {
    /// No job is running.
    Nothing,
    /// Back to the mark of the job before.
    ToMark,
    /// The whole transaction: the job is its first.
    Transaction,
}

/// The savepoint that ends a job when another job of the transaction may follow it. The
/// committer sets it after the job, unless the job sent it with its last statement
/// ([`Mark::send`]).
pub struct Mark {
    /// Which of [`MARKS`] this job sets.
    turn: usize,
    sent: bool,
}

impl Mark {
    /// Which form of a [`with_marks!`] statement the job's last statement is sent in: the one
    /// ending with this job's mark. The job must send nothing after it, or else call
    /// [`Mark::unsent`].
    pub fn send(&mut self) -> usize {
        self.sent = true;
        1 + self.turn
    }

    /// More statements followed the mark sent: the committer sets it again at the end.
    pub fn unsent(&mut self) {
        self.sent = false;
    }
}

struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Committer {
    pub fn new(backend: Backend) -> Arc<Committer> {
        Arc::new(Committer {
            state: Mutex::new(Batch {
                backend,
                conn: None,
                open: false,
                done: 0,
                beginning: false,
                running: Undo::Nothing,
                waiting: Vec::new(),
            }),
            queued: AtomicUsize::new(0),
            commits: AtomicUsize::new(0),
            announced: watch::Sender::new(0),
        })
    }

    /// A receiver told of every commit (see `announced`).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.announced.subscribe()
    }

    /// Tells the watchers that something may have been committed.
    pub fn announce(&self) {
        self.announced.send_modify(|n| *n += 1);
    }

    /// Runs `f` in the shared write transaction and returns once it is committed.
    pub async fn write<T, F>(&self, pool: &AnyPool, f: F) -> Result<T, DbError>
    where
        F: for<'c> AsyncFnOnce(&'c mut AnyConnection) -> Result<T, DbError>,
    {
        // (Not `write_marked` with a closure that drops the mark: that closure's future is not
        // general over the lifetimes, and axum's handlers then are not `Send`.)
        let (mut batch, mut mark) = self.start_job(pool).await?;
        let value = f(batch.connection()?).await;
        let (value, durable) = self.end_job(batch, &mut mark, value).await?;
        self.durable(value, durable).await
    }

    /// [`Committer::write`] for a job that may send its [`Mark`] itself.
    pub async fn write_marked<T, F>(&self, pool: &AnyPool, f: F) -> Result<T, DbError>
    where
        F: for<'c, 'm> AsyncFnOnce(&'c mut AnyConnection, &'m mut Mark) -> Result<T, DbError>,
    {
        let (mut batch, mut mark) = self.start_job(pool).await?;
        let value = f(batch.connection()?, &mut mark).await;
        let (value, durable) = self.end_job(batch, &mut mark, value).await?;
        self.durable(value, durable).await
    }

    /// Takes the writer lock and the open transaction (begun if none is) for a job.
    async fn start_job(&self, pool: &AnyPool) -> Result<(MutexGuard<'_, Batch>, Mark), DbError> {
        let mut batch = self.lock().await;
        batch.open(pool).await?;
        // The first job of a transaction is undone by rolling the transaction back.
        batch.running = if batch.done == 0 { Undo::Transaction } else { Undo::ToMark };
        let mark = Mark { turn: batch.done % 2, sent: false };
        Ok((batch, mark))
    }

    /// Ends a job that came to `value`: marks its end if another job may follow, or undoes
    /// it if it failed, and commits when no writer is queued (or the batch is full). The
    /// receiver is told when the job's work is durable.
    async fn end_job<T>(
        &self,
        mut batch: MutexGuard<'_, Batch>,
        mark: &mut Mark,
        mut value: Result<T, DbError>,
    ) -> Result<(T, oneshot::Receiver<Result<(), String>>), DbError> {
        let last = self.queued.load(Ordering::SeqCst) == 0;
        let commit_now = last || batch.waiting.len() + 1 >= MAX_BATCH;
        if value.is_ok() && !mark.sent && !commit_now {
            let marked = sqlx::query(MARKS[mark.turn]).execute(batch.connection()?).await;
            if let Err(e) = marked {
                value = Err(e.into());
            }
        }
        if value.is_ok() {
            batch.running = Undo::Nothing;
            batch.done += 1;
        } else {
            // Undone alone (or, if it cannot be, with the whole transaction).
            batch.undo_running().await;
        }
        let value = match value {
            Ok(value) => value,
            Err(e) => {
                // Our work is undone; still commit the others' if nobody follows.
                if last {
                    self.commit(&mut batch).await;
                }
                return Err(e);
            }
        };
        let (tx, rx) = oneshot::channel();
        batch.waiting.push(tx);
        if commit_now {
            self.commit(&mut batch).await;
        }
        Ok((value, rx))
    }

    /// Returns `value` once the commit that holds its job is durable.
    async fn durable<T>(&self, value: T, mut durable: oneshot::Receiver<Result<(), String>>) -> Result<T, DbError> {
        loop {
            match tokio::time::timeout(FLUSH_AFTER, &mut durable).await {
                Ok(Ok(Ok(()))) => return Ok(value),
                Ok(Ok(Err(e))) => return Err(DbError::Invalid(format!("the commit failed: {e}"))),
                Ok(Err(_)) => return Err(DbError::Invalid("the commit was abandoned".into())),
                // Nobody committed our batch (the writer after us went away): commit it.
                Err(_) => {
                    let mut batch = self.lock().await;
                    self.commit(&mut batch).await;
                }
            }
        }
    }

    /// Commits any open batch and holds the writer lock: for writes made straight on the pool.
    pub async fn exclusive(&self) -> MutexGuard<'_, Batch> {
        let mut batch = self.lock().await;
        self.commit(&mut batch).await;
        batch
    }

    /// How many transactions this committer has committed.
    pub fn commits(&self) -> usize {
        self.commits.load(Ordering::SeqCst)
    }

    async fn commit(&self, batch: &mut Batch) {
        if batch.commit().await {
            self.commits.fetch_add(1, Ordering::SeqCst);
            self.announce();
        }
    }

    async fn lock(&self) -> MutexGuard<'_, Batch> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let queued = Queued(&self.queued);
        let batch = self.state.lock().await;
        drop(queued);
        batch
    }
}

impl Batch {
    /// The connection of the open transaction, beginning one if none is open and undoing a
    /// job that was cut off halfway.
    async fn open(&mut self, pool: &AnyPool) -> Result<&mut PoolConnection<Any>, DbError> {
        self.undo_running().await;
        if !self.open {
            if self.conn.is_none() {
                self.conn = Some(pool.acquire().await?);
            }
            if std::mem::take(&mut self.beginning)
                && let Some(conn) = self.conn.as_mut()
            {
                let _ = sqlx::query("ROLLBACK").execute(&mut **conn).await;
            }
            self.beginning = true;
            let begun = self.begin().await;
            self.beginning = false;
            if let Err(e) = begun {
                // The next transaction takes a fresh connection (this one may be broken).
                self.discard().await;
                return Err(e);
            }
            self.open = true;
            self.done = 0;
        }
        self.conn.as_mut().ok_or_else(|| DbError::Invalid("no open transaction".into()))
    }

    /// The connection of the open transaction.
    fn connection(&mut self) -> Result<&mut AnyConnection, DbError> {
        Ok(&mut **self.conn.as_mut().ok_or_else(|| DbError::Invalid("no open transaction".into()))?)
    }

    async fn begin(&mut self) -> Result<(), DbError> {
        let conn = self.conn.as_mut().ok_or_else(|| DbError::Invalid("no connection".into()))?;
        match self.backend {
            Backend::Sqlite => {
                sqlx::query("BEGIN IMMEDIATE").execute(&mut **conn).await?;
            }
            Backend::Postgres => {
                sqlx::query("BEGIN").execute(&mut **conn).await?;
                let locked = sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(crate::store::PG_WRITE_LOCK)
                    .execute(&mut **conn)
                    .await;
                if let Err(e) = locked {
                    let _ = sqlx::query("ROLLBACK").execute(&mut **conn).await;
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// Undoes the running job (one that failed, or was cut off halfway when its future was
    /// dropped); if it cannot be undone, the whole transaction is given up.
    async fn undo_running(&mut self) {
        if self.running != Undo::Nothing {
            if self.undo().await.is_err() {
                self.abandon().await;
            }
            self.running = Undo::Nothing;
        }
    }

    /// Gives up the open transaction: its connection is closed and its writers are told.
    async fn abandon(&mut self) {
        self.open = false;
        self.discard().await;
        for waiter in self.waiting.drain(..) {
            let _ = waiter.send(Err("the transaction was rolled back".into()));
        }
    }

    /// Closes a connection that failed mid-transaction (not back to the pool, where it might
    /// still hold the transaction): the next transaction takes a fresh one.
    async fn discard(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }

    /// Takes the running job's work back out of the transaction.
    async fn undo(&mut self) -> Result<(), DbError> {
        let Some(conn) = self.conn.as_mut() else { return Ok(()) };
        match self.running {
            Undo::Nothing => {}
            Undo::ToMark => {
                let turn = self.done.checked_sub(1).ok_or_else(|| DbError::Invalid("no job to go back to".into()))?;
                sqlx::query(BACK_TO[turn % 2]).execute(&mut **conn).await?;
            }
            Undo::Transaction => {
                self.open = false;
                // A failed rollback: the caller abandons the transaction and its connection.
                sqlx::query("ROLLBACK").execute(&mut **conn).await?;
            }
        }
        Ok(())
    }

    /// Commits the open transaction (if any) and tells every writer in it; whether one was
    /// committed.
    async fn commit(&mut self) -> bool {
        // A job cut off halfway: its work does not go in.
        self.undo_running().await;
        if !std::mem::take(&mut self.open) {
            return false;
        }
        let Some(conn) = self.conn.as_mut() else { return false };
        let result = match sqlx::query("COMMIT").execute(&mut **conn).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut **conn).await;
                self.discard().await;
                Err(e.to_string())
            }
        };
        for waiter in self.waiting.drain(..) {
            let _ = waiter.send(result.clone());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database in a temporary directory (kept while the test runs) and a committer.
    async fn fixture() -> (tempfile::TempDir, crate::store::Db, Arc<Committer>) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::Db::open(&dir.path().join("s.sqlite").to_string_lossy()).await.unwrap();
        (dir, db, Committer::new(Backend::Sqlite))
    }

    async fn rows(pool: &AnyPool) -> Vec<String> {
        sqlx::query_scalar("SELECT detail FROM audit_log ORDER BY detail").fetch_all(pool).await.unwrap()
    }

    async fn log(conn: &mut AnyConnection, detail: &str) -> Result<(), DbError> {
        sqlx::query("INSERT INTO audit_log (at, action, detail) VALUES (0, 'test', $1)")
            .bind(detail)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Once every writer queues behind `gate`, lets them go: their outcomes, and how many
    /// commits they took.
    async fn release<T>(
        committer: &Committer,
        gate: MutexGuard<'_, Batch>,
        writers: Vec<tokio::task::JoinHandle<Result<T, DbError>>>,
    ) -> (Vec<Result<T, DbError>>, usize) {
        while committer.queued.load(Ordering::SeqCst) < writers.len() {
            tokio::task::yield_now().await;
        }
        let before = committer.commits();
        drop(gate);
        let mut outcomes = Vec::new();
        for writer in writers {
            outcomes.push(writer.await.unwrap());
        }
        (outcomes, committer.commits() - before)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_that_queue_together_share_one_commit_and_a_failed_one_undoes_only_itself() {
        let (_dir, db, committer) = fixture().await;
        let pool = db.pool.clone();
        // Hold the writer lock while 20 writers queue up behind it.
        let gate = committer.exclusive().await;
        // The first job to run in the transaction fails (no job before it: its undo is the
        // whole transaction's), and so does the eighth (undone to its savepoint).
        let turn = Arc::new(AtomicUsize::new(0));
        let mut writers = Vec::new();
        for i in 0..20 {
            let (committer, pool, turn) = (committer.clone(), pool.clone(), turn.clone());
            writers.push(tokio::spawn(async move {
                committer
                    .write(&pool, async |conn| {
                        log(conn, &format!("{i:02}")).await?;
                        match turn.fetch_add(1, Ordering::SeqCst) {
                            0 | 7 => Err(DbError::Invalid(format!("job {i} fails after writing"))),
                            _ => Ok(i),
                        }
                    })
                    .await
            }));
        }
        let (outcomes, commits) = release(&committer, gate, writers).await;
        let mut written = Vec::new();
        for outcome in outcomes {
            match outcome {
                Ok(i) => written.push(format!("{i:02}")),
                Err(e) => assert!(e.to_string().contains("fails after writing"), "{e}"),
            }
        }
        assert_eq!(written.len(), 18);
        assert_eq!(commits, 1, "twenty queued writers, one commit");
        written.sort();
        assert_eq!(rows(&pool).await, written, "every job's row but the failed ones', durable");
    }

    /// Writes `detail` and sends the job's mark in the same batch.
    async fn log_marked(conn: &mut AnyConnection, detail: &str, mark: &mut Mark) -> Result<(), DbError> {
        let sql = with_marks!("INSERT INTO audit_log (at, action, detail) VALUES (0, 'test', $1)")[mark.send()];
        sqlx::query(sql).bind(detail).execute(&mut *conn).await?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_that_sent_its_own_mark_and_then_failed_is_undone_to_the_mark_before() {
        let (_dir, db, committer) = fixture().await;
        let pool = db.pool.clone();
        let gate = committer.exclusive().await;
        // In turn: a job that marks its own end; one that marks its end and then fails; a
        // plain one.
        let turn = Arc::new(AtomicUsize::new(0));
        let mut writers = Vec::new();
        for _ in 0..3 {
            let (committer, pool, turn) = (committer.clone(), pool.clone(), turn.clone());
            writers.push(tokio::spawn(async move {
                committer
                    .write_marked(&pool, async |conn, mark| match turn.fetch_add(1, Ordering::SeqCst) {
                        0 => log_marked(conn, "one", mark).await,
                        1 => {
                            log_marked(conn, "two", mark).await?;
                            Err(DbError::Invalid("fails after its mark".into()))
                        }
                        _ => log(conn, "three").await,
                    })
                    .await
            }));
        }
        let (outcomes, commits) = release(&committer, gate, writers).await;
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 2);
        assert_eq!(commits, 1, "three queued writers, one commit");
        assert_eq!(rows(&pool).await, ["one", "three"], "the failed job's row is gone, its predecessor's stays");
    }

    /// Starts a writer that writes `detail` and then hangs, and drops it once it has written.
    async fn cut_off(committer: &Arc<Committer>, pool: &AnyPool, detail: &'static str) {
        let (wrote, written) = oneshot::channel::<()>();
        let (c, p) = (committer.clone(), pool.clone());
        let hanging = tokio::spawn(async move {
            let mut wrote = Some(wrote);
            c.write(&p, async |conn| {
                log(conn, detail).await?;
                if let Some(wrote) = wrote.take() {
                    let _ = wrote.send(());
                }
                std::future::pending::<Result<(), DbError>>().await
            })
            .await
        });
        written.await.unwrap();
        hanging.abort();
        assert!(hanging.await.is_err(), "the writer was cut off");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_first_job_cut_off_halfway_is_rolled_back_with_its_transaction() {
        let (_dir, db, committer) = fixture().await;
        cut_off(&committer, &db.pool, "cut off").await;
        committer.write(&db.pool, async |conn| log(conn, "next").await).await.unwrap();
        assert_eq!(rows(&db.pool).await, ["next"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_later_job_cut_off_halfway_is_undone_to_its_savepoint() {
        let (_dir, db, committer) = fixture().await;
        // A transaction left open with one job's work in it, as a writer leaves it for the
        // writers queued behind.
        let durable = {
            let mut batch = committer.lock().await;
            let conn = batch.open(&db.pool).await.unwrap();
            log(conn, "kept").await.unwrap();
            sqlx::query(MARKS[0]).execute(&mut **conn).await.unwrap();
            batch.done = 1;
            let (tx, rx) = oneshot::channel();
            batch.waiting.push(tx);
            rx
        };
        cut_off(&committer, &db.pool, "cut off").await;
        committer.write(&db.pool, async |conn| log(conn, "next").await).await.unwrap();
        assert_eq!(durable.await.unwrap(), Ok(()), "the first job's work committed");
        assert_eq!(rows(&db.pool).await, ["kept", "next"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_cut_off_while_its_transaction_begins_leaves_none_behind() {
        let (_dir, db, committer) = fixture().await;
        // Another connection holds SQLite's write lock, so the writer waits inside BEGIN.
        let mut other = db.pool.acquire().await.unwrap();
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *other).await.unwrap();
        let (c, p) = (committer.clone(), db.pool.clone());
        let writer = tokio::spawn(async move { c.write(&p, async |conn| log(conn, "never").await).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        writer.abort();
        assert!(writer.await.is_err(), "the writer was cut off");
        // The lock is freed: the cut-off BEGIN now goes through on the writers' connection.
        sqlx::query("ROLLBACK").execute(&mut *other).await.unwrap();
        drop(other);
        committer.write(&db.pool, async |conn| log(conn, "next").await).await.unwrap();
        assert_eq!(rows(&db.pool).await, ["next"], "committed, seen from another connection");
    }
}
