-- Data-quality results and the scope of each validation run (yibao.quality, expectations/).
-- Idempotent: create ... if not exists / create or replace.

-- One row per check result: a check that passes gives one row (hospital_code null, failed 0);
-- a check that fails gives one row per hospital it failed for (hospital_code null when the check
-- has no hospital, e.g. reference data). Re-validating a run replaces its rows (run_id + stage).
create table if not exists audit.dq_results (
    night_date    date        not null,     -- raw: the night's business date; marts: the as-of date
    run_id        text        not null,
    stage         text        not null check (stage in ('raw', 'marts')),
    suite         text        not null,     -- GX expectation suite
    check_name    text        not null,     -- meta.check of the expectation
    severity      text        not null check (severity in ('error', 'warning')),
    hospital_code text,
    evaluated     bigint      not null default 0,   -- rows (files, deliveries) the check looked at
    failed        bigint      not null default 0,   -- of which failed
    detail        text,
    recorded_at   timestamptz not null default now()
);
create index if not exists dq_results_run_idx on audit.dq_results (run_id, stage);
create index if not exists dq_results_night_idx on audit.dq_results (night_date, stage);
comment on table audit.dq_results is '数据质量检查结果 (每晚: raw 批次与 marts 构建)';

-- The scope of a validation run: the night's load ids (stage raw) or the mart schema and as-of
-- date (stage marts). GX reads its batches through the views below, which show the run named by
-- the session setting yibao.dq_run_id (yibao.quality sets it on GX's connection; to inspect a
-- run by hand: set yibao.dq_run_id = '<run_id>'; select * from audit.dq_night_purchase;).
create table if not exists audit.dq_runs (
    run_id       text        not null,
    stage        text        not null check (stage in ('raw', 'marts')),
    night_date   date        not null,     -- raw: the night's business date; marts: the as-of date
    min_load_id  bigint,                   -- raw: bounds of the night's load ids (lets the views
    max_load_id  bigint,                   --      use the BRIN indexes on load_id)
    schema_name  text,                     -- marts: the schema validated
    started_at   timestamptz not null default now(),
    primary key (run_id, stage)
);
comment on table audit.dq_runs is '数据质量校验运行的范围 (当晚装载批次 / 待发布的 marts 模式)';

-- The night's load ids (stage raw): ledger ids of the files loaded, and rejected, that night.
create table if not exists audit.dq_run_loads (
    run_id   text   not null,
    load_id  bigint not null,
    primary key (run_id, load_id)
);

-- Row checks of the raw stage, computed in one pass per raw asset (yibao.quality._row_checks):
-- every expectation with meta.row_check (a predicate on one row) is evaluated for all rows of the
-- night's batch by a single scan, and the failing (check, hospital) groups are stored here; those
-- expectations read their rows from audit.dq_night_row_findings. A catch-up of a year scans each
-- raw table once instead of twice per check. dq_row_checks_done records that the pass ran for an
-- asset, so an expectation fails ("not computed") rather than passes when it did not.
create table if not exists audit.dq_row_findings (
    run_id        text   not null,
    check_name    text   not null,     -- <suite>.<check>
    hospital_code text,
    failed        bigint not null,
    detail        text
);
create index if not exists dq_row_findings_run_idx on audit.dq_row_findings (run_id, check_name);
create table if not exists audit.dq_row_checks_done (
    run_id      text        not null,
    asset       text        not null,  -- GX asset, e.g. night_claim
    checks      integer     not null,  -- row checks evaluated in the pass
    seconds     numeric(10, 3),
    computed_at timestamptz not null default now(),
    primary key (run_id, asset)
);

-- The views GX validates. Dropped and created again on every bootstrap, so a change of columns
-- (here or in the raw tables) never blocks it; nothing depends on them.
drop view if exists audit.dq_night, audit.dq_night_purchase, audit.dq_night_usage, audit.dq_night_claim,
    audit.dq_night_loads, audit.dq_night_quarantine, audit.dq_marts_run, audit.dq_night_row_findings,
    audit.dq_night_row_checks_done, audit.dq_night_fee_detail, audit.dq_night_audit_rules;

