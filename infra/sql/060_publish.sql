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

-- Each dbt node's seconds in the last run that ran it (yibao.transform.NodeTimings): the weights by
-- which dbt's threads take the ready nodes, longest chain of work first. A hint only: emptied, the
-- next build takes them in the default weights' order and fills it again.
create table if not exists audit.dbt_node_seconds (
    unique_id    text             primary key,
    seconds      double precision not null,
    measured_at  timestamptz      not null default now()
);
comment on table audit.dbt_node_seconds is 'dbt 节点上次运行耗时 (秒): 就绪节点按其后最长工作链排序的权重';

-- One row per rendering of a month's settlement statements (yibao.reports.publish). The
-- asset-triggered monthly_settlement run renders every month whose last day a published night has
-- passed and that has no row here yet, so each month is rendered exactly once; a manual re-render
-- adds a row with trigger 'manual'.
create table if not exists audit.statement_log (
    month        date        not null,   -- first day of the month rendered
    as_of_date   date,                   -- as-of date of the marts it was rendered from
    run_id       text,
    trigger      text        not null default 'auto',   -- auto (asset-triggered) | manual
    folder       text,
    files        integer,
    rendered_at  timestamptz not null default now()
);
