-- 0002: personal data store: profile, grants (both directions), values held for
-- customers, agreements (any kind) with their logs, terms proffers, update fan-outs.
CREATE TABLE profile (
    field   TEXT PRIMARY KEY,                  -- name, email, phone, address, ...
    value   TEXT NOT NULL,                     -- JSON
    updated REAL NOT NULL
) STRICT;

CREATE TABLE grants (
    id        TEXT PRIMARY KEY,
    direction TEXT NOT NULL CHECK (direction IN ('out', 'in')),  -- out: we shared; in: shared with us
    peer      TEXT NOT NULL,
    paths     TEXT NOT NULL,                   -- JSON list of profile paths still granted
    purpose   TEXT NOT NULL,
    until     REAL,                            -- expiry (unix seconds), NULL = until revoked
    created   REAL NOT NULL,
    state     TEXT NOT NULL,                   -- active | revoked | expired
    ended     REAL,
    agreement TEXT                             -- the agreement whose log records its events
) STRICT;
CREATE INDEX grants_peer ON grants(peer, direction);
CREATE INDEX grants_until ON grants(state, until);

CREATE TABLE grant_events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    grant_id TEXT NOT NULL,
    type     TEXT NOT NULL,                    -- share | update | revoke | deleted | expired
    paths    TEXT NOT NULL,                    -- JSON list
    at       REAL NOT NULL,
    detail   TEXT NOT NULL DEFAULT '',
    receipt  BLOB                              -- grant.deleted: the vendor's exact signed message
) STRICT;
CREATE INDEX grant_events_grant ON grant_events(grant_id);

CREATE TABLE held_values (
    grant_id TEXT NOT NULL,
    peer     TEXT NOT NULL,
    path     TEXT NOT NULL,
    value    TEXT NOT NULL,                    -- JSON
    updated  REAL NOT NULL,
    PRIMARY KEY (grant_id, path)
) STRICT;
CREATE INDEX held_values_peer ON held_values(peer);

CREATE TABLE agreements (
    id       TEXT PRIMARY KEY,
    peer     TEXT NOT NULL,
    kind     TEXT NOT NULL,                    -- terms | order | ...
    complete INTEGER NOT NULL,                 -- signed by both parties
    doc      BLOB NOT NULL,                    -- the agreement with its log, canonical JSON
    created  REAL NOT NULL,
    updated  REAL NOT NULL
) STRICT;
CREATE INDEX agreements_peer ON agreements(peer, kind);

CREATE TABLE proffers (
    peer      TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('out', 'in')),  -- out: we proffered
    terms     TEXT NOT NULL,                   -- JSON list of {id, hash, required}
    at        REAL NOT NULL,
    PRIMARY KEY (peer, direction)
) STRICT;

CREATE TABLE fanout (
    update_id TEXT NOT NULL,                   -- one `vrm profile set`
    msg_id    TEXT NOT NULL,                   -- its outbox message to one grantee
    peer      TEXT NOT NULL,
    grant_id  TEXT NOT NULL,
    path      TEXT NOT NULL,
    at        REAL NOT NULL,
    PRIMARY KEY (update_id, msg_id)
) STRICT;
