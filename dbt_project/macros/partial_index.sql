{#- A partial index on `columns` of this model's table, `where predicate` (dbt's `indexes` config
    has no WHERE), for a post-hook. Created when the table has no partial index on exactly these
    columns; a full index on them (an earlier version's) is dropped. Unnamed, so that PostgreSQL
    picks a free name: in a full refresh the old table, renamed, still holds its index until the
    end of the build.

    Why partial: a B-tree keyed by patient receives each night's rows at random leaf pages, so a
    night on a big table dirties (and logs in full after a checkpoint) about one leaf page per
    row. On a 2.8M-settlement year the full (hospital_code, patient_key) index of
    int_claims_with_deductions was half of the night's insert (3.7 s of which 2.0 s, 25k of 29k
    full-page WAL images) for its one reader, R22, which only reads inpatient stays. The
    (patient_key, rule_id) indexes of int_audit_rule_matches and fct_audit_findings are read by
    the window rules only (docs/scale-out.md §6 and §7). -#}
{% macro partial_index(columns, predicate) -%}
{%- set cols = columns | join(', ') -%}
do $partial_index$
declare
    existing record;
    found boolean := false;
begin
    for existing in
        select indexrelid::regclass as name, indpred is not null as is_partial
        from pg_index
        where indrelid = '{{ this }}'::regclass
          and pg_get_indexdef(indexrelid) like '%USING btree ({{ cols }})%'
    loop
        if existing.is_partial then
            found := true;
        else
            execute format('drop index %s', existing.name);
        end if;
    end loop;
    if not found then
        create index on {{ this }} ({{ cols }}) where {{ predicate }};
    end if;
end
$partial_index$
{%- endmacro %}
