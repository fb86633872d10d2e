-- Access to the published marts: grants and row-level security, (re)applied at every publish.
--
-- dbt recreates the mart tables every night and publish swaps schemas, so grants and policies
-- cannot be set once: audit.apply_marts_security(schema) sets them on whatever the schema holds.
-- Publish calls it inside the swap transaction:  select audit.apply_marts_security('marts');

-- Hospitals a role may see: those of every county whose role it has the privileges of.
-- SECURITY DEFINER because the mapping tables are not readable by county roles; the role to
-- resolve is passed in (current_user, evaluated by the caller) and must be one the session's
-- user is a member of, so nobody can list another county's hospitals.
create or replace function rls.visible_hospital_codes(p_role name)
returns text[]
language sql
stable
parallel restricted   -- evaluated once per query (InitPlan) in the leader; the scan stays parallel
security definer
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(array_agg(distinct hc.hospital_code), '{}'::text[])
    from audit.county_role cr
    join pg_catalog.pg_roles r on r.rolname = cr.role_name
    join audit.hospital_county hc on hc.county_code = cr.county_code
    where pg_catalog.pg_has_role(session_user, p_role, 'MEMBER')
      and pg_catalog.pg_has_role(p_role, r.oid, 'USAGE')
$$;

create or replace function rls.visible_county_codes(p_role name)
returns text[]
language sql
stable
parallel restricted   -- evaluated once per query (InitPlan) in the leader; the scan stays parallel
security definer
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(array_agg(distinct cr.county_code), '{}'::text[])
    from audit.county_role cr
    join pg_catalog.pg_roles r on r.rolname = cr.role_name
    where pg_catalog.pg_has_role(session_user, p_role, 'MEMBER')
      and pg_catalog.pg_has_role(p_role, r.oid, 'USAGE')
$$;

revoke all on function rls.visible_hospital_codes(name), rls.visible_county_codes(name) from public;
grant execute on function rls.visible_hospital_codes(name), rls.visible_county_codes(name)
    to yibao_county, yibao_transformer;


