-- One row per landing file the loader has seen. A file is identified by what it is
-- (extract, hospital, business date) and by its content hash: the same bytes load once.
-- file_size / file_mtime_ns: the file's stat when it was read. A file whose (source_file, size,
-- mtime) matches a row is known without reading it; any other file is hashed (loader.known_stats).
create table if not exists raw.load_ledger (
    load_id          bigserial primary key,
    file_kind        text        not null,          -- purchase | usage | claim | reference:<name>
    hospital_code    text,                          -- null for reference data
    business_date    date,                          -- null for reference data
    source_file      text        not null,          -- path relative to the landing root
    sha256           text        not null,
    status           text        not null check (status in ('loaded', 'rejected')),
    reject_reason    text,                          -- file-level reason code when rejected
    reject_detail    text,
    rows_read        integer     not null default 0,
    rows_loaded      integer     not null default 0,
    rows_quarantined integer     not null default 0,
    seconds          numeric(10, 3),
    loaded_at        timestamptz not null default now(),
    file_size        bigint,                        -- bytes as delivered (null: hash it again)
    file_mtime_ns    bigint                         -- modification time, ns since the epoch
);
-- warehouses bootstrapped before the stat columns existed (their rows are hashed once more, then known)
alter table raw.load_ledger add column if not exists file_size bigint;
alter table raw.load_ledger add column if not exists file_mtime_ns bigint;
create unique index if not exists load_ledger_file_uq
    on raw.load_ledger (file_kind, coalesce(hospital_code, ''), coalesce(business_date, date '0001-01-01'), sha256);
-- the files of the business dates an incremental build has not seen (macro incremental_watermark)
create index if not exists load_ledger_business_date_idx on raw.load_ledger (business_date);
-- the files loaded since the last publish (the marts gate's month_with_claims_has_budget reads
-- the first of them: through the primary key, PostgreSQL walked every file of the history)
create index if not exists load_ledger_loaded_at_idx on raw.load_ledger (loaded_at);
-- each hospital's fee_detail deliveries in date order: its first delivery is one probe
-- (the raw gate's fee_detail_nights, yibao.quality), not a read of the whole ledger
create index if not exists load_ledger_fee_detail_idx on raw.load_ledger (hospital_code, business_date)
    where file_kind = 'fee_detail' and status = 'loaded';

-- One row per load step: which business-date folders its walk for late and changed files listed.
-- walked_from null: every folder up to the night (a full walk); an ordinary night lists only the
-- late-file window's folders and a full walk follows every few nights (yibao.loader.walk_window).
create table if not exists raw.landing_walk (
    walked_at   timestamptz   not null default now(),
    through     date          not null,             -- the night's business date
    walked_from date,                               -- the first folder listed; null: every folder
    files_known integer       not null,             -- files the ledger already held as they are
    files_new   integer       not null,             -- files loaded or rejected by the step
    seconds     numeric(10, 3)
);

-- Row-level rejects. raw_value and row_data never hold an ID number: the loader writes the
-- pseudonym in its place.
create table if not exists raw.quarantine (
    load_id       bigint      not null,             -- raw.load_ledger
    file_kind     text        not null,
    hospital_code text,
    business_date date,
    source_file   text        not null,
    source_row    integer     not null,             -- 1 = first data row after the header
    natural_key   text,
    column_name   text,
    raw_value     text,
    reason_code   text        not null,
    reason_detail text,
    row_data      jsonb,
    quarantined_at timestamptz not null default now()
);
create index if not exists quarantine_load_idx on raw.quarantine (load_id);

-- Data rows a readable but rejected file held back (manifest mismatch, missing column, wrong
-- folder, unknown hospital, …): for every file rows_read = rows_loaded + rows_quarantined +
-- rows_held. 0 for a loaded file; null when a rejected file could not be read far enough to count.
alter table raw.load_ledger add column if not exists rows_held integer default 0;
