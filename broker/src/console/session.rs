//! Console logins and sessions.
//!
//! `twilio-broker console open` asks the broker (Admin/OpenConsole, over the
//! gRPC API, policy-checked) for a one-time login token bound to the caller
//! that asked. The browser exchanges it once, within [`LOGIN_TTL`], at
//! `/login?token=…` for a session cookie (HttpOnly, SameSite=Strict); the
//! session's caller is that identity, so the console sees what its policy
//! rules allow and nothing more.
//!
//! **Invariants:** tokens and session ids are 256 random bits, kept here only
//! as SHA-256 digests (a memory dump shows no usable token) and compared as
//! map keys of those digests; a login token is removed by the exchange that
//! uses it (single use) and refused after [`LOGIN_TTL`]; a session ends after
//! [`SESSION_TTL`] or at logout. Neither a token nor a session id is ever
//! logged, audited or rendered; the CSRF token is rendered only into the
//! session's own forms.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::{Digest as _, Sha256};

use crate::caller::Caller;

/// How long a login link works if unused.
pub const LOGIN_TTL: Duration = Duration::from_secs(60);
/// How long a session lasts from its login.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Most unused login links kept; the oldest is dropped past this.
const MAX_LOGINS: usize = 64;
/// Most live sessions kept; the oldest is dropped past this.
const MAX_SESSIONS: usize = 256;

type Digest = [u8; 32];

fn digest(token: &str) -> Digest {
    Sha256::digest(token.as_bytes()).into()
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    B64.encode(bytes)
}

/// A logged-in browser: whose session it is and its CSRF token.
#[derive(Clone)]
pub struct Session {
    /// The caller that ran `console open`; the console acts as it.
    pub caller: Arc<Caller>,
    /// Every form that posts carries it; a post without it is refused.
    pub csrf: String,
    expires: Instant,
}

impl Session {
    /// True when `sent` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, sent: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        self.csrf.as_bytes().ct_eq(sent.as_bytes()).into()
    }
}

#[derive(Default)]
struct Tables {
    logins: HashMap<Digest, (Arc<Caller>, Instant)>,
    sessions: HashMap<Digest, Session>,
}

/// Pending login tokens and live sessions of one console.
pub struct Sessions {
    /// The console's own address, for the login link.
    base_url: String,
    tables: Mutex<Tables>,
}

impl Sessions {
    /// Logins and sessions of the console served at `base_url`
    /// (`http://127.0.0.1:PORT`).
    pub fn new(base_url: String) -> Self {
        Sessions {
            base_url,
            tables: Mutex::new(Tables::default()),
        }
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A one-time login link for `caller`, and when it expires.
    pub fn issue_login(&self, caller: Arc<Caller>) -> (String, SystemTime) {
        let token = random_token();
        let now = Instant::now();
        let mut tables = self.tables();
        tables.logins.retain(|_, (_, until)| *until > now);
        if tables.logins.len() >= MAX_LOGINS
            && let Some(oldest) = tables
                .logins
                .iter()
                .min_by_key(|(_, (_, until))| *until)
                .map(|(k, _)| *k)
        {
            tables.logins.remove(&oldest);
        }
        tables
            .logins
            .insert(digest(&token), (caller, now + LOGIN_TTL));
        (
            format!("{}/login?token={token}", self.base_url),
            SystemTime::now() + LOGIN_TTL,
        )
    }

    /// Exchanges a login token for a new session: its id (the cookie
    /// value) and the session. None when the token is unknown, used or
    /// expired.
    pub fn redeem(&self, token: &str) -> Option<(String, Session)> {
        let now = Instant::now();
        let mut tables = self.tables();
        let (caller, until) = tables.logins.remove(&digest(token))?;
        if until <= now {
            return None;
        }
        tables.sessions.retain(|_, s| s.expires > now);
        if tables.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = tables
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| *k)
        {
            tables.sessions.remove(&oldest);
        }
        let id = random_token();
        let session = Session {
            caller,
            csrf: random_token(),
            expires: now + SESSION_TTL,
        };
        tables.sessions.insert(digest(&id), session.clone());
        Some((id, session))
    }

    /// The live session with this id.
    pub fn session(&self, id: &str) -> Option<Session> {
        let tables = self.tables();
        tables
            .sessions
            .get(&digest(id))
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    /// Ends the session with this id.
    pub fn end(&self, id: &str) {
        self.tables().sessions.remove(&digest(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caller::{Identity, Source, Transport};

    fn caller() -> Arc<Caller> {
        Arc::new(Caller::new(
            Transport::Plaintext,
            Identity::Anonymous,
            "127.0.0.1:1".into(),
            Source::Unknown,
        ))
    }

    fn token_of(url: &str) -> &str {
        url.split_once("token=").expect("a token").1
    }

    #[test]
    fn a_login_link_works_once_and_binds_the_caller() {
        let sessions = Sessions::new("http://127.0.0.1:9".into());
        let (url, expires) = sessions.issue_login(caller());
        assert!(url.starts_with("http://127.0.0.1:9/login?token="), "{url}");
        assert!(expires > SystemTime::now());
        let token = token_of(&url).to_owned();
        let (id, session) = sessions.redeem(&token).expect("first use");
        assert_eq!(session.caller.principal(), "anonymous");
        assert!(sessions.redeem(&token).is_none(), "single use");
        let found = sessions.session(&id).expect("the session");
        assert!(found.csrf_matches(&session.csrf));
        assert!(!found.csrf_matches("forged"));
        assert!(sessions.session(&token).is_none(), "a token is no session");
        sessions.end(&id);
        assert!(sessions.session(&id).is_none(), "logged out");
    }

    #[test]
    fn only_digests_are_kept() {
        let sessions = Sessions::new(String::new());
        let (url, _) = sessions.issue_login(caller());
        let token = token_of(&url).to_owned();
        let tables = sessions.tables();
        assert!(tables.logins.contains_key(&digest(&token)));
        // 32 random bytes: the token is not a digest key of itself.
        assert_eq!(tables.logins.len(), 1);
        drop(tables);
        assert!(sessions.redeem("not-a-token").is_none());
    }

    #[test]
    fn unused_links_are_capped() {
        let sessions = Sessions::new(String::new());
        let (first, _) = sessions.issue_login(caller());
        for _ in 0..MAX_LOGINS {
            sessions.issue_login(caller());
        }
        assert_eq!(sessions.tables().logins.len(), MAX_LOGINS);
        assert!(
            sessions.redeem(token_of(&first)).is_none(),
            "the oldest went"
        );
    }
}
