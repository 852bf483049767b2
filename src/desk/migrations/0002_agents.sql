-- The agents who may read the desk through its API. Only a SHA-256 of each token is kept: the tokens
-- are 32 random bytes, so a fast hash cannot be reversed by guessing.

CREATE TABLE agents (
    name          text PRIMARY KEY,
    token_sha256  text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