-- The night's rows. The range condition lets PostgreSQL use the BRIN index on load_id, so a
-- check reads the night's rows, never the whole history: one BRIN scan of the run's load-id range,
-- then a membership test in the run's loads. The test is kept out of the join (`(… in (…)) is true`
-- is not pulled up into a semi-join, so it stays a hashed sub-plan computed once): joined, the
-- planner estimated the run's loads at one row (`run_id = current_setting(…)`, whatever the run)
-- and nested a scan of the raw table per load of the night, whose cost grew with the table.
-- The run's row is read once per query (`with r as materialized`): on the inner side of a nested
-- loop, audit.dq_runs itself was scanned again for every load of the night (or every row joined),
-- a table that grows by two runs every night a bureau keeps.
-- The run's ledger and quarantine rows are probed per load of the run (a lateral `offset 0`):
-- PostgreSQL cannot know which run the setting names and estimates its loads at the average run's,
-- a catch-up's thousands, for which it hashed a sequential scan of the whole ledger (or quarantine)
-- even on a night of 300 files.
create view audit.dq_night as
with r as materialized (
    select * from audit.dq_runs
    where stage = 'raw' and run_id = current_setting('yibao.dq_run_id', true)
)
select r.run_id, r.night_date, r.min_load_id, r.max_load_id
from r;

create view audit.dq_night_purchase as
with r as materialized (
    select * from audit.dq_runs
    where stage = 'raw' and run_id = current_setting('yibao.dq_run_id', true)
)
select r.run_id, r.night_date, t.*
from r
join raw.purchase t on t.load_id between r.min_load_id and r.max_load_id
where (t.load_id in (select l.load_id from audit.dq_run_loads l
                     where l.run_id = current_setting('yibao.dq_run_id', true))) is true;

create view audit.dq_night_usage as
with r as materialized (
    select * from audit.dq_runs
    where stage = 'raw' and run_id = current_setting('yibao.dq_run_id', true)
)
select r.run_id, r.night_date, t.*
from r
join raw.usage t on t.load_id between r.min_load_id and r.max_load_id
where (t.load_id in (select l.load_id from audit.dq_run_loads l
                     where l.run_id = current_setting('yibao.dq_run_id', true))) is true;

create view audit.dq_night_claim as
with r as materialized (
    select * from audit.dq_runs
    where stage = 'raw' and run_id = current_setting('yibao.dq_run_id', true)
)
select r.run_id, r.night_date, t.*
from r
join raw.claim t on t.load_id between r.min_load_id and r.max_load_id
where (t.load_id in (select l.load_id from audit.dq_run_loads l
                     where l.run_id = current_setting('yibao.dq_run_id', true))) is true;

create view audit.dq_night_fee_detail as
with r as materialized (
    select * from audit.dq_runs
    where stage = 'raw' and run_id = current_setting('yibao.dq_run_id', true)
)
select r.run_id, r.night_date, t.*
from r
join audit.dq_run_loads l on l.run_id = r.run_id
join raw.fee_detail t on t.load_id = l.load_id and t.load_id between r.min_load_id and r.max_load_id;

-- The rule library rows loaded in the night (national file and bureau file alike: file_kind says
-- which). Reference data has no hospital: hospital_code is null, as the row checks group by it.
create view audit.dq_night_audit_rules as
with r as materialized (
    select * from audit.dq_runs
    where stage = 'raw' and run_id = current_setting('yibao.dq_run_id', true)
)
select r.run_id, r.night_date, g.file_kind, null::text as hospital_code, t.*
from r
join audit.dq_run_loads l on l.run_id = r.run_id
join raw.load_ledger g on g.load_id = l.load_id
join raw.ref_audit_rules t on t.load_id = l.load_id;

create view audit.dq_night_loads as
with r as materialized (
    select * from audit.dq_runs
    where stage = 'raw' and run_id = current_setting('yibao.dq_run_id', true)
)
select r.run_id, r.night_date, t.*
from r
join audit.dq_run_loads l on l.run_id = r.run_id
cross join lateral (select * from raw.load_ledger t where t.load_id = l.load_id offset 0) as t;

create view audit.dq_night_quarantine as
with r as materialized (
    select * from audit.dq_runs
    where stage = 'raw' and run_id = current_setting('yibao.dq_run_id', true)
)
select r.run_id, r.night_date, t.*
from r
join audit.dq_run_loads l on l.run_id = r.run_id
cross join lateral (select * from raw.quarantine t where t.load_id = l.load_id offset 0) as t;

create view audit.dq_marts_run as
with r as materialized (
    select * from audit.dq_runs
    where stage = 'marts' and run_id = current_setting('yibao.dq_run_id', true)
)
select r.run_id, r.night_date as as_of_date, r.schema_name
from r;

create view audit.dq_night_row_findings as
select f.check_name, f.hospital_code, f.failed, f.detail
from audit.dq_row_findings f
where f.run_id = current_setting('yibao.dq_run_id', true);

create view audit.dq_night_row_checks_done as
select d.asset, d.checks
from audit.dq_row_checks_done d
where d.run_id = current_setting('yibao.dq_run_id', true);
