-- The catalog schema. Each "-- migration N" section runs once, in order, inside one
-- transaction, and PRAGMA user_version records the last one applied. Never edit a
-- released section: add a new one.

-- migration 1
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- The operation log: every mutation ever made here or pulled from a remote. The
-- materialised tables below are a cache of the fold of these ops in HLC order.
CREATE TABLE ops (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,  -- local arrival order
    op_id   TEXT NOT NULL UNIQUE,
    hlc     TEXT NOT NULL,
    replica TEXT NOT NULL,
    rseq    INTEGER NOT NULL,                   -- position in the origin replica's own ops
    entity  TEXT NOT NULL,                      -- content, collaboration or key id
    kind    TEXT NOT NULL,
    body    BLOB NOT NULL                       -- the whole op, msgpack
);
CREATE INDEX ops_entity ON ops (entity, hlc);
CREATE UNIQUE INDEX ops_origin ON ops (replica, rseq);

-- Current state of each content. Deleted contents stay as tombstones (deleted = 1).
-- n is the local arrival order, the order of list pages (newest first).
CREATE TABLE contents (
    n            INTEGER PRIMARY KEY AUTOINCREMENT,
    content_id   TEXT NOT NULL UNIQUE,
    owner        TEXT NOT NULL,
    deleted      INTEGER NOT NULL DEFAULT 0,
    filename     TEXT,
    mime         TEXT,
    size         INTEGER,
    blob         TEXT,
    description  TEXT,
    tags         TEXT,
    width        INTEGER,
    height       INTEGER,
    version      INTEGER NOT NULL DEFAULT 0,
    created_hlc  TEXT,
    updated_hlc  TEXT
);
CREATE INDEX contents_owner ON contents (owner, deleted, n);

-- Live contents per owner in blocks of 1024 arrival numbers, so that a list page at any
-- offset finds its block by summing at most (contents / 1024) counts instead of
-- stepping over every row before it.
CREATE TABLE list_blocks (
    owner TEXT NOT NULL,
    block INTEGER NOT NULL,
    live  INTEGER NOT NULL,
    PRIMARY KEY (owner, block)
) WITHOUT ROWID;

