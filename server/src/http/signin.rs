//! Signing in, for phones (`POST /api/v1/login`) and the review web (`POST /login`) alike: the
//! input limits, the limiters, the password check and the audit of failures, in one place.
//!
//! Under attack:
//! - **Guessing one account's password**: after [`FREE_PER_USER`] failures within
//!   [`WINDOW`], each further try for that username waits twice as long as the last (1 s, 2 s,
//!   4 s … at most [`MAX_WAIT`]). A delay, never a lock: whoever types the name cannot lock
//!   its owner out for more than a minute.
//! - **Many passwords from one address**: the same after [`FREE_PER_ADDRESS`] failures from
//!   one client address.
//! - **Spraying one password over many usernames from many addresses**: once more than
//!   [`GLOBAL_PER_MINUTE`] sign-ins fail in a minute server-wide, only addresses where someone
//!   signed in successfully within a day may try until the minute is over.
//! - **Exhausting the server**: at most [`HASHING`] password checks run at once (Argon2 takes
//!   ~19 MiB each), off the async threads; the limiters remember at most [`TRACKED`] usernames
//!   and addresses, so no stream of requests makes the server hold more afterwards.
//!
//! Every failed sign-in of an existing account is audited; failures for names that do not
//! exist are counted and audited as one line a minute at most (each would otherwise be a
//! row written by anyone).

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use diaban_core::limits::{self, LimitError};
use hashlink::LruCache;

use crate::domain::auth;
use crate::store::{Db, DbError, User};

/// Failures per username within [`WINDOW`] before tries for it are spaced out.
pub const FREE_PER_USER: u32 = 5;
/// Failures per client address within [`WINDOW`] before tries from it are spaced out.
pub const FREE_PER_ADDRESS: u32 = 20;
/// Failures are forgotten this long after the last one.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The longest wait between two tries.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Failed sign-ins per minute, server-wide, before only trusted addresses may try.
pub const GLOBAL_PER_MINUTE: u32 = 60;
/// How long an address where a sign-in succeeded stays trusted.
pub const TRUSTED_FOR: Duration = Duration::from_secs(24 * 3600);
/// Password checks at once.
pub const HASHING: usize = 4;
/// Usernames, addresses and trusted addresses each limiter remembers at most.
pub const TRACKED: usize = 10_000;

/// Where a sign-in comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Device,
    Web,
}

impl Channel {
    fn as_str(self) -> &'static str {
        match self {
            Channel::Device => "device",
            Channel::Web => "web",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error(transparent)]
    TooLong(#[from] LimitError),
    #[error("too many failed sign-ins; try again in {seconds} s")]
    Wait { seconds: u64 },
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("the server is busy checking passwords; try again shortly")]
    Busy,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Failures of one username or address.
#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// How long to wait before the next try, given `free` failures are free.
    fn wait(&self, free: u32, now: Instant) -> Duration {
        if self.count < free || now.duration_since(self.last) >= WINDOW {
            return Duration::ZERO;
        }
        let step = Duration::from_secs(1 << (self.count - free).min(6)).min(MAX_WAIT);
        step.saturating_sub(now.duration_since(self.last))
    }

    fn add(entry: Option<&mut Failures>, now: Instant) -> Failures {
        match entry {
            Some(f) if now.duration_since(f.last) < WINDOW => Failures { count: f.count.saturating_add(1), last: now },
            _ => Failures { count: 1, last: now },
        }
    }
}

struct Limits {
    users: LruCache<String, Failures>,
    addresses: LruCache<IpAddr, Failures>,
    trusted: LruCache<IpAddr, Instant>,
    /// Failures in the current minute, server-wide.
    minute: (Instant, u32),
    /// Failures for names that do not exist, since they were last audited.
    unknown: (Instant, u64),
}

/// The limiters and the bound on password checks, shared by every request of a process.
pub struct SignInGuard {
    limits: Mutex<Limits>,
    hashing: tokio::sync::Semaphore,
}

impl Default for SignInGuard {
    fn default() -> Self {
        let now = Instant::now();
        SignInGuard {
            limits: Mutex::new(Limits {
                users: LruCache::new(TRACKED),
                addresses: LruCache::new(TRACKED),
                trusted: LruCache::new(TRACKED),
                minute: (now, 0),
                unknown: (now, 0),
            }),
            hashing: tokio::sync::Semaphore::new(HASHING),
        }
    }
}

impl SignInGuard {
    /// How long this username and address must wait before trying (zero: now).
    fn wait(&self, username: &str, address: IpAddr) -> Duration {
        let Ok(mut l) = self.limits.lock() else { return Duration::ZERO };
        let now = Instant::now();
        let user = l.users.get(username).map_or(Duration::ZERO, |f| f.wait(FREE_PER_USER, now));
        let from = l.addresses.get(&address).map_or(Duration::ZERO, |f| f.wait(FREE_PER_ADDRESS, now));
        let trusted = l.trusted.get(&address).is_some_and(|at| now.duration_since(*at) < TRUSTED_FOR);
        let elapsed = now.duration_since(l.minute.0);
        let global = if !trusted && elapsed < Duration::from_secs(60) && l.minute.1 >= GLOBAL_PER_MINUTE {
            Duration::from_secs(60) - elapsed
        } else {
            Duration::ZERO
        };
        user.max(from).max(global)
    }

