-- Roles and schemas of the warehouse. Runs in embedded and production modes alike (idempotent).
-- Must run as the database owner or a superuser (the bootstrap role): it creates roles and schemas.
--
-- Group roles (NOLOGIN; people and programs log in as LOGIN users that are members of them,
-- created per deployment by infra/bootstrap_roles.py from the environment — no password is
-- ever written in SQL):
--   yibao_loader       the loader: reads and writes raw.* (extracts, reference snapshots,
--                      raw.load_ledger, raw.quarantine); nothing else.
--   yibao_transformer  dbt and publish: reads raw, owns staging, intermediate, seeds, marts_build
--                      and marts (ALTER SCHEMA ... RENAME in publish needs ownership), writes audit.
--   bi_reader          BI tools: SELECT on marts only (granted by audit.apply_marts_security).
--   yibao_county       parent of the per-county roles (county_<county_code>); its members read
--                      marts rows of their county's hospitals only (row-level security).
--
-- County roles are registered in audit.county_role and created by audit.create_county_role().
-- Which hospital belongs to which county is the snapshot audit.hospital_county, refreshed by
-- audit.apply_marts_security() from the published dim_hospital (or the latest hospital reference).

do $$
declare
    r text;
begin
    foreach r in array array['yibao_loader', 'yibao_transformer', 'bi_reader', 'yibao_county'] loop
        if not exists (select 1 from pg_roles where rolname = r) then
            execute format('create role %I nologin', r);
        end if;
    end loop;
end
$$;

comment on role yibao_loader is '装载: 只读写 raw 层';
comment on role yibao_transformer is '转换 (dbt) 与发布: 读 raw, 写 staging/intermediate/seeds/marts_build';
comment on role bi_reader is 'BI 只读: 仅 marts';
comment on role yibao_county is '区县医保分局角色的上级组: 仅本区县医院的 marts 行';

-- dbt's schemas and the published / build pair. Owned by the transformer so that dbt can drop
-- what any transformer member built, and publish can rename marts_build <-> marts.
create schema if not exists staging;
create schema if not exists intermediate;
create schema if not exists seeds;
create schema if not exists marts;
create schema if not exists marts_build;
-- Helpers that row-level security policies call (readable by the reader roles, holds no data).
create schema if not exists rls;

do $$
declare
    s text;
begin
    foreach s in array array['staging', 'intermediate', 'seeds', 'marts', 'marts_build'] loop
        execute format('alter schema %I owner to yibao_transformer', s);
        execute format('revoke all on schema %I from public', s);
    end loop;
    -- publish renames schemas: ALTER SCHEMA ... RENAME needs CREATE on the database
    execute format('grant create on database %I to yibao_transformer', current_database());
    -- only members of the warehouse's roles (and the owner / superusers) connect to it
    execute format('revoke connect, temporary on database %I from public', current_database());
    execute format('grant connect, temporary on database %I to yibao_loader, yibao_transformer, bi_reader, yibao_county',
                   current_database());
end
$$;

revoke all on schema raw, audit, rls from public;
grant usage on schema raw to yibao_loader, yibao_transformer;
grant usage on schema audit to yibao_loader, yibao_transformer;
grant create on schema audit to yibao_transformer;
grant usage on schema rls to yibao_transformer, yibao_county;

-- Readers never see the build schema (apply_marts_security also revokes it after each swap).
revoke all on schema marts_build from bi_reader, yibao_county;

-- County roles ---------------------------------------------------------------------------------
create table if not exists audit.county_role (
    role_name   name primary key,       -- a NOLOGIN role, member of yibao_county
    county_code text not null,          -- 6-digit administrative division code (行政区划代码)
    county_name text,
    created_at  timestamptz not null default now()
);
comment on table audit.county_role is '区县角色与区县代码的对应 (行级安全用)';

-- Hospital -> county, as published; refreshed by audit.apply_marts_security().
create table if not exists audit.hospital_county (
    hospital_code text primary key,
    county_code   text not null,
    refreshed_at  timestamptz not null default now()
);
create index if not exists hospital_county_county_idx on audit.hospital_county (county_code);
comment on table audit.hospital_county is '医院所属区县快照 (行级安全用), 每次发布刷新';

-- One row per application of the marts security (nightly, at publish).
create table if not exists audit.marts_security_log (
    applied_at    timestamptz not null default now(),
    schema_name   text        not null,
    objects       integer     not null,
    restricted    integer     not null,     -- objects whose rows county roles see only in part
    hospitals     integer     not null,     -- rows in audit.hospital_county after the refresh
    seconds       numeric(10, 3)
);

create or replace function audit.create_county_role(p_county_code text, p_role_name name default null,
                                                    p_county_name text default null)
returns name
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
-- Create (if missing) the NOLOGIN role of a county bureau, make it a member of yibao_county and
-- register it in audit.county_role. Returns the role name (default county_<county_code>).
-- Needs CREATEROLE: run it as the bootstrap role (infra/bootstrap_roles.py does).
declare
    v_role name := coalesce(p_role_name, ('county_' || p_county_code)::name);
begin
    if p_county_code !~ '^[0-9]{6}$' then
        raise exception 'county code % is not a 6-digit administrative division code', p_county_code;
    end if;
    if not exists (select 1 from pg_roles where rolname = v_role) then
        execute format('create role %I nologin', v_role);
    end if;
    execute format('grant yibao_county to %I', v_role);
    execute format('comment on role %I is %L', v_role, '区县医保分局 ' || p_county_code || ': 仅本区县医院的 marts 行');
    insert into audit.county_role (role_name, county_code, county_name)
    values (v_role, p_county_code, p_county_name)
    on conflict (role_name) do update
        set county_code = excluded.county_code,
            county_name = coalesce(excluded.county_name, audit.county_role.county_name);
    return v_role;
end
$$;
revoke all on function audit.create_county_role(text, name, text) from public;