-- Every version of every live content: the snapshot after it, and what it changed.
CREATE TABLE versions (
    version_id  TEXT PRIMARY KEY,
    content_id  TEXT NOT NULL,
    number      INTEGER NOT NULL,
    hlc         TEXT NOT NULL,
    author      TEXT NOT NULL,
    filename    TEXT,
    mime        TEXT,
    size        INTEGER,
    blob        TEXT,
    description TEXT,
    tags        TEXT,
    width       INTEGER,
    height      INTEGER,
    changes     TEXT NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX versions_number ON versions (content_id, number);
CREATE INDEX versions_blob ON versions (blob);

CREATE TABLE collaborations (
    collaboration_id TEXT PRIMARY KEY,
    content_id       TEXT NOT NULL,
    owner            TEXT NOT NULL,
    collaborator     TEXT NOT NULL,
    permissions      TEXT NOT NULL,
    deleted          INTEGER NOT NULL DEFAULT 0,
    created_hlc      TEXT NOT NULL,
    updated_hlc      TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX collaborations_content ON collaborations (content_id, collaborator);
CREATE INDEX collaborations_collaborator ON collaborations (collaborator);
CREATE INDEX collaborations_owner ON collaborations (owner);

CREATE TABLE api_keys (
    key_id       TEXT PRIMARY KEY,
    user         TEXT NOT NULL,
    description  TEXT,
    secret_hash  TEXT NOT NULL,
    created_hlc  TEXT NOT NULL,
    revoked_hlc  TEXT
) WITHOUT ROWID;
CREATE INDEX api_keys_hash ON api_keys (secret_hash);
CREATE INDEX api_keys_user ON api_keys (user);

-- Local only (not replicated, not in the state digest): when a key was last used here.
CREATE TABLE key_last_used (
    key_id       TEXT PRIMARY KEY,
    last_used_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- Storage counters, kept exact by every apply: O(1) to read.
CREATE TABLE storage_usage (
    user          TEXT PRIMARY KEY,
    contents      INTEGER NOT NULL DEFAULT 0,
    versions      INTEGER NOT NULL DEFAULT 0,
    bytes         INTEGER NOT NULL DEFAULT 0,
    history_bytes INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- How many versions of a user's live contents reference each blob: history_bytes counts
-- each distinct blob once per user.
CREATE TABLE user_blobs (
    user TEXT NOT NULL,
    blob TEXT NOT NULL,
    size INTEGER NOT NULL,
    refs INTEGER NOT NULL,
    PRIMARY KEY (user, blob)
) WITHOUT ROWID;

CREATE TABLE quotas (
    user        TEXT PRIMARY KEY,
    quota_bytes INTEGER NOT NULL
) WITHOUT ROWID;

-- Read counters, one row set per replica (grow-only counters, summed for reading).
CREATE TABLE api_usage (
    replica   TEXT NOT NULL,
    user      TEXT NOT NULL,
    operation TEXT NOT NULL,
    day       TEXT NOT NULL,
    calls     INTEGER NOT NULL,
    errors    INTEGER NOT NULL,
    bytes_in  INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    PRIMARY KEY (replica, user, operation, day)
) WITHOUT ROWID;
CREATE INDEX api_usage_user ON api_usage (user, day);

CREATE TABLE content_stats (
    replica      TEXT NOT NULL,
    content_id   TEXT NOT NULL,
    day          TEXT NOT NULL,
    views        INTEGER NOT NULL,
    downloads    INTEGER NOT NULL,
    bytes_served INTEGER NOT NULL,
    PRIMARY KEY (replica, content_id, day)
) WITHOUT ROWID;
CREATE INDEX content_stats_content ON content_stats (content_id, day);

-- Distinct viewers merge as a set (a grow-only set), not per replica.
CREATE TABLE viewers (
    content_id TEXT NOT NULL,
    day        TEXT NOT NULL,
    user       TEXT NOT NULL,
    PRIMARY KEY (content_id, day, user)
) WITHOUT ROWID;

-- Sync: configured remotes, per-remote progress, and blobs known only on a remote.
CREATE TABLE remotes (
    name    TEXT PRIMARY KEY,
    url     TEXT NOT NULL,
    options TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE remote_progress (
    remote  TEXT NOT NULL,
    replica TEXT NOT NULL,
    rseq    INTEGER NOT NULL,
    PRIMARY KEY (remote, replica)
) WITHOUT ROWID;

CREATE TABLE remote_blobs (
    blob   TEXT PRIMARY KEY,
    remote TEXT NOT NULL,
    size   INTEGER NOT NULL
) WITHOUT ROWID;

-- migration 2
-- Every local write reads the newest HLC in the log (other processes write to it too):
-- without this index that is a scan of the whole log.
CREATE INDEX ops_hlc ON ops (hlc);

-- migration 3
-- Bytes of a size no version has cannot be stored yet: an upload of a large file skips
-- its hashing pass before the copy when no version has that size.
CREATE INDEX versions_size ON versions (size);

-- migration 4
-- Live contents per owner in groups of 32 list_blocks (32768 arrival numbers), so that a
-- list page finds its block by summing (contents / 32768) + 32 counts, not one per block.
-- The 5 in "block >> 5" is catalog.SUPER_BITS.
CREATE TABLE list_supers (
    owner TEXT NOT NULL,
    super INTEGER NOT NULL,
    live  INTEGER NOT NULL,
    PRIMARY KEY (owner, super)
) WITHOUT ROWID;
INSERT INTO list_supers (owner, super, live)
    SELECT owner, block >> 5, sum(live) FROM list_blocks GROUP BY owner, block >> 5;

-- migration 5
-- Generation metadata (the normalised record, JSON) of each version, and of each content
-- as of its current version; NULL when the bytes carry none or were never read.
ALTER TABLE contents ADD COLUMN generation TEXT;
ALTER TABLE versions ADD COLUMN generation TEXT;
-- A collaborator who must not see how a content was made (prompts, models, seeds).
ALTER TABLE collaborations ADD COLUMN strip_metadata INTEGER NOT NULL DEFAULT 0;

-- Favorites, per user: a last-writer-wins register per (content, user), folded from
-- content.favorite ops.
CREATE TABLE favorites (
    content_id TEXT NOT NULL,
    user       TEXT NOT NULL,
    favorite   INTEGER NOT NULL,
    hlc        TEXT NOT NULL,
    PRIMARY KEY (content_id, user)
) WITHOUT ROWID;
CREATE INDEX favorites_user ON favorites (user, favorite);

-- The word index of live contents (rowid = contents.n): prompt, description, tags,
-- filename and model. unicode61 folds case and diacritics.
CREATE VIRTUAL TABLE search_words USING fts5(
    prompt, description, tags, filename, model,
    tokenize = "unicode61 remove_diacritics 2"
);
-- Text in Chinese, Japanese or Korean has no spaces between words: the runs of such
-- characters are indexed again as trigrams (rowid = contents.n, only contents that have
-- them), with the column the run came from.
CREATE VIRTUAL TABLE search_cjk USING fts5(prompt, description, tags, filename, model, tokenize = "trigram");

-- The facet values of each live content (kind: model, lora, sampler, generator, seed,
-- tag), for filters and for facets over the matches of a query.
CREATE TABLE content_terms (
    kind  TEXT NOT NULL,
    value TEXT NOT NULL COLLATE NOCASE,
    n     INTEGER NOT NULL,
    PRIMARY KEY (kind, value, n)
) WITHOUT ROWID;
CREATE INDEX content_terms_n ON content_terms (n);

-- How many live contents of each owner carry each facet value, kept by the fold: the
-- facets of a user's own contents without a query are read from here.
CREATE TABLE facet_counts (
    owner TEXT NOT NULL,
    kind  TEXT NOT NULL,
    value TEXT NOT NULL COLLATE NOCASE,
    count INTEGER NOT NULL,
    PRIMARY KEY (owner, kind, value)
) WITHOUT ROWID;
CREATE INDEX facet_counts_top ON facet_counts (owner, kind, count);

-- Stripped copies of blobs (local, derived: made once, dropped by gc with their source).
CREATE TABLE stripped_blobs (
    source   TEXT PRIMARY KEY,
    stripped TEXT NOT NULL
) WITHOUT ROWID;

-- Contents that existed before generation metadata was read: the next open reads it.
INSERT INTO meta (key, value) SELECT 'reindex_pending', '1' WHERE EXISTS (SELECT 1 FROM contents);
-- The words of existing contents go into the index now (the fold keeps it from here on).
INSERT INTO search_words (rowid, prompt, description, tags, filename, model)
    SELECT n, NULL, description, tags, filename, NULL FROM contents WHERE deleted = 0;
INSERT INTO content_terms (kind, value, n)
    SELECT DISTINCT 'tag', j.value, c.n FROM contents c, json_each(c.tags) j
    WHERE c.deleted = 0 AND c.tags IS NOT NULL;
INSERT INTO facet_counts (owner, kind, value, count)
    SELECT c.owner, 'tag', t.value, count(*) FROM content_terms t JOIN contents c USING (n)
    GROUP BY c.owner, t.value;

-- migration 6
-- What each blob file looked like (size, inode, mtime) when this replica wrote, found or
-- last verified it: the dedup path compares the file with it, without reading it, and
-- replaces a file that changed. This store's own, never synced.
CREATE TABLE blob_files (
    blob     TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    inode    INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL
) WITHOUT ROWID;

-- migration 7
-- A content's path: where it sat in the folder it was uploaded from ("renders/a/b.png"),
-- so that uploading that folder again finds it. Versions keep it in their snapshots.
ALTER TABLE contents ADD COLUMN path TEXT;
ALTER TABLE versions ADD COLUMN path TEXT;
CREATE INDEX contents_path ON contents (owner, path) WHERE path IS NOT NULL;

-- Local only (never synced, not in the state digest): what a file looked like when it was
-- last uploaded here, so that a folder uploaded again skips the files that have not
-- changed without reading them (as restic and DVC keep size, mtime and inode).
CREATE TABLE file_cache (
    user       TEXT NOT NULL,
    source     TEXT NOT NULL,     -- the absolute path of the file uploaded
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    inode      INTEGER NOT NULL,
    content_id TEXT NOT NULL,
    blob       TEXT NOT NULL,
    seen_ns    INTEGER NOT NULL,  -- when the file was read: later changes are racy before it
    PRIMARY KEY (user, source)
) WITHOUT ROWID;

-- migration 8
-- The owner of each indexed content, narrow so that checking whose each match is stays
-- in memory (the contents rows are wide: they hold the generation record).
CREATE TABLE search_owner (
    n     INTEGER PRIMARY KEY,
    owner TEXT NOT NULL
);
INSERT INTO search_owner (n, owner) SELECT n, owner FROM contents WHERE deleted = 0;

-- migration 9
-- The stat cache again, shaped so that one query answers for a whole folder: a row holds
-- the file's path in the store and its stat ("size mtime_ns inode") as text, and is
-- only present while it is true: it is written only for a file not changed within the
-- clock's resolution of its reading, and the triggers below remove it when its content
-- is deleted, gets other bytes or another path, or a newer content takes its path.
-- Dropping the old rows costs one more hashing of each file, once.
DROP TABLE file_cache;
CREATE TABLE file_cache (
    user       TEXT NOT NULL,
    source     TEXT NOT NULL,     -- the absolute path of the file uploaded
    path       TEXT NOT NULL,     -- the content's path in the store
    stat       TEXT NOT NULL,     -- "size mtime_ns inode" of the file when it was read
    content_id TEXT NOT NULL,
    PRIMARY KEY (user, source)
) WITHOUT ROWID;
CREATE INDEX file_cache_content ON file_cache (content_id);
CREATE INDEX file_cache_path ON file_cache (user, path);
-- Each trigger body is one line: the migration runner splits statements at ";" and a newline.
CREATE TRIGGER file_cache_content_changed AFTER UPDATE OF blob, path, deleted ON contents
WHEN OLD.blob IS NOT NEW.blob OR OLD.path IS NOT NEW.path OR OLD.deleted <> NEW.deleted
BEGIN
    DELETE FROM file_cache WHERE content_id = OLD.content_id; DELETE FROM file_cache WHERE user = NEW.owner AND path = NEW.path; END;
CREATE TRIGGER file_cache_content_dropped AFTER DELETE ON contents
BEGIN
    DELETE FROM file_cache WHERE content_id = OLD.content_id; END;
CREATE TRIGGER file_cache_path_taken AFTER INSERT ON contents WHEN NEW.path IS NOT NULL
BEGIN
    DELETE FROM file_cache WHERE user = NEW.owner AND path = NEW.path; END;

-- migration 10
-- The words of two characters or more each indexed text repeats (per column, each word
-- once; rowid = contents.n, only contents that repeat one). Search ranks the matches
-- that repeat more of the query's words first, from this small index, instead of
-- running bm25 over every match.
-- detail=column: searched by column (what a collaborator without metadata may match);
-- columnsize=0: nothing ranks by its lengths, so none are kept.
CREATE VIRTUAL TABLE search_again USING fts5(
    prompt, description, tags, filename, model,
    tokenize = "unicode61 remove_diacritics 2", detail = column, columnsize = 0
);
-- Existing contents: their repeated words, read from the word index itself.
CREATE VIRTUAL TABLE temp.search_instances USING fts5vocab(main, search_words, instance);
INSERT INTO search_again (rowid, prompt, description, tags, filename, model)
    SELECT doc,
        group_concat(CASE col WHEN 'prompt' THEN term END, ' '),
        group_concat(CASE col WHEN 'description' THEN term END, ' '),
        group_concat(CASE col WHEN 'tags' THEN term END, ' '),
        group_concat(CASE col WHEN 'filename' THEN term END, ' '),
        group_concat(CASE col WHEN 'model' THEN term END, ' ')
    FROM (SELECT doc, col, term FROM temp.search_instances WHERE length(term) > 1
          GROUP BY doc, col, term HAVING count(*) > 1)
    GROUP BY doc;
DROP TABLE temp.search_instances;

-- migration 11
-- Small blobs' bytes, kept in the catalog itself (``blobs.inline``): one commit then
-- holds both the bytes and the version that references them, one flush of the log,
-- where a blob file costs a temp file, its fsync, a rename and a folder's fsync. Large
-- blobs stay files under objects/. Local only (never synced as rows: a remote gets the
-- same objects/ key either way). ``data`` is last so that listing hash, size and age
-- reads no overflow page; a rowid table, as SQLite advises for large rows.
CREATE TABLE blob_data (
    hash       TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,  -- wall time written (or last stored again), for gc's min_age
    data       BLOB NOT NULL
);
-- gc lists every row's hash, size and age: from this index, a few rows per page read,
-- rather than a page of the table (each holds the start of one row's bytes) per row.
CREATE INDEX blob_data_listing ON blob_data (hash, size, created_ms);
