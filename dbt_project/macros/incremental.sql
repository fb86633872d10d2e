{#-
Incremental bookkeeping shared by the incremental models.

Every incremental row carries three lineage columns:
  _through_load_id  the greatest raw.load_ledger load_id that existed when the row was written
  _through_as_of    the as-of date of that build
  _batch_at         now() of the transaction that wrote the row (monotonic across builds)

A model that reads raw data (through staging) re-processes the records whose latest version is
newer than what the target holds: load_id > max(_through_load_id) (late or re-sent files) or
business_date > max(_through_as_of) (rows loaded ahead of an earlier as-of date). A model that
reads another incremental model re-processes the upstream rows with _batch_at > max(_batch_at).
Both watermarks come from the target itself, so a target that lags (the marts_build schema,
swapped with marts on publish) catches up on everything newer than what it holds.
-#}

{#- Watermark of the existing target, or none when the model builds from scratch.
    ledger: ref('stg_load_ledger') for a model with _through_load_id (passed in so that the
    dependency is visible at parse time); none for a model that only follows other models. -#}
{% macro incremental_watermark(ledger=none) -%}
    {%- if not (execute and is_incremental()) -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set query -%}
        select
            {% if ledger is not none %}coalesce(max(_through_load_id), -1){% else %}-1{% endif %} as load_id,
            coalesce(max(_through_as_of), date '0001-01-01')::text as as_of,
            coalesce(max(_batch_at), '-infinity'::timestamptz)::text as batch_at
        from {{ this }}
    {%- endset -%}
    {%- set columns = adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
    {%- if '_batch_at' not in columns -%}
        {#- a table written by an earlier, non-incremental version of the model (an upgrade) -#}
        {{ exceptions.raise_compiler_error(
            this ~ " has no incremental lineage columns (written by a non-incremental version of the model)"
            ~ "; rebuild it with --full-refresh") }}
    {%- endif -%}
    {%- set row = run_query(query).rows[0] -%}
    {%- set wm = {'load_id': row[0] | int, 'as_of': row[1], 'batch_at': row[2], 'min_load_id': none} -%}
    {%- if wm.as_of > as_of_date_text() -%}
        {{ exceptions.raise_compiler_error(
            this ~ " was built through " ~ wm.as_of ~ ", later than as_of_date " ~ as_of_date_text()
            ~ ": an incremental build cannot go back in time; rebuild it with --full-refresh") }}
    {%- endif -%}
    {%- if ledger is not none -%}
        {#- The smallest load_id that can hold a row newer than the target: lets the raw scans
            use the BRIN index on load_id instead of reading every version ever loaded. -#}
        {%- set query -%}
            select coalesce(min(load_id), {{ wm.load_id + 1 }})
            from {{ ledger }}
            where load_id > {{ wm.load_id }}
               or (business_date > date '{{ wm.as_of }}' and business_date <= {{ as_of_date() }})
        {%- endset -%}
        {%- do wm.update({'min_load_id': run_query(query).rows[0][0] | int}) -%}
    {%- endif -%}
    {{- return(wm) -}}
{%- endmacro %}

{#- Predicate on a staging model of an extract (columns load_id, business_date): the latest
    versions the target has not seen yet. -#}
{% macro loaded_since(wm, alias=none) -%}
    {%- set p = (alias ~ '.') if alias else '' -%}
    ({{ p }}load_id >= {{ wm.min_load_id }}
        and ({{ p }}load_id > {{ wm.load_id }} or {{ p }}business_date > date '{{ wm.as_of }}'))
{%- endmacro %}

{#- Lineage columns written on every incremental row. -#}
{% macro incremental_lineage_columns(ledger) -%}
    (select coalesce(max(load_id), 0) from {{ ledger }})::bigint as _through_load_id,
    {{ as_of_date() }} as _through_as_of,
    now() as _batch_at
{%- endmacro %}

{#- True when reference rows of the given staging models were loaded after the watermark. -#}
{% macro reference_changed_since(wm, relations) -%}
    {%- if wm is none -%}
        {{- return(true) -}}
    {%- endif -%}
    {%- set parts = [] -%}
    {%- for rel in relations -%}
        {%- do parts.append("(select coalesce(max(load_id), -1) from " ~ rel ~ ") > " ~ wm.load_id) -%}
    {%- endfor -%}
    {%- set result = run_query("select " ~ (parts | join(" or "))).rows[0][0] -%}
    {{- return(result) -}}
{%- endmacro %}