    /// Counts a failure; for a name that does not exist, whether a summary is due in the audit
    /// (with the count since the last one).
    fn failed(&self, username: &str, address: IpAddr, exists: bool) -> Option<u64> {
        let Ok(mut l) = self.limits.lock() else { return None };
        let now = Instant::now();
        let user = Failures::add(l.users.get_mut(username), now);
        l.users.insert(username.to_owned(), user);
        let from = Failures::add(l.addresses.get_mut(&address), now);
        l.addresses.insert(address, from);
        l.minute = if now.duration_since(l.minute.0) >= Duration::from_secs(60) {
            (now, 1)
        } else {
            (l.minute.0, l.minute.1 + 1)
        };
        if exists {
            return None;
        }
        l.unknown.1 += 1;
        if now.duration_since(l.unknown.0) < Duration::from_secs(60) {
            return None;
        }
        let count = l.unknown.1;
        l.unknown = (now, 0);
        Some(count)
    }

    fn succeeded(&self, username: &str, address: IpAddr) {
        if let Ok(mut l) = self.limits.lock() {
            l.users.remove(username);
            l.addresses.remove(&address);
            l.trusted.insert(address, Instant::now());
        }
    }

    /// Runs a password check off the async threads, at most [`HASHING`] at once.
    async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, SignInError> {
        let _permit = tokio::time::timeout(Duration::from_secs(10), self.hashing.acquire())
            .await
            .map_err(|_| SignInError::Busy)?
            .map_err(|_| SignInError::Busy)?;
        tokio::task::spawn_blocking(move || match hash {
            Some(hash) => auth::verify_password(&password, &hash),
            // Burns the same time: a missing user and a wrong password look alike.
            None => {
                auth::verify_dummy(&password);
                false
            }
        })
        .await
        .map_err(|_| SignInError::Busy)
    }
}

/// Checks a username and password from `address` and returns the user.
pub async fn sign_in(
    db: &Db,
    guard: &SignInGuard,
    username: &str,
    password: &str,
    address: IpAddr,
    channel: Channel,
) -> Result<User, SignInError> {
    limits::check_chars("the username", username, limits::MAX_USERNAME_CHARS)?;
    limits::check_bytes("the password", password.len(), limits::MAX_PASSWORD_BYTES)?;
    let key = username.to_lowercase();
    let wait = guard.wait(&key, address);
    if !wait.is_zero() {
        return Err(SignInError::Wait { seconds: wait.as_millis().div_ceil(1000).max(1) as u64 });
    }
    let found = db.user_for_login(username).await?;
    let exists = found.is_some();
    let (user, hash) = found.map_or((None, None), |(u, h)| (Some(u), Some(h)));
    if guard.verify(password.to_owned(), hash).await?
        && let Some(user) = user
    {
        guard.succeeded(&key, address);
        return Ok(user);
    }
    let detail = format!("{} from {address}", channel.as_str());
    match guard.failed(&key, address, exists) {
        _ if exists => db.audit(Some(username), "login_failed", &detail).await?,
        Some(count) => {
            db.audit(None, "login_failed_unknown_users", &format!("{count} tries, the last {detail}")).await?
        }
        None => {}
    }
    Err(SignInError::InvalidCredentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn an_account_is_slowed_down_never_locked() {
        let guard = SignInGuard::default();
        for _ in 0..FREE_PER_USER {
            assert_eq!(guard.wait("canbo", addr(1)), Duration::ZERO);
            guard.failed("canbo", addr(1), true);
        }
        let wait = guard.wait("canbo", addr(2));
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        for _ in 0..20 {
            guard.failed("canbo", addr(3), true);
        }
        assert!(guard.wait("canbo", addr(4)) <= MAX_WAIT, "the wait never passes a minute");
        assert_eq!(guard.wait("lanhdao", addr(4)), Duration::ZERO, "other accounts are not affected");
    }

    #[test]
    fn one_address_trying_many_names_is_slowed_down() {
        let guard = SignInGuard::default();
        for i in 0..FREE_PER_ADDRESS {
            guard.failed(&format!("user{i}"), addr(9), true);
        }
        assert!(guard.wait("someone.else", addr(9)) > Duration::ZERO);
        assert_eq!(guard.wait("someone.else", addr(10)), Duration::ZERO);
    }

    #[test]
    fn spraying_from_many_addresses_leaves_only_trusted_addresses_trying() {
        let guard = SignInGuard::default();
        guard.succeeded("kiemduyet", addr(200));
        for i in 0..GLOBAL_PER_MINUTE {
            guard.failed(&format!("user{i}"), IpAddr::from([192, 168, (i / 200) as u8, (i % 200) as u8]), false);
        }
        assert!(guard.wait("kiemduyet", addr(201)) > Duration::ZERO, "an unknown address waits");
        assert_eq!(guard.wait("kiemduyet", addr(200)), Duration::ZERO, "the province office does not");
    }

    #[test]
    fn the_limiters_remember_a_bounded_number_of_names() {
        let guard = SignInGuard::default();
        for i in 0..(TRACKED + 500) {
            guard.failed(&format!("spray{i}"), addr(1), false);
        }
        let l = guard.limits.lock().unwrap();
        assert_eq!(l.users.len(), TRACKED);
    }
}
