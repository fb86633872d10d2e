{#- Indexes that dbt's `indexes` config cannot declare or add to an existing table: post-hooks,
    run every night, that cost one catalog query when there is nothing to do. -#}

{#- A partial index on `columns` of this model's table, `where predicate` (dbt's `indexes` config
    has no WHERE), for a post-hook, run every night. The index's comment records the predicate it
    was created with ('yibao partial_index: <predicate>', set right after `create index`). Of the
    table's indexes on exactly these columns, a partial one whose comment records the current
    predicate is kept (an unchanged night costs one catalog query, no rebuild); every other one is
    dropped: a full index (an earlier version's), a partial one whose recorded predicate differs
    (e.g. audit_window_rule_types() gained a rule type) or is missing (created before the predicate
    was recorded: rebuilt once, on the first night after the upgrade), a duplicate. Then, if none
    was kept, the index is created. Exactly one index on these columns is left, and queries with
    the current predicate can use it. Unnamed, so that PostgreSQL picks a free name: in a full
    refresh the old table, renamed, still holds its index until the end of the build; the name is
    read back from pg_index to set the comment.
    `include`: non-key columns stored in the index (`create index … include (…)`), so that a query
    reading only those columns is an index-only scan; recorded in the comment with the predicate
    (a changed list rebuilds the index once). `replaces`: the key columns of
    an index an earlier version of the model had instead, dropped when found.
    Do not lead the key with a column the predicate fixes (`rule_type = 'x'`): the planner drops
    the implied condition from the index scan, which then reads the whole index once per probe
    (R21's (rule_type, hospital_code, charge_date): 54k pages for 16 hospital-months,
    docs/scale-out.md §7.15).

    Why partial: a B-tree keyed by patient receives each night's rows at random leaf pages, so a
    night on a big table dirties (and logs in full after a checkpoint) about one leaf page per
    row. On a 2.8M-settlement year the full (hospital_code, patient_key) index of
    int_claims_with_deductions was half of the night's insert (3.7 s of which 2.0 s, 25k of 29k
    full-page WAL images) for its one reader, R22, which only reads inpatient stays. The patient x
    rule indexes of int_audit_rule_matches (patient_key, rule_id, charge_date) and of
    fct_audit_findings (patient_key, rule_id) are read by the window rules only
    (docs/scale-out.md §6 and §7). -#}
{% macro partial_index(columns, predicate, include=[], replaces=none) -%}
{%- set cols = columns | join(', ') -%}
{%- set included = (' include (' ~ (include | join(', ')) ~ ')') if include else '' -%}
{%- set recorded = 'yibao partial_index: ' ~ predicate ~ included -%}
do $partial_index$
declare
    recorded constant text := '{{ recorded | replace("'", "''") }}';
    existing record;
    kept boolean := false;
    created regclass;
begin
    {%- if replaces %}
    {{ _drop_indexes_on(replaces, 'existing') }}
    {%- endif %}
    for existing in
        select indexrelid::regclass as name, indpred is not null as is_partial,
               obj_description(indexrelid, 'pg_class') as comment
        from pg_index
        where {{ _btree_index_on(cols) }}
        order by indexrelid
    loop
        if existing.is_partial and existing.comment is not distinct from recorded and not kept then
            kept := true;
        else
            execute format('drop index %s', existing.name);
        end if;
    end loop;
    if not kept then
        create index on {{ this }} ({{ cols }}){{ included }} where {{ predicate }};
        select indexrelid::regclass into strict created
        from pg_index
        where {{ _btree_index_on(cols) }}
          and indpred is not null;
        execute format('comment on index %s is %L', created, recorded);
    end if;
end
$partial_index$
{%- endmacro %}

{#- Post-hook: a (full) index on `columns` of this model's table, created when the table has none
    on exactly these columns (dbt's `indexes` config creates its indexes only with the table, so an
    existing table, built before the index was added, gets it here once; an unchanged night costs
    one catalog query). -#}
{% macro ensure_index(columns) -%}
{%- set cols = columns | join(', ') -%}
do $ensure_index$
begin
    if not exists (select 1 from pg_index where {{ _btree_index_on(cols) }} and indpred is null) then
        create index on {{ this }} ({{ cols }});
    end if;
end
$ensure_index$
{%- endmacro %}

{#- Post-hook: drop every B-tree index of this model's table on exactly `columns`, partial or not:
    one an earlier version of the model had and nothing reads any more, to which every night's
    insert still wrote a row per new row (a random leaf of a history-sized index). One catalog
    query when there is none. -#}
{% macro drop_index_on(columns) -%}
do $drop_index_on$
declare
    earlier record;
begin
    {{ _drop_indexes_on(columns, 'earlier') }}
end
$drop_index_on$
{%- endmacro %}

{#- PL/pgSQL (inside a do block declaring the record `var`): drop every index of this model's
    table on exactly `columns` (an earlier version's index; partial_index's
    `replaces`). -#}
{% macro _drop_indexes_on(columns, var) -%}
    for {{ var }} in select indexrelid::regclass as name from pg_index where {{ _btree_index_on(columns | join(', ')) }} loop
        execute format('drop index %s', {{ var }}.name);
    end loop;
{%- endmacro %}

{#- pg_index rows of this model's table whose B-tree is on exactly `cols` (in this order), partial
    or not: pg_get_indexdef ends the key column list with ')'; a covering index adds
    ' INCLUDE (…)', a partial one ' WHERE …'. -#}
{% macro _btree_index_on(cols) -%}
indrelid = '{{ this }}'::regclass and pg_get_indexdef(indexrelid) like '%USING btree ({{ cols }})%'
{%- endmacro %}
