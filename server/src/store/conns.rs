//! Connections for the sync path, kept beside sqlx's pool rather than returned to it.
//!
//! Each time a connection goes back to sqlx's pool, sqlx spawns a task that pings it: on
//! SQLite that is one more hand-off to the connection's thread (two thread wake-ups), as
//! much as the one query an idle sync runs. The connections here go back to a plain list
//! instead. They stay checked out of sqlx's pool, which counts them against its size.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::store::DbError;

/// How many connections the sync path holds at most. Requests wait for one in turn.
pub const KEPT: usize = 4;

pub struct Conns {
    /// One permit per connection; a request waits its turn here (first come, first served).
    turns: Semaphore,
    free: Mutex<Vec<PoolConnection<Any>>>,
}

/// A connection of [`Conns`]; back to the list when dropped.
pub struct Conn<'a> {
    conn: Option<PoolConnection<Any>>,
    home: &'a Conns,
    _turn: SemaphorePermit<'a>,
}

impl Default for Conns {
    fn default() -> Conns {
        Conns { turns: Semaphore::new(KEPT), free: Mutex::new(Vec::with_capacity(KEPT)) }
    }
}

impl Conns {
    /// A free connection, taken from `pool` the first times.
    pub async fn get<'a>(&'a self, pool: &AnyPool) -> Result<Conn<'a>, DbError> {
        let turn = self.turns.acquire().await.map_err(|_| DbError::Invalid("the connections are closed".into()))?;
        let kept = self.free.lock().ok().and_then(|mut free| free.pop());
        let conn = match kept {
            Some(conn) => conn,
            None => pool.acquire().await?,
        };
        Ok(Conn { conn: Some(conn), home: self, _turn: turn })
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        // A query cut off by a dropped future is finished by the connection's own thread
        // before it runs the next one, so the connection can be used again as it is. (The
        // turn is given back after this, when the fields drop.)
        if let (Some(conn), Ok(mut free)) = (self.conn.take(), self.home.free.lock()) {
            free.push(conn);
        }
    }
}

impl Deref for Conn<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        // Present from creation until drop.
        self.conn.as_deref().unwrap_or_else(|| unreachable!("a kept connection is present until dropped"))
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn.as_deref_mut().unwrap_or_else(|| unreachable!("a kept connection is present until dropped"))
    }
}
