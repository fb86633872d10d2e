-- Table privileges of the group roles on everything the bootstrap created (runs last; idempotent).
-- Roles and schemas: 040_roles.sql. Marts: audit.apply_marts_security (070_marts_security.sql).

-- raw: written by the loader only, read by the transformer (dbt sources).
grant select, insert, update, delete on all tables in schema raw to yibao_loader;
grant usage, select, update on all sequences in schema raw to yibao_loader;
grant select on all tables in schema raw to yibao_transformer;
-- Tables the bootstrap role adds to raw later get the same privileges.
alter default privileges in schema raw grant select, insert, update, delete on tables to yibao_loader;
alter default privileges in schema raw grant usage, select, update on sequences to yibao_loader;
alter default privileges in schema raw grant select on tables to yibao_transformer;

-- audit: operational logs and data-quality results. The transformer writes all of it except the
-- county mapping (an administrator's decision); the loader only appends to the run log.
grant select, insert, update, delete on all tables in schema audit to yibao_transformer;
grant usage, select, update on all sequences in schema audit to yibao_transformer;
revoke insert, update, delete, truncate on audit.county_role from yibao_transformer;
alter default privileges in schema audit grant select, insert, update, delete on tables to yibao_transformer;
alter default privileges in schema audit grant usage, select, update on sequences to yibao_transformer;
do $$
begin
    if to_regclass('audit.run_log') is not null then
        grant insert on audit.run_log to yibao_loader;
    end if;
end
$$;
