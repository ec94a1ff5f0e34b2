-- 0003: intentcasting. The customer's intents and the offers they got; the vendor's
-- incoming intents and the offers it made; order agreements; vendors' categories.
CREATE TABLE intents (                         -- intents this node cast
    id        TEXT PRIMARY KEY,                -- the intent id: thid of its whole conversation
    state     TEXT NOT NULL,                   -- open | closed | expired | cancelled
    category  TEXT NOT NULL,
    body      BLOB NOT NULL,                   -- canonical JSON of the intent body
    created   REAL NOT NULL,
    expires   INTEGER NOT NULL,
    persona   TEXT,                            -- the pseudonym's did, for anonymous intents
    salt      BLOB,                            -- derives the pseudonym key from the node key
    accepted  TEXT,                            -- the accepted offer's id
    updated   REAL NOT NULL
) STRICT;

CREATE TABLE intent_targets (                  -- the vendors an intent went to
    intent    TEXT NOT NULL REFERENCES intents(id),
    vendor    TEXT NOT NULL,
    name      TEXT NOT NULL,
    endpoints TEXT NOT NULL,                   -- JSON list; for vendors outside the book
    via       TEXT NOT NULL,                   -- relationship | discovery | invitation
    message   TEXT NOT NULL,                   -- id of the intent message sent to them
    answer    TEXT,                            -- "declined: reason" when the vendor said no
    PRIMARY KEY (intent, vendor)
) STRICT;
CREATE INDEX intent_targets_vendor ON intent_targets(vendor);

CREATE TABLE offers (                          -- offers received
    id        TEXT PRIMARY KEY,                -- the offer message's id
    intent    TEXT NOT NULL REFERENCES intents(id),
    vendor    TEXT NOT NULL,
    state     TEXT NOT NULL,                   -- open | accepted | closed | superseded
    amount    TEXT NOT NULL,                   -- decimal string (sorted numerically in Python)
    currency  TEXT NOT NULL,
    expires   INTEGER NOT NULL,
    received  REAL NOT NULL,
    message   BLOB NOT NULL                    -- the exact signed offer message
) STRICT;
CREATE INDEX offers_intent ON offers(intent, vendor);

CREATE TABLE incoming_intents (                -- intents this (vendor) node received
    id        TEXT NOT NULL,                   -- the intent id
    peer      TEXT NOT NULL,                   -- who cast it (a pseudonym, if anonymous)
    state     TEXT NOT NULL,
    category  TEXT NOT NULL,
    body      BLOB NOT NULL,                   -- canonical JSON of the intent body
    message   TEXT NOT NULL,                   -- the intent message's id
    received  REAL NOT NULL,
    expires   INTEGER NOT NULL,
    decision  TEXT,                            -- JSON: what the offer rules decided, and why
    updated   REAL NOT NULL,
    PRIMARY KEY (id, peer)
) STRICT;

CREATE TABLE offers_made (                     -- offers this (vendor) node sent
    id        TEXT PRIMARY KEY,                -- the offer message's id
    intent    TEXT NOT NULL,
    peer      TEXT NOT NULL,
    state     TEXT NOT NULL,                   -- open | accepted | closed | superseded
    amount    TEXT NOT NULL,
    currency  TEXT NOT NULL,
    expires   INTEGER NOT NULL,
    created   REAL NOT NULL,
    rule      TEXT,                            -- the offer rule that made it, if any
    message   BLOB NOT NULL                    -- the exact signed offer message
) STRICT;
CREATE INDEX offers_made_intent ON offers_made(intent, peer);

CREATE TABLE order_agreements (                -- held by both the customer and the vendor
    id        TEXT PRIMARY KEY,                -- the agreement id
    intent    TEXT NOT NULL,
    offer     TEXT NOT NULL,
    peer      TEXT NOT NULL,                   -- the other side (vendor, or customer/pseudonym)
    complete  INTEGER NOT NULL,                -- 1 once signed by both
    document  BLOB NOT NULL,                   -- the agreement as JSON (vrm verify reads it)
    updated   REAL NOT NULL
) STRICT;
CREATE INDEX order_agreements_intent ON order_agreements(intent);

CREATE TABLE vendor_categories (               -- what each vendor said it offers
    did        TEXT PRIMARY KEY,
    categories TEXT NOT NULL,                  -- JSON list
    updated    REAL NOT NULL
) STRICT;