-- Refresh audit.hospital_county from <schema>.dim_hospital when it has hospital_code and
-- county_code, else from the latest load of raw.ref_hospitals. Returns the number of hospitals.
create or replace function audit.refresh_hospital_county(schema_name text)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    n integer;
begin
    delete from audit.hospital_county;
    if (select count(*) from pg_catalog.pg_attribute a
        where a.attrelid = to_regclass(format('%I.dim_hospital', schema_name))
          and a.attname in ('hospital_code', 'county_code') and not a.attisdropped) = 2 then
        execute format(
            'insert into audit.hospital_county (hospital_code, county_code)
             select distinct on (hospital_code) hospital_code, county_code
             from %I.dim_hospital
             where hospital_code is not null and county_code is not null
             order by hospital_code', schema_name);
    elsif to_regclass('raw.ref_hospitals') is not null then
        insert into audit.hospital_county (hospital_code, county_code)
        select distinct on (h.hospital_code) h.hospital_code, h.county_code
        from raw.ref_hospitals h
        where h.load_id = (select max(load_id) from raw.ref_hospitals)
          and h.hospital_code is not null and h.county_code is not null
        order by h.hospital_code, h.source_row desc;
    end if;
    get diagnostics n = row_count;
    return n;
end
$$;


create or replace function audit.apply_marts_security(schema_name text)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
-- Contract (see docs/deployment.md "Access control"):
--   for every table, partitioned table, view, materialized view and foreign table in schema_name:
--   * REVOKE ALL from PUBLIC; GRANT SELECT to bi_reader and yibao_county (county roles);
--   * tables: ENABLE + FORCE ROW LEVEL SECURITY (FORCE: the owner, i.e. the transformer, is
--     subject to the policies too) and three policies, replaced on every call:
--       yibao_transformer_all  FOR ALL    TO yibao_transformer USING (true)  (dbt, publish, checks)
--       yibao_bi_reader_all    FOR SELECT TO bi_reader         USING (true)
--       yibao_county_rows      FOR SELECT TO yibao_county      USING
--           hospital_code = any(visible hospitals)   if the table has hospital_code,
--           else county_code = any(visible counties) if it has county_code,
--           else true                                (e.g. dim_date: not per hospital);
--   * views: security_invoker = true, so the invoker's grants and row-level security apply;
--   * materialized views and foreign tables cannot carry row-level security: those with a
--     hospital_code or county_code column are granted to bi_reader only (a WARNING is raised);
--   * GRANT USAGE on the schema to the readers; REVOKE it on marts_build (never readable).
--   Every table and partitioned table is locked (ACCESS EXCLUSIVE) before
--   anything changes, so an autovacuum in the way is cancelled instead of deadlocking the publish.
--   Also refreshes audit.hospital_county (see audit.refresh_hospital_county) and logs a row in
--   audit.marts_security_log. Runs as the caller (the transformer owns the mart tables).
--   Returns the number of objects secured. Idempotent; superusers and BYPASSRLS roles are, as
--   always in PostgreSQL, not subject to row-level security.
declare
    started   timestamptz := clock_timestamp();
    obj       record;
    pol       record;
    rel       text;
    county_using text;
    n         integer := 0;
    n_restricted integer := 0;
    n_hospitals  integer;
begin
    if not exists (select 1 from pg_catalog.pg_namespace where nspname = schema_name) then
        raise exception 'apply_marts_security: schema % does not exist', schema_name;
    end if;
    -- Lock every table first, before this transaction changes any of their catalog rows. An
    -- autovacuum (analyze) of a freshly built table holds a lock that ALTER TABLE below waits for,
    -- and its last step (an in-place update of the table's pg_class row) would wait for this
    -- transaction's GRANT on that row: a cycle, and PostgreSQL aborts the publish. Waiting here,
    -- before any such change, there is no cycle, and an autovacuum in the way is cancelled after
    -- deadlock_timeout. Only tables: locking a view locks the tables it reads, a materialized view
    -- cannot be locked, and neither is altered below.
    select string_agg(format('%I.%I', schema_name, c.relname), ', ' order by c.relname) into rel
    from pg_catalog.pg_class c
    join pg_catalog.pg_namespace ns on ns.oid = c.relnamespace
    where ns.nspname = schema_name and c.relkind in ('r', 'p');
    if rel is not null then
        execute 'lock table ' || rel || ' in access exclusive mode';
    end if;
    n_hospitals := audit.refresh_hospital_county(schema_name);

    execute format('grant usage on schema %I to bi_reader, yibao_county', schema_name);
    if schema_name <> 'marts_build' and exists (select 1 from pg_catalog.pg_namespace where nspname = 'marts_build') then
        execute 'revoke all on schema marts_build from bi_reader, yibao_county';
    end if;

    for obj in
        select c.oid, c.relname, c.relkind,
               bool_or(a.attname = 'hospital_code') as has_hospital,
               bool_or(a.attname = 'county_code') as has_county
        from pg_catalog.pg_class c
        join pg_catalog.pg_namespace ns on ns.oid = c.relnamespace
        left join pg_catalog.pg_attribute a
               on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
              and a.attname in ('hospital_code', 'county_code')
        where ns.nspname = schema_name and c.relkind in ('r', 'p', 'v', 'm', 'f')
        group by c.oid, c.relname, c.relkind
        order by c.relname
    loop
        rel := format('%I.%I', schema_name, obj.relname);
        n := n + 1;
        execute format('revoke all on %s from public', rel);
        if obj.relkind in ('r', 'p') then
            execute format('alter table %s enable row level security, force row level security', rel);
            for pol in select polname from pg_catalog.pg_policy where polrelid = obj.oid and polname like 'yibao\_%' loop
                execute format('drop policy %I on %s', pol.polname, rel);
            end loop;
            if coalesce(obj.has_hospital, false) then
                county_using := 'hospital_code = any ((select rls.visible_hospital_codes(current_user))::text[])';
                n_restricted := n_restricted + 1;
            elsif coalesce(obj.has_county, false) then
                county_using := 'county_code = any ((select rls.visible_county_codes(current_user))::text[])';
                n_restricted := n_restricted + 1;
            else
                county_using := 'true';
            end if;
            execute format('create policy yibao_transformer_all on %s as permissive for all to yibao_transformer using (true) with check (true)', rel);
            execute format('create policy yibao_bi_reader_all on %s as permissive for select to bi_reader using (true)', rel);
            execute format('create policy yibao_county_rows on %s as permissive for select to yibao_county using (%s)', rel, county_using);
            execute format('grant select on %s to bi_reader, yibao_county', rel);
        elsif obj.relkind = 'v' then
            execute format('alter view %s set (security_invoker = true)', rel);
            execute format('grant select on %s to bi_reader, yibao_county', rel);
        elsif coalesce(obj.has_hospital, false) or coalesce(obj.has_county, false) then
            -- materialized view / foreign table: no row-level security possible
            execute format('grant select on %s to bi_reader', rel);
            execute format('revoke all on %s from yibao_county', rel);
            raise warning 'apply_marts_security: % cannot carry row-level security; granted to bi_reader only', rel;
        else
            execute format('grant select on %s to bi_reader, yibao_county', rel);
        end if;
    end loop;

    insert into audit.marts_security_log (schema_name, objects, restricted, hospitals, seconds)
    values (schema_name, n, n_restricted, n_hospitals,
            round(extract(epoch from clock_timestamp() - started)::numeric, 3));
    return n;
end
$$;
revoke all on function audit.apply_marts_security(text), audit.refresh_hospital_county(text) from public;
grant execute on function audit.apply_marts_security(text), audit.refresh_hospital_county(text) to yibao_transformer;
