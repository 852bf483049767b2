//! Agent identity on the desk: tokens made once and kept only as a hash, agents listed and revoked,
//! and a bearer token turned back into the agent's name.
//!
//! A token is 32 bytes from the operating system's generator, shown once as `vtd_` and 64 hex
//! digits. The desk keeps its SHA-256: with that much randomness no guessing reverses it, so a slow
//! password hash would only slow every API call.

use sha2::{Digest, Sha256};

use crate::smartcar::Secret;

use super::db::{Db, DbError};

/// What every agent token starts with, so a leaked one is recognisable in a scanner's rules.
pub const TOKEN_PREFIX: &str = "vtd_";

/// Why an agent could not be added, listed or revoked.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "agent name `{0}`: use 1 to 64 letters, digits, dots, dashes, underscores or @ (it is shown in the audit)"
    )]
    Name(String),
    #[error("`{0}` is the name the audit gives the desk itself; pick another name for an agent")]
    Reserved(String),
    #[error("an agent named `{0}` exists already (revoke it first, or pick another name)")]
    Exists(String),
    #[error("no agent named `{0}`")]
    Unknown(String),
    #[error("the operating system gave no random bytes: {0}")]
    Random(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// One agent as `agent list` shows it (never its token, which the desk does not have).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub name: String,
    pub created_at: jiff::Timestamp,
    pub revoked_at: Option<jiff::Timestamp>,
}

/// Names the audit gives the desk itself (its administrator, its prober): no agent may take one, or
/// the audit could not tell them apart.
pub const RESERVED_NAMES: [&str; 2] = ["admin", "serve"];

/// Whether `name` is acceptable as an agent's name: short, printable, no spaces.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'))
}

/// A new random agent token.
pub fn new_token() -> Result<Secret, AgentError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AgentError::Random(e.to_string()))?;
    Ok(Secret::new(format!("{TOKEN_PREFIX}{}", hex::encode(bytes))))
}

/// What the desk stores of a token: the hex SHA-256 of its text.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// The token of an `Authorization: Bearer ...` header value; `None` for anything else.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 256)
        .then_some(token)
}

fn timestamp(at: std::time::SystemTime) -> jiff::Timestamp {
    jiff::Timestamp::try_from(at).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

impl Db {
    /// Adds an agent and returns its token, which is not kept: it cannot be shown again.
    pub async fn add_agent(&self, name: &str) -> Result<Secret, AgentError> {
        if RESERVED_NAMES
            .iter()
            .any(|r| r.eq_ignore_ascii_case(name.trim()))
        {
            return Err(AgentError::Reserved(name.to_string()));
        }
        if !valid_name(name) {
            return Err(AgentError::Name(
                crate::untrusted::text::one_line(name).into_owned(),
            ));
        }
        let token = new_token()?;
        let client = self.client().await?;
        let added = client
            .execute(
                // A revoked name may be given a new token (a rotation); a live one may not.
                "INSERT INTO agents (name, token_sha256) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE
                     SET token_sha256 = EXCLUDED.token_sha256, created_at = now(), revoked_at = NULL
                     WHERE agents.revoked_at IS NOT NULL",
                &[&name, &token_hash(token.expose())],
            )
            .await
            .map_err(DbError::from)?;
        if added == 0 {
            return Err(AgentError::Exists(name.to_string()));
        }
        client
            .execute(
                "INSERT INTO audit (actor, action, subject) VALUES ('admin', 'agent added', $1)",
                &[&name],
            )
            .await
            .map_err(DbError::from)?;
        Ok(token)
    }

    /// Every agent, oldest first.
    pub async fn agents(&self) -> Result<Vec<AgentRow>, AgentError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, created_at, revoked_at FROM agents ORDER BY created_at, name",
                &[],
            )
            .await
            .map_err(DbError::from)?;
        Ok(rows
            .iter()
            .map(|r| AgentRow {
                name: r.get(0),
                created_at: timestamp(r.get(1)),
                revoked_at: r.get::<_, Option<std::time::SystemTime>>(2).map(timestamp),
            })
            .collect())
    }

    /// Revokes an agent's token: refused from the next request on, and every live stream it holds
    /// is closed (the notice reaches every `serve` on the database).
    pub async fn revoke_agent(&self, name: &str) -> Result<(), AgentError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(DbError::from)?;
        let revoked = tx
            .execute(
                "UPDATE agents SET revoked_at = COALESCE(revoked_at, now()) WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(DbError::from)?;
        if revoked == 0 {
            return Err(AgentError::Unknown(
                crate::untrusted::text::one_line(name).into_owned(),
            ));
        }
        let notice = serde_json::json!({"kind": "revoked", "agent": name}).to_string();
        tx.execute(
            "INSERT INTO audit (actor, action, subject) VALUES ('admin', 'agent revoked', $1)",
            &[&name],
        )
        .await
        .map_err(DbError::from)?;
        tx.execute("SELECT pg_notify($1, $2)", &[&self.channel(), &notice])
            .await
            .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(())
    }

    /// The name of the agent holding `token`, if it exists and is not revoked.
    pub async fn agent_for_token(&self, token: &str) -> Result<Option<String>, DbError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT name FROM agents WHERE token_sha256 = $1 AND revoked_at IS NULL",
                &[&token_hash(token)],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_is_64_hex_digits_after_the_prefix_and_never_repeats() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        let hex_part = a.expose().strip_prefix(TOKEN_PREFIX).unwrap();
        assert_eq!(hex_part.len(), 64);
        assert!(hex_part.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn the_stored_hash_is_not_the_token_and_ignores_surrounding_whitespace() {
        let token = "vtd_00ff";
        let hash = token_hash(token);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(token));
        assert_eq!(hash, token_hash(" vtd_00ff\n"));
    }

    #[test]
    fn only_a_bearer_header_with_a_token_yields_one() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            "Basic abc",
            "abc",
            &format!("Bearer {}", "x".repeat(300)),
        ] {
            assert_eq!(bearer(bad), None, "{bad}");
        }
    }

    #[test]
    fn agent_names_are_short_and_printable() {
        for good in ["alice", "bob.smith", "desk-2", "a@b"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "has space", "tab\t", "\u{1b}[31m", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
