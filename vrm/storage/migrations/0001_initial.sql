-- 0001: identity metadata, relationships, messages, outbox, replay store, invitations.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE relationships (
    did        TEXT PRIMARY KEY,           -- the pinned key: a did:key is its public key
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    state      TEXT NOT NULL,
    channel    TEXT NOT NULL,              -- JSON: defaults/allow/deny/rate_per_min/paused
    endpoints  TEXT NOT NULL,              -- JSON list of URLs
    created    REAL NOT NULL,
    updated    REAL NOT NULL,
    last_seen  REAL,
    request_id TEXT,                       -- the connect.request that is pending
    note       TEXT
) STRICT;
CREATE INDEX relationships_request ON relationships(request_id);

CREATE TABLE messages (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,   -- arrival order, for --follow cursors
    id        TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    peer      TEXT NOT NULL,
    type      TEXT NOT NULL,
    thid      TEXT,
    created   INTEGER NOT NULL,
    at        REAL NOT NULL,                       -- received (in) or queued (out)
    read      INTEGER NOT NULL DEFAULT 0,
    message   BLOB NOT NULL,                       -- the exact signed JSON
    UNIQUE (direction, id)                         -- a peer may echo one of our ids
) STRICT;
CREATE INDEX messages_peer ON messages(peer, direction, read);
CREATE INDEX messages_thid ON messages(thid);

CREATE TABLE outbox (
    id           TEXT PRIMARY KEY,
    peer         TEXT NOT NULL,
    envelope     BLOB NOT NULL,                    -- sealed once; retries resend these bytes
    created      REAL NOT NULL,
    expires      REAL NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    state        TEXT NOT NULL,                    -- queued | delivered | failed | expired
    last_error   TEXT,
    delivered_at REAL
) STRICT;
CREATE INDEX outbox_state ON outbox(state, peer);

CREATE TABLE seen (
    id      TEXT PRIMARY KEY,
    expires REAL NOT NULL                          -- forget after the message could no longer open
) STRICT, WITHOUT ROWID;
CREATE INDEX seen_expires ON seen(expires);

CREATE TABLE invitations (
    token   TEXT PRIMARY KEY,
    uses    INTEGER NOT NULL,                      -- uses left
    expires REAL NOT NULL,
    created REAL NOT NULL
) STRICT;
