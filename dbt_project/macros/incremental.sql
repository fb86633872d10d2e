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

Where the watermark is kept: every build of an incremental model records its lineage (load_id,
as_of, batch_at) in the comment of the target's _batch_at column (a post-hook of every model,
dbt_project.yml, after dbt's persist_docs, in the build's own transaction), so reading it is O(1)
whatever the size of the target, and a build that wrote no rows still advances it. The comment
lives on the relation: it is renamed with the marts_build / marts schemas on publish, dropped with
the table on a full refresh, rolled back with a failed build. load_id is the ledger's greatest
load_id read by a pre-hook at the start of the build's transaction (before the model's query
reads staging, so everything through it was visible to that query). A target without the
comment (written before it was kept) falls back once to max() of its lineage columns.
-#}

{#- Pre-hook of every model (dbt_project.yml): the ledger's greatest load_id at the start of an
    incremental build's transaction, for record_incremental_watermark. -#}
{% macro begin_incremental_watermark() -%}
    {%- if execute and config.get('materialized') == 'incremental' -%}
        select set_config('yibao.watermark_load_id',
            (select coalesce(max(load_id), 0) from {{ source('raw', 'load_ledger') }})::text, true)
    {%- endif -%}
{%- endmacro %}

{#- Post-hook of every model (dbt_project.yml): the build's watermark, kept in the comment of the
    target's _batch_at column (after its documented description, if any). A table that has no
    statistics yet (a first build or a full refresh: `create table as` leaves none, and autovacuum
    analyses a new 29 M-row table minutes later) is analysed here, so that the models after it in
    the same build, and the nights before autovacuum gets to it, plan with its real size. Without
    them the night after the 30 M-claim year's catch-up checked int_evaluation_settlements'
    night rows with a sequential scan of the whole table (3.5-4.4 s instead of 20 ms,
    docs/scale-out.md §6). Once it has statistics this is one catalog look-up. -#}
{% macro record_incremental_watermark() -%}
    {%- if execute and config.get('materialized') == 'incremental' -%}
        {%- set doc = model.columns.get('_batch_at', {}).get('description', '') if model.columns else '' -%}
        {%- set doc = (doc | default('', true) | trim) -%}
        do $yibao_watermark$ begin
            execute format('comment on column %s._batch_at is %L', {{ dbt.string_literal(this | string) }},
                {{ dbt.string_literal((doc ~ ' | ') if doc else '') }} || '增量水位 incremental watermark: '
                || json_build_object(
                    'load_id', coalesce(nullif(current_setting('yibao.watermark_load_id', true), ''), '-1')::bigint,
                    'as_of', {{ as_of_date() }},
                    'batch_at', now())::text);
            if not exists (
                select 1 from pg_stats
                where schemaname = {{ dbt.string_literal(this.schema) }}
                  and tablename = {{ dbt.string_literal(this.identifier) }}
                  and attname <> '_batch_at'
            ) then
                execute format('analyze %s', {{ dbt.string_literal(this | string) }});
            end if;
        end $yibao_watermark$
    {%- endif -%}
{%- endmacro %}

{#- The watermark recorded by the last build of relation, or none (no comment yet). -#}
{% macro recorded_incremental_watermark(relation) -%}
    {%- set query -%}
        select (w->>'load_id')::bigint, (w->>'as_of'), (w->>'batch_at')::timestamptz::text
        from (
            select substring(col_description(c.oid, a.attnum)
                             from '增量水位 incremental watermark: (\{.*\})$')::jsonb as w
            from pg_class c
            join pg_namespace n on n.oid = c.relnamespace
            join pg_attribute a on a.attrelid = c.oid and a.attname = '_batch_at' and not a.attisdropped
            where n.nspname = {{ dbt.string_literal(relation.schema) }}
              and c.relname = {{ dbt.string_literal(relation.identifier) }}
        ) as recorded
        where w is not null
    {%- endset -%}
    {%- set rows = run_query(query).rows -%}
    {{- return(rows[0] if rows | length > 0 else none) -}}
{%- endmacro %}

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
    {%- set row = recorded_incremental_watermark(this) -%}
    {%- if row is none -%}
        {#- written before the watermark was recorded: read it from the rows once -#}
        {%- set row = run_query(query).rows[0] -%}
    {%- endif -%}
    {%- set wm = {'load_id': row[0] | int, 'as_of': row[1], 'batch_at': row[2], 'min_load_id': none} -%}
    {%- if wm.as_of > as_of_date_text() -%}
        {{ exceptions.raise_compiler_error(
            this ~ " was built through " ~ wm.as_of ~ ", later than as_of_date " ~ as_of_date_text()
            ~ ": an incremental build cannot go back in time; rebuild it with --full-refresh") }}
    {%- endif -%}
    {%- if ledger is not none -%}
        {#- The smallest load_id that can hold a row newer than the target: lets the raw scans
            use the BRIN index on load_id instead of reading every version ever loaded. Two
            minimums, each through its index (the ledger's primary key, its business_date
            index): with `or` the planner walked the primary key from the start of the ledger to
            the night's first file, every file of the history (13 ms at 110k files, in ~30 calls
            a night). Read from the ledger table, not the staging view, which hid the first
            minimum from PostgreSQL's min/max optimisation (the night's ~300 files read, 17 ms,
            instead of one entry); the second is kept from it by `offset 0` (the files of the
            dates, through the business_date index: ~5 ms; as a min/max the planner walks the
            primary key from the ledger's first file, 70-110 ms on a year's 110k files). -#}
        {%- set query -%}
            select coalesce(least(
                (select min(load_id) from {{ source('raw', 'load_ledger') }} where load_id > {{ wm.load_id }}),
                (select min(load_id) from (
                     select load_id from {{ source('raw', 'load_ledger') }}
                     where business_date > date '{{ wm.as_of }}' and business_date <= {{ as_of_date() }}
                     offset 0) as dated)
            ), {{ wm.load_id + 1 }})
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

{#- Lineage columns written on every incremental row. ledger (ref('stg_load_ledger')) names the
    dependency; the greatest load_id is read from the ledger table itself, where PostgreSQL takes it
    from the end of the primary key. Through the staging view it read the whole key instead (its
    min/max optimisation does not see through the view): 30-80 ms per incremental model on a year's
    110k files, in ~20 models a night, growing with every night kept (docs/scale-out.md §6). -#}
{% macro incremental_lineage_columns(ledger) -%}
    (select coalesce(max(load_id), 0) from {{ source('raw', 'load_ledger') }})::bigint as _through_load_id,
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

{#- Post-hook of an incremental model whose readers select the night's rows by `_batch_at` (the
    planner must know how few they are: with stale statistics int_audit_readmission went from 0.2
    to 20.5 s, docs/scale-out.md §6). Only its `_batch_at` column is analysed, from a 3,000-row
    sample (statistics target 10); a table without statistics (just built, or rebuilt by a full
    refresh) is analysed whole by record_incremental_watermark (the project's post-hook, which dbt
    runs before the model's own; after it, the check there finds no statistics but `_batch_at`'s): the night changes the other columns' distributions
    by a fraction of a percent, and autovacuum analyses the whole table again after 10 % of its rows
    changed. On the 29 M-settlement year: 0.22 s instead of 3.8-4.8 s for the whole table (a
    30,000-row sample of an 8 GB table), the night's rows estimated at 106,345 for 91,808. -#}
{% macro analyze_night_rows() -%}
do $analyze_night_rows$
begin
    if (select attstattarget from pg_attribute where attrelid = '{{ this }}'::regclass and attname = '_batch_at')
       is distinct from 10 then
        alter table {{ this }} alter column _batch_at set statistics 10;
    end if;
    analyze {{ this }} (_batch_at);
end
$analyze_night_rows$
{%- endmacro %}

{#- Post-hook of a mart whose data tests read its last build only (config `where: "_batch_at =
    (select max(_batch_at) from ...)"`). The planner estimates `_batch_at = <a value known only when
    the query runs>` as the table's rows over the number of distinct `_batch_at` it has seen. After a
    catch-up (a bureau's first year, a long outage) the statistics hold one batch for the whole
    table, so every such test read fct_usage_pricing whole (125 ms and 25.7k pages each, six tests,
    on the 30 M-claim year), and autovacuum analyses it again only after 10 % of its rows changed
    (a month of nights). Telling PostgreSQL that `_batch_at` has `batches` distinct values, the
    nights of a year, makes the last build an index scan of the `_batch_at` index; a comparison
    with a literal (`_batch_at > '...'`, the models' reads) uses the histogram and is unchanged.
    Set once per table (and its `_batch_at` analysed then, for the setting to take effect). -#}
{% macro last_batch_statistics(batches=365) -%}
do $last_batch_statistics$
begin
    if not exists (
        select 1 from pg_attribute
        where attrelid = '{{ this }}'::regclass and attname = '_batch_at'
          and 'n_distinct={{ batches }}' = any(coalesce(attoptions, '{}'))
    ) then
        alter table {{ this }} alter column _batch_at set (n_distinct = {{ batches }});
        analyze {{ this }} (_batch_at);
    end if;
end
$last_batch_statistics$
{%- endmacro %}

{#- Incremental strategy replace_stored (config incremental_strategy='replace_stored', with
    unique_key): delete+insert that deletes only the keys of the new rows marked
    _replaces_stored, the rows the model found a stored version of. dbt's delete+insert probes the
    target's unique index once per new row, and a night's rows are ~98 % new settlements with
    nothing stored: 0.6 s of probes that delete nothing on a 3 M-settlement year, per table
    (docs/scale-out.md). The model must set _replaces_stored from the same probe it reads the
    stored row with; a row marked false whose key is stored fails the insert on the target's
    unique index (never a duplicate), and a row marked true with nothing stored costs one probe. -#}
{% macro get_incremental_replace_stored_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set unique_key = arg_dict['unique_key'] -%}
    {%- set names = arg_dict['dest_columns'] | map(attribute='name') | list -%}
    {%- if not unique_key or '_replaces_stored' not in names -%}
        {{ exceptions.raise_compiler_error(
            "incremental_strategy 'replace_stored' needs a unique_key and a _replaces_stored column ("
            ~ target ~ ")") }}
    {%- endif -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    delete from {{ target }} as stored
    where ({{ keys | join(', ') }}) in (
        select {{ keys | join(', ') }}
        from {{ source }} as night
        where night._replaces_stored
    );

    {{ get_insert_into_sql(target, source, arg_dict['dest_columns']) }}
{%- endmacro %}

{#- Incremental strategy delete_insert_probed (config incremental_strategy='delete_insert_probed',
    with unique_key): dbt's delete+insert, with the delete of the stored versions read through the
    target's index when the night is small against the table. dbt's delete
    (`where (key) in (select distinct key from <night>)`) is planned as a semi-join, and PostgreSQL
    hashes the night's keys against a sequential scan of the whole target until, by its estimate,
    the scan costs more than the probes, at tens of millions of rows: each night read a mart that
    grows with the history (fct_settlement_deduction: 1.27 M rows, 19k pages, to replace 45.8k
    settlements, docs/scale-out.md §7.17). Here, when the night holds at most `fraction` of the target's rows
    (pg_class.reltuples: a first night, never analysed, counts as large), each distinct key of the
    night is probed (a lateral `offset 0` subquery: never pulled up into a hash join) and the rows
    found are deleted by ctid (a TID scan); otherwise the delete is dbt's. The target needs an
    index leading with unique_key (every model that uses it has it unique). Same rows deleted as
    dbt's delete: a key with a null never matches in either. -#}
{% macro get_incremental_delete_insert_probed_sql(arg_dict, fraction=0.05) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set unique_key = arg_dict['unique_key'] -%}
    {%- if not unique_key or arg_dict['incremental_predicates'] -%}
        {{ exceptions.raise_compiler_error(
            "incremental_strategy 'delete_insert_probed' needs a unique_key and takes no incremental_predicates ("
            ~ target ~ ")") }}
    {%- endif -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    {%- set sizes = run_query(
        "select night, stored, stored > 0 and night <= " ~ fraction ~ " * stored from (select (select count(*) from "
        ~ source ~ ") as night, (select reltuples::bigint from pg_class where oid = '" ~ target ~ "'::regclass) as stored) as sizes") -%}
    {%- set night_rows, stored_rows, probe = sizes.rows[0] if execute else (none, none, false) -%}
    {%- if probe %}
    -- probed: {{ night_rows }} rows tonight, about {{ stored_rows }} stored
    {{ probed_delete(target, '(select distinct ' ~ (keys | join(', ')) ~ ' from ' ~ source ~ ')', keys) }};
    {{ get_insert_into_sql(target, source, arg_dict['dest_columns']) }}
    {%- else %}
    {{ get_delete_insert_merge_sql(target, source, unique_key, arg_dict['dest_columns'], none) }}
    {%- endif %}
{%- endmacro %}

{#- Delete from target the rows whose keys are in keys_relation (and, if given, that satisfy
    filter, on the alias `candidate`): one probe of target's index on the keys per row of
    keys_relation (a lateral `offset 0` subquery, never pulled up into a hash join against a scan of
    the whole target), the rows found deleted by ctid. keys_relation should hold distinct keys. A
    key whose last column sorts after every stored value of its prefix (the other key columns) and
    stream is not probed (stored_key_bound_join below; the index leading with the keys serves the
    bound too). -#}
{% macro probed_delete(target, keys_relation, keys, filter=none) -%}
    {%- set prefix = keys[:-1] -%}
    delete from {{ target }} as stored
    where stored.ctid = any (array(
        select found.ctid
        from {{ keys_relation }} as night
        {{ stored_key_bound_join(target, keys_relation, 'night', prefix, keys[-1]) }}
        cross join lateral (
            select candidate.ctid
            from {{ target }} as candidate
            where {% for k in keys %}candidate.{{ k }} = night.{{ k }}{{ ' and ' if not loop.last }}{% endfor %}
              {%- if filter %} and {{ filter }}{% endif %}
              and {{ below_stored_max('night.' ~ keys[-1], 'bound', keys[-1]) }}
            offset 0
        ) as found
    ))
{%- endmacro %}

{#- The probes of a night's keys into a year-sized index mostly find nothing: a HIS's serial
    numbers (settlement, visit, line ids) grow, so most of a night's keys sort after every key
    stored before in their hospital and numbering. stored_key_bound_join left-joins the night's
    keys (alias night) to their bound (alias `bound`, one catalog look-up of the column's ordering):
    stored_key_bounds selects, per distinct value in keys_relation of the prefix columns and of
    the stream of night_key (key_stream: the first three characters of a text key, which tell a
    hospital's numberings apart, e.g. outpatient MZ0…, inpatient ZY0…, planned stays ZY8…; a key
    of another type is one stream), the greatest value of column stored in relation with that
    prefix and stream: one backward probe of an index leading with the prefix and the column
    (PostgreSQL plans max() as the last entry of an index scan). below_stored_max is the gate a lateral probe adds for a key value against that bound:
    it refers to the outer row only, so PostgreSQL plans it as a one-time filter and a key above its
    stream's maximum is not looked up at all.
    Exact whatever the keys are: a value above the greatest stored value of its stream equals none
    of them (an equal value has the same first characters); a stream with nothing stored has a null
    maximum (nothing to find); a key whose bound row is missing or not bounded is probed. A stream's
    values are found as the range [stream, stream_end) of the index, stream_end the stream with its
    last character's code incremented: that range holds every value starting with the stream only
    in a byte-wise collation (the libc locales C and POSIX: key_ordering); in any other, each
    stream's bound is the greatest stored value of its whole prefix (one bound per hospital, as
    before streams). A stream whose last character is not ASCII is not bounded, nor are the
    streams of a prefix that has more than 16 in the night (keys that are not serial numbers, e.g.
    random ids: their bounds would cost as many index descents as the probes they save). -#}
{#- filter (optional): a condition on the stored rows (unqualified columns) that the probes add, so
    that the bound reads the same partial index as they do. night_key: the column of keys_relation
    whose values are probed against column (default: column). -#}
{% macro stored_key_bound_join(relation, keys_relation, night, prefix, column, filter=none, night_key=none) -%}
    {%- set ordering = key_ordering(relation, column) -%}
    left join ({{ stored_key_bounds(relation, keys_relation, prefix, column, ordering, filter, night_key) }}) as bound
        on {% for p in prefix %}bound.{{ p }} = {{ night }}.{{ p }} and {% endfor -%}
           bound.key_stream = {{ key_stream(night ~ '.' ~ (night_key or column), ordering) }}
{%- endmacro %}

{% macro stored_key_bounds(relation, keys_relation, prefix, column, ordering, filter, night_key) -%}
    select
        {%- for p in prefix %}
        night_stream.{{ p }},
        {%- endfor %}
        night_stream.key_stream,
        night_stream.bounded,
        case when night_stream.bounded then (
            select max(bound.{{ column }})
            from {{ relation }} as bound
            where true
            {%- for p in prefix %}
              and bound.{{ p }} = night_stream.{{ p }}
            {%- endfor %}
            {%- if ordering.bytewise %}
              and bound.{{ column }} >= night_stream.key_stream
              and bound.{{ column }} < night_stream.key_stream_end
            {%- endif %}
            {%- if filter %}
              and {{ filter }}
            {%- endif %}
        ) end as stored_max_{{ column }}
    from (
        select
            streams.*,
            {%- if ordering.streamed %}
            streams.key_stream_end is not null
                and count(*) over ({{ 'partition by ' ~ (prefix | join(', ')) if prefix }}) <= 16 as bounded
            {%- else %}
            true as bounded
            {%- endif %}
        from (
            select
                night_streams.*,
                case
                    when ascii(right(night_streams.key_stream, 1)) between 1 and 126
                        then left(night_streams.key_stream, -1) || chr(ascii(right(night_streams.key_stream, 1)) + 1)
                end as key_stream_end
            from (
                select distinct
                    {%- for p in prefix %}
                    night_keys.{{ p }},
                    {%- endfor %}
                    {{ key_stream('night_keys.' ~ (night_key or column), ordering) }} as key_stream
                from {{ keys_relation }} as night_keys
            ) as night_streams
        ) as streams
    ) as night_stream
{%- endmacro %}

{#- A key's stream: its first three characters if it is text (ordering: key_ordering), else one
    stream. -#}
{% macro key_stream(value, ordering) -%}
    {{ 'left(' ~ value ~ ', 3)' if ordering.streamed else "''::text" }}
{%- endmacro %}

{% macro below_stored_max(value, bound, column) -%}
    coalesce({{ value }} <= {{ bound }}.stored_max_{{ column }}, not {{ bound }}.bounded, {{ bound }}.key_stream is null)
{%- endmacro %}

{#- How relation's column orders its values: streamed, it is text (a collatable type), whose keys
    stored_key_bounds bounds per stream; bytewise, it compares byte by byte (its collation, or the
    database's default, is the libc locale C or POSIX, as C, POSIX and ucs_basic are), so that the
    values starting with a string are one range of its index. -#}
{% macro key_ordering(relation, column) -%}
    {%- if not execute -%}{{ return({'streamed': false, 'bytewise': false}) }}{%- endif -%}
    {%- set found = run_query(
        "select attribute.attcollation <> 0, case when key_collation.collprovider = 'd'"
        ~ " then key_database.datcollate in ('C', 'POSIX') and coalesce(to_jsonb(key_database) ->> 'datlocprovider', 'c') = 'c'"
        ~ " else key_collation.collprovider = 'c' and key_collation.collcollate in ('C', 'POSIX') end"
        ~ " from pg_attribute as attribute"
        ~ " left join pg_collation as key_collation on key_collation.oid = attribute.attcollation"
        ~ " cross join pg_database as key_database"
        ~ " where attribute.attrelid = to_regclass('" ~ relation ~ "') and attribute.attname = '" ~ column ~ "'"
        ~ " and key_database.datname = current_database()") -%}
    {%- if found.rows | length == 0 -%}{{ return({'streamed': false, 'bytewise': false}) }}{%- endif -%}
    {{ return({'streamed': found.rows[0][0], 'bytewise': found.rows[0][0] and found.rows[0][1]}) }}
{%- endmacro %}
