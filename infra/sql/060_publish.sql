-- Write-audit-publish: dbt builds marts into schema marts_build; after the night's validations pass,
-- yibao.pipeline.publish swaps marts_build and marts inside one transaction and logs it here.
-- BI tools and reports only ever read schema marts, so they never see an unvalidated night.
create table if not exists audit.publish_log (
    publish_id   bigserial primary key,
    as_of_date   date        not null,
    run_id       text,
    load_ids     integer     not null default 0,   -- files loaded by the published run
    published_at timestamptz not null default now()
);

-- One row per pipeline run and step, for operators (what ran, how long, what it said).
create table if not exists audit.run_log (
    run_id      text        not null,
    step        text        not null,
    as_of_date  date,
    status      text        not null,
    seconds     numeric(10, 3),
    detail      jsonb,
    logged_at   timestamptz not null default now()
);
