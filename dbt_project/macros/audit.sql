{#- Smart audit (docs/rules.md R11-R22): helpers shared by the audit models. -#}

{#- Rank of a hospital level: 基层 1 < 一级 2 < 二级 3 < 三级 4; null when unknown. -#}
{% macro hospital_level_rank(level) -%}
    (case trim({{ level }})
        when '基层' then 1
        when '一级' then 2
        when '二级' then 3
        when '三级' then 4
    end)
{%- endmacro %}

{#- Outpatient medical categories (R14 限住院使用): 11, 12, 13, 14, 16, 41, 51. -#}
{% macro outpatient_medical_categories() -%}
    ('11', '12', '13', '14', '16', '41', '51')
{%- endmacro %}

{#- The decision of a rule that depends on the visit's effective settlement (R14, R19), true when
    the line is flagged. R14 inpatient_only: the settlement is outpatient. R19 indication: the
    settlement's principal diagnosis starts with none of the '|'-separated prefixes (an empty
    diagnosis starts with none). Used by int_audit_claim_rules (the findings) and by
    int_claims_with_deductions (the R6 base), so that both decide alike. -#}
{% macro audit_settlement_condition(rule_type, diagnosis_prefixes, medical_category, diagnosis) -%}
    (case {{ rule_type }}
        when 'inpatient_only' then coalesce({{ medical_category }} in {{ outpatient_medical_categories() }}, false)
        when 'indication' then not exists (
            select 1
            from unnest(string_to_array({{ diagnosis_prefixes }}, '|')) as allowed (prefix)
            where trim(allowed.prefix) <> ''
              and left(coalesce({{ diagnosis }}, ''), length(trim(allowed.prefix))) = trim(allowed.prefix)
        )
        else true
    end)
{%- endmacro %}

{#- The common columns of a fee-line finding, from a row of int_audit_rule_matches (alias m). -#}
{% macro audit_fee_line_finding_columns(m, flagged_quantity=none, flagged_amount=none, is_cross_hospital='false') -%}
        {{ m }}.rule_id,
        {{ m }}.rule_type,
        {{ m }}.severity,
        {{ m }}.hospital_code,
        'fee_line'::text as subject_type,
        {{ m }}.fee_line_id as subject_id,
        {{ m }}.visit_id,
        {{ m }}.patient_key,
        {{ m }}.charge_date,
        {{ m }}.item_code,
        {{ m }}.item_name,
        {{ m }}.quantity as line_quantity,
        {{ m }}.amount as line_amount,
        ({{ flagged_quantity if flagged_quantity is not none else m ~ '.quantity' }})::numeric(18, 4) as flagged_quantity,
        ({{ flagged_amount if flagged_amount is not none else m ~ '.amount' }})::numeric(18, 2) as flagged_amount,
        ({{ is_cross_hospital }})::boolean as is_cross_hospital
{%- endmacro %}

{#- An incremental target written before its model gained the given columns (an upgrade, e.g.
    int_claims_with_deductions before smart audit): ask for the one-off full refresh that
    transform.build then does by itself. -#}
{% macro require_columns_or_full_refresh(columns) -%}
    {%- if execute and is_incremental() -%}
        {%- set existing = adapter.get_columns_in_relation(this) | map(attribute='name') | list -%}
        {%- for c in columns if c not in existing -%}
            {{ exceptions.raise_compiler_error(
                this ~ " has no column " ~ c ~ " (written by an earlier version of the model)"
                ~ "; rebuild it with --full-refresh") }}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of int_audit_rule_matches (incremental builds): takes the stored matches of the lines
    re-matched tonight out of the table, and hands the model what it needs in two analysed
    temporary tables (same session):
    - pg_temp.int_audit_rule_matches__lines: the lines to re-match (the night's rows of
      stg_fee_lines with _has_other_versions, macro stg_fee_lines_since); not written when every
      line is re-matched (the rule library changed: the model reads stg_fee_lines);
    - pg_temp.int_audit_rule_matches__prior: per line whose matches were deleted, the keys of those
      matches and the keys they carried (_prior_keys).
    One statement deletes and returns the stored matches: one probe of the unique index per line
    with another version, where the delete+insert strategy probed every line of the night twice
    (the prior keys, then the delete), 98 % of them new lines with nothing stored. The model
    appends (incremental_strategy append); the pre-hook runs in the model's transaction. -#}
{% macro audit_matches_take_prior() -%}
    {%- if execute and is_incremental() -%}
        {%- set wm = incremental_watermark(ref('stg_load_ledger')) -%}
        {#- every line is re-matched when the rule library changed -#}
        {%- set every_line = reference_changed_since(wm, [ref('stg_audit_rules')]) -%}
        {%- set t = 'pg_temp.' ~ this.identifier ~ '__' -%}
        {%- if not every_line -%}
            {{ analysed_temp_table(this.identifier ~ '__lines', stg_fee_lines_since(wm)) }};
        {%- endif %}
        drop table if exists {{ t }}prior;
        create temporary table {{ this.identifier }}__prior as
        select hospital_code, fee_line_id, null::jsonb as prior_keys
        from {{ this }}
        where false;
        with deleted as (
            delete from {{ this }} as stored
            {%- if not every_line %}
            using (
                select distinct hospital_code, fee_line_id
                from {{ t }}lines
                where _has_other_versions
            ) as changed
            where stored.hospital_code = changed.hospital_code
              and stored.fee_line_id = changed.fee_line_id
            {%- endif %}
            returning
                stored.hospital_code, stored.fee_line_id, stored.rule_id, stored.rule_type,
                stored.visit_id, stored.patient_key, stored.charge_date, stored._prior_keys
        )
        insert into {{ t }}prior
        select deleted.hospital_code, deleted.fee_line_id, jsonb_agg(distinct prior_key.key)
        from deleted
        cross join lateral (
            select jsonb_build_object(
                'rule_id', deleted.rule_id, 'rule_type', deleted.rule_type,
                'visit_id', deleted.visit_id, 'patient_key', deleted.patient_key,
                'charge_date', deleted.charge_date
            ) as key
            where deleted.rule_id is not null
            union
            select value from jsonb_array_elements(deleted._prior_keys)
        ) as prior_key
        group by 1, 2;
        analyze {{ t }}prior
    {%- endif -%}
{%- endmacro %}

{#- Incremental fee-line finding models (R11-R13, R15-R18, R20). Each re-derives, from
    int_audit_rule_matches, every group of its rule (the window the rule decides over, e.g.
    patient x rule for R16) that a match written since the model's watermark touches, whether by
    its current keys or by the keys the line had before (_prior_keys): a pre-hook deletes the
    stored findings of those groups, the model appends the findings it re-derives for them.
    R16 and R20 (patient x rule) re-derive a group from the earliest date the night touches it at
    (audit_findings_delete_touched with from_date); the others read a group whole.
    everything: a reference file the decision reads changed (e.g. hospitals for R13). -#}

{% macro audit_prior_key_column(column) -%}
    {%- if column in ('hospital_code', 'fee_line_id') -%}
        matches.{{ column }}
    {%- elif column == 'charge_date' -%}
        (prior.key ->> 'charge_date')::date
    {%- else -%}
        prior.key ->> '{{ column }}'
    {%- endif -%}
{%- endmacro %}

{#- The rows of int_audit_rule_matches that name prior keys (a re-matched line's earlier matches)
    or have no visit: the predicate of that table's small partial (_batch_at, hospital_code,
    fee_line_id) index (alias '': as the post-hook writes it), and the condition, implied by the
    readers' own, that the night's prior-key reads add so that they go through it. Most of a
    night's matches are new lines with '[]': each reader expanded the jsonb of all of them, ~0.3 s
    per reader for a 1 M-line night, in ~10 readers (docs/scale-out.md §7.25). -#}
{% macro audit_prior_keys_present(alias='') -%}
    {%- set p = (alias ~ '.') if alias else '' -%}
    ({{ p }}_prior_keys <> '[]'::jsonb or {{ p }}visit_id is null)
{%- endmacro %}

{#- The from and where clauses of a read of the prior keys of the matches written since wm: one
    row per prior key (prior.key, a jsonb object), the matches aliased `alias`, through the
    partial index above. A caller adds its own conditions (`and ...`). -#}
{% macro audit_night_prior_keys(wm, alias) -%}
    from {{ ref('int_audit_rule_matches') }} as {{ alias }}
    cross join lateral jsonb_array_elements({{ alias }}._prior_keys) as prior (key)
    where {{ alias }}._batch_at > '{{ wm.batch_at }}'::timestamptz
      and {{ audit_prior_keys_present(alias) }}
{%- endmacro %}

{#- A list of rule types (constants of this project) as SQL text literals: 'a', 'b'. -#}
{% macro audit_sql_list(values) -%}
    '{{ values | join("', '") }}'
{%- endmacro %}

{#- current_keys=false: only the groups the night's matches name by their _prior_keys. For groups
    that are lines (R11-R13) the current keys add nothing to delete: a line's findings come from
    its own matches only, so a line with stored findings had stored matches, and those are in the
    _prior_keys of its re-matched rows (the first build, or a new rule library, re-derives
    everything). On a 30 M-line city the current keys were a temporary table of ~880k lines and as
    many probes of the stored findings, every one of the night's new lines, to delete nothing
    (docs/scale-out.md §7.6).
    from_date=true: one row per group with from_date, the earliest charge date of the night's
    matches of the group, current or prior ('-infinity' if none has one): the readers of the
    window groups (the deductible base's window visits, the findings mart) re-read only the
    group's findings and matches charged from that date; the earlier ones cannot have changed. -#}
{% macro audit_touched_groups(wm, rule_types, group_columns, current_keys=true, from_date=false) -%}
    {%- set types = audit_sql_list(rule_types) -%}
    {%- set date_columns = ['charge_date'] if from_date else [] -%}
    select
        {%- if from_date %}
        {{ group_columns | join(', ') }},
        coalesce(min(charge_date), '-infinity'::date) as from_date
        {%- else %}
        distinct {{ group_columns | join(', ') }}
        {%- endif %}
    from (
        {%- if current_keys %}
        select {{ (group_columns + date_columns) | join(', ') }}
        from {{ ref('int_audit_rule_matches') }}
        where _batch_at > '{{ wm.batch_at }}'::timestamptz
          and rule_type in ({{ types }})

        union all
        {%- endif %}

        select
            {% for c in group_columns + date_columns %}{{ audit_prior_key_column(c) }} as {{ c }}{% if not loop.last %}, {% endif %}{% endfor %}
        {{ audit_night_prior_keys(wm, 'matches') }}
          and prior.key ->> 'rule_type' in ({{ types }})
    ) as touched
    {%- if from_date %}
    group by {{ group_columns | join(', ') }}
    {%- endif %}
{%- endmacro %}

{#- True when the effective library holds a rule of rule_type that satisfies condition (columns of
    stg_audit_rules). A model whose rule family has no rule, on a night when the library did not
    change since its last build (not everything), has nothing to find and nothing stored: the
    build that saw the library change deleted every finding and found none, and each build since
    found none (R22 on a library without readmission rules, as the national one: its touched
    patients' stays were read every night for nothing; docs/scale-out.md §6). -#}
{% macro audit_library_has(rule_type, condition='true') -%}
    {%- if not execute -%}{{ return(true) }}{%- endif -%}
    {{- return(not audit_holds_none([(ref('stg_audit_rules'), "rule_type = '" ~ rule_type ~ "' and " ~ condition)])) -}}
{%- endmacro %}

{#- True when none of `reads`, (relation, predicate) pairs, holds a row. A key set that only
    those reads use selects nothing whatever its keys: the findings mart's and R14/R19's key sets
    gathered from the night's settlements, in a city whose finding families they serve hold
    nothing (no fee lines: ~0.5 s of every claims night on the 30 M-claim year, for nothing;
    docs/scale-out.md §6). Each predicate is that of an index of its relation where one is
    partial to it, so that the answer is one index descent. -#}
{% macro audit_holds_none(reads) -%}
    {%- if not execute -%}{{ return(false) }}{%- endif -%}
    {%- set query -%}
        select not (false
        {%- for relation, predicate in reads %}
            or exists (select 1 from {{ relation }} where {{ predicate }})
        {%- endfor %})
    {%- endset -%}
    {{- return(run_query(query).rows[0][0]) -}}
{%- endmacro %}

{#- R22's night has nothing to do: not everything, and no readmission rule (audit_library_has). -#}
{% macro audit_readmission_idle(everything) -%}
    {{- return(not everything and not audit_library_has('readmission', 'days is not null')) -}}
{%- endmacro %}

{#- True when the model must re-derive every group (first build, or a reference file changed). -#}
{% macro audit_findings_everything(wm, references=[]) -%}
    {%- if wm is none -%}
        {{- return(true) -}}
    {%- endif -%}
    {%- if references -%}
        {%- set relations = [] -%}
        {%- for name in references -%}{%- do relations.append(ref(name)) -%}{%- endfor -%}
        {{- return(reference_changed_since(wm, relations)) -}}
    {%- endif -%}
    {{- return(false) -}}
{%- endmacro %}

{#- Predicate on the matches a finding model reads: the groups its pre-hook wrote to an analysed
    temporary table (pg_temp.<model>__touched, same session). With the groups inlined as a
    subquery the planner estimated the night's matches at one row and re-ran the window over the
    group's matches once per match (quadratic: 65-110 s for a night of 20k lines on 200k). -#}
{% macro audit_touched_filter(wm, everything, rule_types, group_columns, alias='') -%}
    {%- if everything -%}
        true
    {%- else -%}
        {%- set p = (alias ~ '.') if alias else '' -%}
        ({% for c in group_columns %}{{ p }}{{ c }}{% if not loop.last %}, {% endif %}{% endfor %}) in (
            select {{ group_columns | join(', ') }} from pg_temp.{{ this.identifier }}__touched
        )
    {%- endif -%}
{%- endmacro %}

{#- The body of a lateral join that probes int_audit_rule_matches once per row of `outer`: the
    matches (alias probed) whose `keys` equal that row's, under `conditions` (SQL; a partial
    index's predicate verbatim, so that the planner can use that index). `offset 0` keeps it one
    index probe per row: as a join the planner hashed the outer rows against every match of the
    history, or a partial index whole (docs/scale-out.md §7.5, §7.19, §7.22). -#}
{% macro audit_matches_probe(outer, keys, conditions=[]) -%}
    select *
    from {{ ref('int_audit_rule_matches') }} as probed
    where {% for k in keys %}probed.{{ k }} = {{ outer }}.{{ k }}{% if not loop.last %}
      and {% endif %}{% endfor %}
      {%- for condition in conditions %}
      and {{ condition }}
      {%- endfor %}
    offset 0
{%- endmacro %}

{#- The matches a window model (R16, R20) reads: of the groups (patient_key, rule_id) its pre-hook
    wrote with from_date (audit_findings_delete_touched), those charged on or after the group's
    read_from, one probe of the partial (patient_key, rule_id, charge_date) index per group (a lateral join,
    `offset 0`: with the date bound in an exists, the planner hashed the groups against every
    window match of the history, 68 s on the 30 M-line city, against 0.35 s probed). Every match
    of the rule type when everything. -#}
{% macro audit_window_group_matches(everything, rule_type) -%}
    {%- if everything -%}
    select *
    from {{ ref('int_audit_rule_matches') }}
    where rule_type = '{{ rule_type }}'
    {%- else -%}
    select group_matches.*
    from pg_temp.{{ this.identifier }}__touched as groups
    cross join lateral (
        {{ audit_matches_probe('groups', ['patient_key', 'rule_id'],
                               ["probed.rule_type = '" ~ rule_type ~ "'", 'probed.charge_date >= groups.read_from']) }}
    ) as group_matches
    {%- endif -%}
{%- endmacro %}

{#- The matches of the touched visit groups (hospital_code, visit_id, rule_id) of a visit-keyed
    finding model (R17; R18 reads whole visits, audit_included_in_findings), from its pre-hook's
    pg_temp.<model>__touched: one (hospital_code, visit_id) index probe per touched visit (a
    lateral join), not one per visit x rule (each probe read all the visit's matches), read once
    for every CTE of the model. Every match of the rule types when everything. -#}
{% macro audit_visit_group_matches(everything, rule_types) -%}
    {%- set types = audit_sql_list(rule_types) -%}
    {#- every rule type read has its matches in the partial index: probe through it -#}
    {%- set use_partial = rule_types | reject('in', audit_visit_partial_rule_types(as_list=true)) | list | length == 0 -%}
    {%- if everything -%}
    select *
    from {{ ref('int_audit_rule_matches') }}
    where rule_type in ({{ types }})
    {%- else -%}
    select matches.*
    from (
        select distinct hospital_code, visit_id from pg_temp.{{ this.identifier }}__touched
    ) as touched_visits
    cross join lateral (
        {#- the predicate of the partial (hospital_code, visit_id, rule_id, charge_date) index, verbatim -#}
        {{ audit_matches_probe('touched_visits', ['hospital_code', 'visit_id'],
                               ([audit_visit_partial_predicate()] if use_partial else [])
                               + ['probed.rule_type in (' ~ types ~ ')']) }}
    ) as matches
    where (matches.hospital_code, matches.visit_id, matches.rule_id) in (
        select hospital_code, visit_id, rule_id from pg_temp.{{ this.identifier }}__touched
    )
    {%- endif -%}
{%- endmacro %}

{#- R18's findings (the B lines whose A lines net > 0 on their day, or over the visit when the rule's
    days is empty), from matches (SQL of int_audit_rule_matches rows of rule type included_in).
    Used on all of them (a full build: matches read twice, not materialised) and, incremental,
    inside a lateral join on one touched visit's matches (materialised per visit, a few rows):
    on a 1 M-line night of 50k touched visits that is 1.4 s against 2.0-2.3 s for the visits'
    576k matches materialised on disk, hashed and sorted once (docs/scale-out.md §7.23). -#}
{% macro audit_included_in_findings(matches, everything) -%}
    with

    group_matches as {% if everything %}not {% endif %}materialized (
        {{ matches }}
    ),

    a_net as (

        select
            hospital_code,
            visit_id,
            rule_id,
            case when days is not null then charge_date end as charge_date
        from group_matches
        where is_main_item
          and visit_id is not null
        group by 1, 2, 3, 4
        having sum(quantity) > 0

    )

    select b_lines.*
    from group_matches as b_lines
    where not coalesce(b_lines.is_main_item, false)
      and b_lines.main_item_prefix is not null
      and b_lines.visit_id is not null
      and exists (
          select 1
          from a_net
          where a_net.hospital_code = b_lines.hospital_code
            and a_net.visit_id = b_lines.visit_id
            and a_net.rule_id = b_lines.rule_id
            and (a_net.charge_date is null or a_net.charge_date = b_lines.charge_date)
      )
{%- endmacro %}

{#- The rule types decided per visit that audit_visit_group_matches reads through a partial
    (hospital_code, visit_id, rule_id) index of int_audit_rule_matches (predicate below): R17
    course_days, ~7 % of the matches on the 30 M-line city. Through the full (hospital_code,
    visit_id) index each touched visit's probe fetched all its matches (~19, every rule type) to
    keep one or two (docs/scale-out.md §7.5). Not R18 included_in: it is ~65 % of the matches
    (main and included items), a partial index would not be selective. -#}
{% macro audit_visit_partial_rule_types(as_list=false) -%}
    {%- set types = ['course_days'] -%}
    {%- if as_list -%}
        {{- return(types) -}}
    {%- endif -%}
    {{ audit_sql_list(types) }}
{%- endmacro %}

{% macro audit_visit_partial_predicate() -%}
rule_type in ({{ audit_visit_partial_rule_types() }})
{%- endmacro %}

{#- Pre-hook: the groups re-derived tonight into an analysed temporary table, and the deletion of
    their stored findings.
    from_date=true (the window models R16 and R20, groups patient x rule): each group also gets
    from_date (audit_touched_groups) and read_from = from_date less the rule's largest `days`;
    only the group's findings charged on or after from_date are deleted, and the model re-derives
    only those, from the group's matches charged on or after read_from (and, R16, its stored
    findings before from_date). A window rule decides a day from the days before it, never after:
    a change on day d changes no finding dated before d, and a day >= from_date looks back at
    most `days` (R20: the previous pair is a repeat's only if within `days`; R16: a last payable
    day before read_from makes the first day >= from_date payable). docs/scale-out.md §7.11. -#}
{% macro audit_findings_delete_touched(rule_types, group_columns, references=[], from_date=false) -%}
    {%- if execute and is_incremental() -%}
        {%- set wm = incremental_watermark(ref('stg_load_ledger')) -%}
        {%- if audit_findings_everything(wm, references) -%}
            delete from {{ this }}
        {%- else -%}
            {#- groups that are lines: only their prior keys (macro audit_touched_groups) -#}
            {%- set current_keys = group_columns != ['hospital_code', 'fee_line_id'] %}
            {%- if from_date %}
            {%- set touched -%}
            select
                groups.*,
                groups.from_date - coalesce(rules.days, 0) as read_from
            from ({{ audit_touched_groups(wm, rule_types, group_columns, current_keys, from_date=true) }}) as groups
            left join (
                select rule_id, max(days) as days
                from {{ ref('stg_audit_rules') }}
                where rule_type in ({{ audit_sql_list(rule_types) }})
                group by rule_id
            ) as rules
                on groups.rule_id = rules.rule_id
            {%- endset %}
            {%- else %}
            {%- set touched = audit_touched_groups(wm, rule_types, group_columns, current_keys) %}
            {%- endif %}
            {{ analysed_temp_table(this.identifier ~ '__touched', touched) }};
            {%- if group_columns == ['hospital_code', 'visit_id'] %}
            {#- whole visits (R18): one probe of the model's (hospital_code, visit_id) index per
                visit (macro probed_delete); as a join, the planner hashed ~30k visits against a
                sequential scan of every finding, 0.28-0.41 s on a 30 M-line history and growing
                with it, against 0.12-0.16 s probed (docs/scale-out.md §7.21) -#}
            {{ probed_delete(this, 'pg_temp.' ~ this.identifier ~ '__touched', group_columns,
                             'candidate.rule_type in (' ~ audit_sql_list(rule_types) ~ ')') }}
            {%- else %}
            delete from {{ this }} as stored
            using pg_temp.{{ this.identifier }}__touched as groups
            where {% for c in group_columns -%}
                stored.{{ 'subject_id' if c == 'fee_line_id' else c }} = groups.{{ c }}
                {%- if not loop.last %} and {% endif %}
            {%- endfor %}
              and stored.rule_type in ({{ audit_sql_list(rule_types) }})
              {%- if from_date %}
              and stored.charge_date >= groups.from_date
              {%- endif %}
            {%- endif %}
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- The models that follow the findings (int_audit_claim_rules, int_audit_deductible_lines,
    fct_audit_findings) re-derive, each night, every visit whose findings may have changed since
    their watermark wm, read from int_audit_rule_matches (int_claims_with_deductions follows
    int_audit_deductible_lines' changes instead: audit_deductible_changed_visits):
    - the visit of every match written since wm (a new, late, refunded or corrected line, and the
      tombstone of a line that no longer matches), and the visits its _prior_keys name (where a
      corrected line was before);
    - with windows (the deductible base, int_audit_deductible_lines): every visit holding a violation match of a window group (R15,
      R16, R20: patient x rule, across hospitals) that a match written since wm touches, since
      re-walking the group can move a finding to another visit (I01 moved away makes I16 of
      another visit non-payable). Only violation matches, of rules with a violation row: a
      suspicious finding never deducts, and a visit whose deductible findings change holds a
      violation match of the group. On the 30 M-line city the groups of every severity added
      161,745 visits to the night's 59,000, those of violation rules 41,152 (docs/scale-out.md
      §7.5). Only the group's matches charged on or after the earliest date the night touches it
      at (from_date, audit_touched_groups): a window rule decides a charge day from the days
      before it (R16 the last payable day, R20 the previous (date, hospital) pair, R15 the day
      itself), so a change on day d changes no finding dated before d (docs/scale-out.md §7.10).
      fct_audit_findings needs no window visits: it re-copies the window findings by group
      (patient x rule) from the same date, wherever their visit.
    R17/R18 groups are visits, R11-R14/R19 lines: both covered by the first part. Read through the
    (_batch_at) and (patient_key, rule_id, charge_date) indexes of int_audit_rule_matches: only the night's
    matches and the history of the groups they touch. -#}
{#- window_groups (with windows): a relation of the touched window groups (patient_key, rule_id,
    from_date), a pre-hook's analysed temporary table. Inlined, its size was misestimated (the prior keys'
    jsonb_array_elements at 100 rows a match). -#}
{#- direct=false: the window groups' visits only (with windows). -#}
{% macro audit_touched_visits(wm, windows=true, window_groups=none, direct=true) -%}
    {%- if windows and window_groups is none %}
    {{ exceptions.raise_compiler_error(
        "audit_touched_visits(windows=true) needs window_groups, the relation of the night's window groups "
        ~ "(patient_key, rule_id, from_date; audit_touched_visits_tables writes it)") }}
    {%- endif %}
    {%- if not (direct or windows) %}
    {{ exceptions.raise_compiler_error("audit_touched_visits: direct=false and windows=false select no visit") }}
    {%- endif %}
    {%- if direct %}
    -- made distinct by a hash of the ~60k visits (`group by` over `union all`): as a `union` the
    -- planner sorted the 935k rows of a 1 M-line night (880k matches for 59k visits) on disk,
    -- 1.27 s against 0.66 s (docs/scale-out.md §7.14); two reads of the night's matches, the
    -- second memoizing the prior keys' expansion (mostly '[]'), cost less than one read with a
    -- lateral union per match (0.93 s)
    select hospital_code, visit_id
    from (
        select changed.hospital_code, changed.visit_id
        from {{ ref('int_audit_rule_matches') }} as changed
        where changed._batch_at > '{{ wm.batch_at }}'::timestamptz
          and changed.visit_id is not null

        union all

        select changed.hospital_code, prior.key ->> 'visit_id'
        {{ audit_night_prior_keys(wm, 'changed') }}
          and prior.key ->> 'visit_id' is not null
    ) as direct
    group by hospital_code, visit_id
    {%- endif %}
    {%- if windows %}
    {%- if direct %}

    union
    {%- endif %}

    -- the analysed table of groups is left to the planner, which chooses one (patient_key,
    -- rule_id) probe per group on a big history and a hash join on a small one (forced probes
    -- cost 2.4 s instead of 0.5 s on an empty history); the partial index includes every column
    -- read here, so a history group's probe is an index-only scan (docs/scale-out.md §7.24)
    select window_matches.hospital_code, window_matches.visit_id
    from {{ window_groups }} as window_groups
    cross join lateral (
        select matches.hospital_code, matches.visit_id
        from {{ ref('int_audit_rule_matches') }} as matches
        where matches.patient_key = window_groups.patient_key
          and matches.rule_id = window_groups.rule_id
          and matches.rule_type in ({{ audit_window_rule_types() }})
          and matches.severity = 'violation'
          and matches.visit_id is not null
          and matches.charge_date >= window_groups.from_date
    ) as window_matches
    -- the window rules that deduct (81 of the national library's 15,113): the groups are window
    -- rules' by construction, so the rule_type filter changes no row, but it bounds the plan that
    -- PostgreSQL picks when it takes the rules for one row (stg_audit_rules' CTEs are estimated at
    -- 1): one probe of the matches per rule; with every violation rule (14,881) that plan took
    -- 8.0-8.4 s on a first night after an empty build, and now takes 0.09 s (docs/scale-out.md §7.19)
    where window_groups.rule_id in (
        select rule_id from {{ ref('stg_audit_rules') }}
        where severity = 'violation'
          and rule_type in ({{ audit_window_rule_types() }})
    )
    {%- endif %}
{%- endmacro %}

{#- The touched visits of a model as analysed temporary tables of its pre-hook (the model reads
    them in the same session): pg_temp.<model>__visits, the visits the night's matches touch
    directly (audit_touched_visits without windows; plus, with claims, the visits re-settled since
    wm), and, with windows, pg_temp.<model>__windows, the window groups (patient x rule) the night
    touches, and pg_temp.<model>__window_visits, their visits (the visits with a violation match in
    them): only the window rules' rows of those can change, unless the visit is touched directly.
    Inlined as a subquery, the prior keys' jsonb_array_elements were estimated at 100 rows per
    match (18 M touched visits for a night of 27k), so the planner hashed whole tables (every
    window match of the history, every finding) instead of probing the few visits. -#}
{% macro audit_touched_visits_tables(wm, windows=true, claims=false) -%}
    {%- set prefix = this.identifier ~ '__' -%}
    {%- if windows %}
    {{ analysed_temp_table(prefix ~ 'windows',
        audit_touched_groups(wm, audit_window_rule_types(as_list=true), ['patient_key', 'rule_id'], from_date=true)) }};
    {{ analysed_temp_table(prefix ~ 'window_visits',
        audit_touched_visits(wm, window_groups='pg_temp.' ~ prefix ~ 'windows', direct=false)) }};
    {%- endif %}
    {%- set visits -%}
    {{ audit_touched_visits(wm, windows=false) }}
    {%- if claims %}
    union
    {{ audit_claims_touched(wm, ['hospital_code', 'visit_id']) }}
    {%- endif %}
    {%- endset %}
    {{ analysed_temp_table(prefix ~ 'visits', visits) }}
{%- endmacro %}

{#- The relation of the touched visits written by audit_touched_visits_tables. -#}
{% macro audit_touched_visits_relation(windows=false) -%}
    pg_temp.{{ this.identifier }}__{{ 'window_visits' if windows else 'visits' }}
{%- endmacro %}

{#- The matches decided on the visit's effective settlement (R14, R19: int_audit_claim_rules,
    and, their violations, the candidates int_audit_deductible_lines lists for
    int_claims_with_deductions), and the predicate of the partial index of int_audit_rule_matches
    that serves both (the same text, so that the planner sees the implication). All severities:
    int_audit_claim_rules reports suspicious findings too, and through the full (hospital_code,
    visit_id) index its probe read each touched visit's ~19 matches to keep none (96 s cold for 59k
    visits on a 30 M-line city, 1.2 s through this index; docs/scale-out.md §7.5). -#}
{% macro audit_decided_by_settlement() -%}
rule_type in ({{ audit_decided_by_settlement_types() }})
{%- endmacro %}

{% macro audit_decided_by_settlement_types() -%}
'inpatient_only', 'indication'
{%- endmacro %}

{#- The rule types decided over a patient's window (R15 per day, R16, R20 across hospitals). -#}
{% macro audit_window_rule_types(as_list=false) -%}
    {%- set types = ['daily_quantity', 'min_interval_days', 'repeat_exam'] -%}
    {%- if as_list -%}
        {{- return(types) -}}
    {%- endif -%}
    {{ audit_sql_list(types) }}
{%- endmacro %}

{#- The settlements re-derived by int_claims_with_deductions since wm (its rows written since):
    the given columns, distinct, none null. R14/R19 (visit) and R22 (hospital x patient) follow
    them. (hospital_code, settlement_id) is the table's unique key: not hashed again (132 ms
    against 49 ms for a night of 157k settlements, docs/scale-out.md §6). -#}
{% macro audit_claims_touched(wm, columns) -%}
    {%- set unique = 'hospital_code' in columns and 'settlement_id' in columns %}
    select {% if not unique %}distinct {% endif %}{{ columns | join(', ') }}
    from {{ ref('int_claims_with_deductions') }}
    where _batch_at > '{{ wm.batch_at }}'::timestamptz
      {%- for c in columns %}
      and {{ c }} is not null
      {%- endfor %}
{%- endmacro %}

{#- R22's (hospital, patient) pairs of the settlements int_claims_with_deductions re-derived since
    wm: their current patient, and the patients of their earlier versions (_prior_patient_keys: a
    stay corrected to another patient leaves its former patient's stays, whose findings can change
    without it). -#}
{% macro audit_claims_touched_patients(wm) -%}
    select hospital_code, patient_key
    from {{ ref('int_claims_with_deductions') }}
    where _batch_at > '{{ wm.batch_at }}'::timestamptz
      and patient_key is not null

    union

    select claims.hospital_code, prior.patient_key
    from {{ ref('int_claims_with_deductions') }} as claims
    cross join lateral jsonb_array_elements_text(claims._prior_patient_keys) as prior (patient_key)
    where claims._batch_at > '{{ wm.batch_at }}'::timestamptz
{%- endmacro %}

{#- The reference files whose change re-derives every finding downstream of the matches
    (the rule library re-matches every line; the hospital registry re-decides R13 and R21). -#}
{% macro audit_everything_since(wm) -%}
    {{- return(audit_findings_everything(wm, ['stg_audit_rules', 'stg_hospitals'])) -}}
{%- endmacro %}

{#- The delete of a pre-hook that re-derives touched keys: everything (the rule library or the
    registry changed) empties the target; otherwise one delete per (touched keys SQL, pairs of
    stored column and touched column). -#}
{% macro audit_delete_touched(everything, deletes) -%}
    {%- if everything -%}
        delete from {{ this }}
    {%- else -%}
        {%- for touched, pairs in deletes %}
            delete from {{ this }} as stored
            using ({{ touched }}) as touched
            where {% for stored_column, touched_column in pairs -%}
                stored.{{ stored_column }} = touched.{{ touched_column }}{% if not loop.last %} and {% endif %}
            {%- endfor %}{% if not loop.last %};{% endif %}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of int_audit_claim_rules (R14/R19): delete the stored findings of the visits it
    re-derives tonight. The visits re-settled tonight are among them unless no match of R14/R19
    exists (tonight's included) and nothing is stored: a settlement then decides no finding and
    deletes none (a city without fee lines; audit_holds_none). -#}
{% macro audit_claim_rules_delete_touched() -%}
    {%- if execute and is_incremental() -%}
        {%- set wm = incremental_watermark(ref('stg_load_ledger')) -%}
        {%- if audit_everything_since(wm) -%}
            delete from {{ this }}
        {%- else -%}
            {%- set claims = not audit_holds_none([
                (ref('int_audit_rule_matches'), audit_decided_by_settlement()), (this, 'true')]) -%}
            {%- if not claims %}
            {%- do log(this.identifier ~ ": the re-settled visits not gathered (no R14/R19 match or finding is held)", info=true) %}
            {%- endif %}
            {{ audit_touched_visits_tables(wm, windows=false, claims=claims) }};
            {{ audit_delete_touched(false, [('select hospital_code, visit_id from ' ~ audit_touched_visits_relation(),
                [('hospital_code', 'hospital_code'), ('visit_id', 'visit_id')])]) }}
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of int_audit_readmission (R22): delete the stored findings of the (hospital, patient)
    pairs re-derived tonight, and those on a settlement re-derived tonight; nothing when R22 is
    idle (audit_readmission_idle: nothing stored). -#}
{% macro audit_readmission_delete_touched() -%}
    {%- set wm = incremental_watermark(ref('stg_load_ledger')) if execute and is_incremental() else none -%}
    {%- set everything = audit_findings_everything(wm, ['stg_audit_rules']) if wm is not none else true -%}
    {%- if wm is not none and not audit_readmission_idle(everything) -%}
        {{ audit_delete_touched(everything, [
            (audit_claims_touched_patients(wm),
                [('hospital_code', 'hospital_code'), ('patient_key', 'patient_key')]),
            (audit_claims_touched(wm, ['hospital_code', 'settlement_id']),
                [('hospital_code', 'hospital_code'), ('subject_id', 'settlement_id')]),
        ]) }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- R21 (int_exam_results): the (hospital, month) pairs a positive_rate match written since wm
    touches, by its current or prior charge date (a line keeps its hospital). -#}
{% macro audit_exam_touched_months(wm) -%}
    select changed.hospital_code, date_trunc('month', changed.charge_date)::date as month_start
    from {{ ref('int_audit_rule_matches') }} as changed
    where changed._batch_at > '{{ wm.batch_at }}'::timestamptz
      and changed.rule_type = 'positive_rate'
      and changed.charge_date is not null

    union

    select changed.hospital_code, date_trunc('month', (prior.key ->> 'charge_date')::date)::date
    {{ audit_night_prior_keys(wm, 'changed') }}
      and prior.key ->> 'rule_type' = 'positive_rate'
      and prior.key ->> 'charge_date' is not null
{%- endmacro %}

{#- Pre-hook of int_exam_results (R21): the months re-counted tonight, written once to an analysed
    temporary table that the model reads (pg_temp.int_exam_results__months: finding them reads the
    night's ~1 M matches, 0.7-0.8 s on a 30 M-line city, where the model and this hook each read
    them), and their stored rows deleted. -#}
{% macro audit_exam_results_delete_touched() -%}
    {%- if execute and is_incremental() -%}
        {%- set wm = incremental_watermark(ref('stg_load_ledger')) -%}
        {%- if audit_everything_since(wm) -%}
            delete from {{ this }}
        {%- else -%}
            {{ analysed_temp_table(this.identifier ~ '__months', audit_exam_touched_months(wm)) }};
            {{ audit_delete_touched(false, [('select hospital_code, month_start from pg_temp.' ~ this.identifier ~ '__months',
                [('hospital_code', 'hospital_code'), ('month_start', 'month_start')])]) }}
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- int_audit_deductible_lines: the fee-line findings that can be deducted, as the model selects
    them: from every finding model, or, when not everything, only the rows of the visits its
    pre-hook found touched (audit_touched_visits_tables: every row of pg_temp.<model>__visits, the
    window rules' rows of pg_temp.<model>__window_visits too), but R11-R13: the rows
    int_audit_line_rules wrote since wm. -#}
{% macro audit_deductible_lines_select(everything, wm=none) -%}
    {%- set decided = [
        'int_audit_line_rules', 'int_audit_daily_quantity', 'int_audit_min_interval',
        'int_audit_course_days', 'int_audit_included_in', 'int_audit_repeat_exam',
    ] -%}
    {%- set window_models = ['int_audit_daily_quantity', 'int_audit_min_interval', 'int_audit_repeat_exam'] -%}
    {%- set visits = 'select hospital_code, visit_id from ' ~ audit_touched_visits_relation() -%}
    {%- set window_visits = visits ~ ' union select hospital_code, visit_id from ' ~ audit_touched_visits_relation(windows=true) -%}
    {% for model in decided %}
    {%- if everything or model in window_models or model == 'int_audit_line_rules' %}
    select
        hospital_code,
        visit_id,
        subject_id as fee_line_id,
        rule_id,
        rule_type,
        null::text as diagnosis_prefixes,
        flagged_amount
    from {{ ref(model) }}
    where severity = 'violation'
      and visit_id is not null
      {%- if everything %}
      {%- elif model == 'int_audit_line_rules' %}
      -- R11-R13 by line: the rows int_audit_line_rules wrote since (the lines matched tonight),
      -- through its _batch_at index; a late line in a visit of the history changes none of the
      -- visit's other lines' R11-R13 findings, which one probe per touched visit read again
      -- (docs/scale-out.md §7.26). The stored side reads the re-matched lines' rows
      -- (audit_deductible_stored_rows).
      and {{ audit_written_since(wm) }}
      {%- else %}
      and (hospital_code, visit_id) in ({{ window_visits }})
      {%- endif %}
    {%- else %}
    -- one (hospital_code, visit_id) probe per touched visit (`offset 0`): as a semi-join the
    -- planner hashed the visits against a scan of the whole model (int_audit_line_rules, when
    -- it was read by visit: 3.4 M findings, 1.9 s, on a 30 M-line city). The window rules'
    -- models above are small, and hashed against the visits of their groups.
    select
        findings.hospital_code,
        findings.visit_id,
        findings.subject_id as fee_line_id,
        findings.rule_id,
        findings.rule_type,
        null::text as diagnosis_prefixes,
        findings.flagged_amount
    from {{ audit_touched_visits_relation() }} as touched
    cross join lateral (
        select *
        from {{ ref(model) }} as visit_findings
        where visit_findings.hospital_code = touched.hospital_code
          and visit_findings.visit_id = touched.visit_id
        offset 0
    ) as findings
    where findings.severity = 'violation'
    {%- endif %}

    union all
    {% endfor %}
    select
        hospital_code,
        visit_id,
        fee_line_id,
        rule_id,
        rule_type,
        diagnosis_prefixes,
        amount::numeric(18, 2) as flagged_amount
    from {{ ref('int_audit_rule_matches') }}
    where {{ audit_decided_by_settlement() }}
      and severity = 'violation'
      and visit_id is not null
      {%- if not everything %}
      and (hospital_code, visit_id) in ({{ visits }})
      {%- endif %}
{%- endmacro %}

{#- The log beside int_audit_deductible_lines (lines: its relation) of the visits whose stored rows
    its builds deleted (_changed_at: the deleting build's now()); a row without a visit records a
    build that re-derived every visit (a first build, a full refresh, a new rule library or
    hospital registry). int_claims_with_deductions re-derives the visits of the rows written since
    its watermark and of this log, and empties it (audit_deductible_changes_consumed). -#}
{% macro audit_deductible_changes(lines) -%}
    {{- return(lines.incorporate(path={'identifier': lines.identifier ~ '__changes'})) -}}
{%- endmacro %}

{% macro audit_deductible_changes_table(lines) -%}
    create table if not exists {{ audit_deductible_changes(lines) }} (
        hospital_code text,
        visit_id text,
        _changed_at timestamptz not null
    )
{%- endmacro %}

{#- int_audit_deductible_lines' pre-hook: its stored rows of the touched visits (every row of
    pg_temp.<model>__visits, the window rules' rows of pg_temp.<model>__window_visits), with their
    ctid, into pg_temp.<model>__stored (analysed; a window row of a visit in both is listed twice,
    which changes nothing below): one (hospital_code, visit_id) probe per touched
    visit (`offset 0`; joined to the touched visits, the join was estimated at 6k rows for 177k and
    hashed against a scan of the whole table, 2.4 s at 4.5 M rows), but for a visit that sorts
    after every stored visit of its hospital (a new visit: macro stored_key_bound_join). -#}
{% macro audit_deductible_stored_rows() -%}
    {%- set parts = [] -%}
    {%- for relation, rule_types in [(audit_touched_visits_relation(), none),
                                     (audit_touched_visits_relation(windows=true), audit_window_rule_types(as_list=true))] -%}
        {%- set part -%}
        select candidate.*
        from {{ relation }} as touched
        {{ stored_key_bound_join(this, relation, 'touched', ['hospital_code'], 'visit_id') }}
        cross join lateral (
            select visit_rows.ctid as row_ctid, visit_rows.*
            from {{ this }} as visit_rows
            where visit_rows.hospital_code = touched.hospital_code
              and visit_rows.visit_id = touched.visit_id
              and {{ below_stored_max('touched.visit_id', 'bound', 'visit_id') }}
              {%- if rule_types %}
              and visit_rows.rule_type in ({{ audit_sql_list(rule_types) }})
              {%- else %}
              -- R11-R13 rows only of the lines the night re-matched (audit_deductible_lines_select)
              and (visit_rows.rule_type not in ({{ audit_line_rule_types() }})
                   or (visit_rows.hospital_code, visit_rows.fee_line_id) in (
                       select hospital_code, fee_line_id from pg_temp.{{ this.identifier }}__touched_lines))
              {%- endif %}
            offset 0
        ) as candidate
        {%- endset -%}
        {%- do parts.append(part) -%}
    {%- endfor -%}
    {{ analysed_temp_table(this.identifier ~ '__stored', parts | join(' union all ')) }}
{%- endmacro %}

{#- A row of int_audit_deductible_lines (alias a) that is row b as it is. -#}
{% macro audit_deductible_same_row(a, b) -%}
    {{ a }}.hospital_code = {{ b }}.hospital_code
    and {{ a }}.fee_line_id = {{ b }}.fee_line_id
    and {{ a }}.rule_id = {{ b }}.rule_id
    and ({{ a }}.visit_id, {{ a }}.rule_type, {{ a }}.diagnosis_prefixes, {{ a }}.flagged_amount)
        is not distinct from ({{ b }}.visit_id, {{ b }}.rule_type, {{ b }}.diagnosis_prefixes, {{ b }}.flagged_amount)
{%- endmacro %}

{#- int_audit_deductible_lines' pre-hook: the stored rows of the touched visits that the night's
    re-derivation (pg_temp.<model>__lines) does not hold as they are, deleted by ctid, their
    visits logged. -#}
{% macro audit_deductible_delete_changed() -%}
    with deleted as (
        delete from {{ this }} as stored
        where stored.ctid = any (array(
            select row_ctid
            from pg_temp.{{ this.identifier }}__stored as candidate
            where not exists (
                select 1
                from pg_temp.{{ this.identifier }}__lines as lines
                where {{ audit_deductible_same_row('lines', 'candidate') }}
            )
        ))
        returning stored.hospital_code, stored.visit_id
    )
    insert into {{ audit_deductible_changes(this) }}
    select distinct hospital_code, visit_id, now()
    from deleted
{%- endmacro %}

{#- Pre-hook of int_audit_deductible_lines. Incremental: the touched visits (analysed temporary
    tables), their rows re-derived into pg_temp.int_audit_deductible_lines__lines and their stored
    rows copied to pg_temp.int_audit_deductible_lines__stored (both analysed), then only the
    difference: the stored rows the night does not hold are deleted (their visits logged), and the
    model inserts the night's rows not stored as they are. A row unchanged tonight is neither deleted nor
    written again, so the rows written since a reader's watermark, with the log, are exactly the
    visits whose deductible base changed: on a 30 M-line city about one in ten of the ~100k visits
    re-derived (most are the visits of the window groups the night touches, re-walked to the same
    findings; docs/scale-out.md §7.9). R11-R13 rows by line: the lines the night re-matched
    (pg_temp.<model>__touched_lines), the rest of a touched visit's R11-R13 rows left as they are
    (audit_deductible_lines_select). Everything (the rule library or the hospital registry
    changed, or int_audit_line_rules alone was rebuilt: audit_followers_everything):
    every row deleted, the re-derivation logged as a row without a visit. -#}
{% macro audit_deductible_lines_diff() -%}
    {%- if execute and is_incremental() -%}
        {%- set wm = incremental_watermark(ref('stg_load_ledger')) -%}
        {{ audit_deductible_changes_table(this) }};
        {%- if audit_followers_everything(wm, audit_deductible_lines_followed()) %}
        delete from {{ this }};
        insert into {{ audit_deductible_changes(this) }} values (null, null, now())
        {%- else %}
        {{ audit_touched_visits_tables(wm) }};
        {{ analysed_temp_table(this.identifier ~ '__touched_lines', audit_rematched_lines(wm)) }};
        {{ analysed_temp_table(this.identifier ~ '__lines', audit_deductible_lines_select(false, wm)) }};
        {{ audit_deductible_stored_rows() }};
        {{ audit_deductible_delete_changed() }}
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- Post-hook of int_audit_deductible_lines: a build from scratch (first build, full refresh) is
    logged as a re-derivation of every visit. -#}
{% macro audit_deductible_lines_rebuilt() -%}
    {%- if execute and not is_incremental() -%}
        {{ audit_deductible_changes_table(this) }};
        insert into {{ audit_deductible_changes(this) }} values (null, null, now())
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- int_claims_with_deductions: the visits whose deductible base int_audit_deductible_lines changed
    since wm (rows written, or deleted per its log), or none when it re-derived every visit since
    (the caller then re-derives every effective settlement), or when its log does not exist yet. -#}
{% macro audit_deductible_changed_visits(wm) -%}
    {%- set lines = ref('int_audit_deductible_lines') -%}
    {%- set log = audit_deductible_changes(lines) -%}
    {%- set query -%}
        select to_regclass({{ dbt.string_literal(log | string) }}) is not null
    {%- endset -%}
    {%- if not run_query(query).rows[0][0] -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set query -%}
        select exists (
            select 1 from {{ log }}
            where hospital_code is null and _changed_at > '{{ wm.batch_at }}'::timestamptz
        )
    {%- endset -%}
    {%- if run_query(query).rows[0][0] -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set sql -%}
    select hospital_code, visit_id
    from {{ lines }}
    where _batch_at > '{{ wm.batch_at }}'::timestamptz

    union

    select hospital_code, visit_id
    from {{ log }}
    where _changed_at > '{{ wm.batch_at }}'::timestamptz
      and hospital_code is not null
    {%- endset -%}
    {{- return(sql) -}}
{%- endmacro %}

{#- Post-hook of int_claims_with_deductions: the deductible base's changes are taken (every one
    logged by a build before this one: the builds of a schema run one after the other). -#}
{% macro audit_deductible_changes_consumed() -%}
    {%- if execute -%}
        {%- set lines = ref('int_audit_deductible_lines') -%}
        {{ audit_deductible_changes_table(lines) }};
        delete from {{ audit_deductible_changes(lines) }} where _changed_at <= now()
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- fct_audit_findings, incremental: the key sets it re-copies by (CTE name -> SQL of wm) and, for
    each finding model, the predicates (on that model, or on the mart itself) that select the
    findings to re-copy. The pre-hook deletes the stored rows the same predicates select, so that
    the deleted and the re-copied findings are the same ones. -#}
{% macro audit_mart_touched_visits(wm) -%}
    {{ audit_touched_visits(wm, windows=false) }}
{%- endmacro %}

{#- The visits re-settled since wm (int_claims_with_deductions) that the night's matches do not
    touch: only their findings decided on the settlement (R14/R19, int_audit_claim_rules) can have
    changed with the settlement; no other finding model reads a visit's claim (R22 follows the
    settlements by patient and by settlement). Re-copying every finding model's findings of these
    visits probed seven finding models and the mart's full visit index once per visit: for 50k
    visits of the 30 M-line city, 0.98-1.02 s for the copy and 0.68-0.75 s for the stored read,
    against 0.12 s and 0.12-0.14 s from int_audit_claim_rules and the mart's index partial to the
    R14/R19 findings (docs/scale-out.md §7.20). A claim arriving after its visit's lines (an
    inpatient stay settled at discharge) is such a visit. -#}
{% macro audit_mart_touched_claim_visits(wm) -%}
    select claims.hospital_code, claims.visit_id
    from ({{ audit_claims_touched(wm, ['hospital_code', 'visit_id']) }}) as claims
    where not exists (
        select 1
        from pg_temp.fct_audit_findings__touched_visits as touched
        where touched.hospital_code = claims.hospital_code
          and touched.visit_id = claims.visit_id
    )
{%- endmacro %}

{% macro audit_mart_touched_windows(wm) -%}
    {{ audit_touched_groups(wm, audit_window_rule_types(as_list=true), ['patient_key', 'rule_id'], from_date=true) }}
{%- endmacro %}

{#- The lines whose stored R11-R13 findings may have changed: the lines the night re-matched (their
    matches name prior keys; a line's R11-R13 findings come from its own matches only, so a line
    with stored findings had stored matches, and a new line has no stored finding), and lines
    without a visit (the loader never writes one). Read through the small partial index of the
    night's prior keys. The findings mart and the deductible base take R11-R13 by line, not by
    visit: a late line in a visit of the history changes none of the findings of the visit's other
    lines, and re-copying them probed int_audit_line_rules once per touched visit, ~1.2 s for the
    59k visits of a 1 M-line night on a 30 M-line city in the mart alone (docs/scale-out.md §7.26). -#}
{% macro audit_rematched_lines(wm) -%}
    select distinct hospital_code, fee_line_id
    from {{ ref('int_audit_rule_matches') }}
    where _batch_at > '{{ wm.batch_at }}'::timestamptz
      and {{ audit_prior_keys_present() }}
{%- endmacro %}

{#- The rule types of int_audit_line_rules (R11-R13), which its followers take by line. -#}
{% macro audit_line_rule_types() -%}
    'sex', 'age', 'hospital_level'
{%- endmacro %}

{#- True when a model that follows finding models' writes (the findings mart: R11-R13 and R14/R19;
    the deductible base: R11-R13) must re-derive everything. They take those findings as the rows
    the followed models (`followed`: model -> SQL list of its rule types) wrote since their
    watermark wm, and compare them with their stored rows of the keys the night touched. So:
    everything when a reference file that re-derives every finding changed
    (audit_everything_since), or when a followed model was rebuilt since (every row of it
    written since wm while this model holds rows of its rule types: a --full-refresh of that
    model alone), whose rows would otherwise be taken again beside the stored ones. True without
    a watermark (a first build; audit_everything_since), before any query. -#}
{% macro audit_followers_everything(wm, followed) -%}
    {%- if audit_everything_since(wm) -%}
        {{- return(true) -}}
    {%- endif -%}
    {%- set query -%}
        select false
        {%- for model, rule_types in followed.items() %}
            or (exists (select 1 from {{ ref(model) }} where _batch_at > '{{ wm.batch_at }}'::timestamptz)
                and not exists (select 1 from {{ ref(model) }} where _batch_at <= '{{ wm.batch_at }}'::timestamptz)
                and exists (select 1 from {{ this }} where rule_type in ({{ rule_types }})))
        {%- endfor %}
    {%- endset -%}
    {{- return(run_query(query).rows[0][0]) -}}
{%- endmacro %}

{#- The followed models of the findings mart and of the deductible base (audit_followers_everything). -#}
{% macro audit_findings_mart_followed() -%}
    {{- return({'int_audit_line_rules': audit_line_rule_types(), 'int_audit_claim_rules': audit_decided_by_settlement_types()}) -}}
{%- endmacro %}

{% macro audit_deductible_lines_followed() -%}
    {{- return({'int_audit_line_rules': audit_line_rule_types()}) -}}
{%- endmacro %}

{#- The rows a finding model wrote since wm (a predicate on it). For int_audit_line_rules exactly
    the R11-R13 findings of the lines matched since, new or re-matched (its groups are lines, and
    int_audit_rule_matches rewrites every row of a line it re-matches); for int_audit_claim_rules
    the R14/R19 findings of the visits the night's matches touch (current and prior keys) and of
    the visits re-settled since: the findings mart's by_visit and by_claim_visit keys. -#}
{% macro audit_written_since(wm) -%}
    _batch_at > '{{ wm.batch_at }}'::timestamptz
{%- endmacro %}

{% macro audit_mart_touched_stays(wm) -%}
    {{ audit_claims_touched_patients(wm) }}
{%- endmacro %}

{% macro audit_mart_touched_settlements(wm) -%}
    {{ audit_claims_touched(wm, ['hospital_code', 'settlement_id']) }}
{%- endmacro %}

{#- The findings the findings mart re-reads by touched visit: the fee-line findings but R11-R13
    (those by line, audit_rematched_lines). Also the predicate of the mart's (hospital_code,
    visit_id) index, partial to them (the same text, so that the planner sees the implication):
    R11-R13 are ~75 % of the findings, and with the full index the stored read of the night's
    ~59k touched visits fetched every R11-R13 finding of a re-opened visit to filter it out, and
    the night's insert wrote each of its R11-R13 findings to a random leaf of that index
    (docs/scale-out.md §7.27). -#}
{% macro audit_mart_by_visit_types() -%}
    subject_type = 'fee_line' and rule_type not in ({{ audit_line_rule_types() }})
{%- endmacro %}

{% macro audit_findings_mart_keys(wm) -%}
    {%- set t = 'pg_temp.fct_audit_findings__' -%}
    {%- set line_types = "rule_type in (" ~ audit_line_rule_types() ~ ")" -%}
    {%- set visit_types = audit_mart_by_visit_types() -%}
    {%- set claim_visit_types = "subject_type = 'fee_line' and " ~ audit_decided_by_settlement() -%}
    {%- set by_visit = visit_types ~ " and (hospital_code, visit_id) in (select hospital_code, visit_id from " ~ t ~ "touched_visits)" -%}
    {%- set by_claim_visit = claim_visit_types ~ " and (hospital_code, visit_id) in (select hospital_code, visit_id from " ~ t ~ "touched_claim_visits)" -%}
    {%- set by_line = line_types ~ " and (hospital_code, subject_id) in (select hospital_code, fee_line_id from " ~ t ~ "touched_lines)" -%}
    {#- int_audit_line_rules re-derives exactly the lines the night matched (new or re-matched):
        its rows written since wm, read through its _batch_at index; the stored side reads the
        re-matched ones by_line. int_audit_claim_rules re-derives exactly the visits of by_visit
        and by_claim_visit (its pre-hook's touched visits, with the claims): its rows written
        since too, where the visits were hashed against a scan of all its findings -#}
    {%- set written = audit_written_since(wm) if wm is not none else "true" -%}
    {#- probed_sets: for each probed predicate, its key set, its findings' types, and the predicate
        of the partial index its read goes through; the stored read probes only the visits of the
        set that do not sort after the mart's greatest stored visit of their hospital among that
        index's findings (a new visit has nothing stored: macro stored_key_bound_join;
        audit_findings_mart_delete_touched). The bound repeats the index's predicate alone, so
        that the planner reads it from that index (its last entry for the hospital). -#}
    {#- idle_unless: the key sets gathered from the night's settlements, with the reads that use
        them; a set whose reads hold no row selects nothing and is left empty (audit_holds_none: a
        city without fee lines, a library without readmission rules) -#}
    {%- set by_window = "rule_type in (" ~ audit_window_rule_types() ~ ") and exists (select 1 from " ~ t ~ "touched_windows as windows where windows.patient_key = finding.patient_key and windows.rule_id = finding.rule_id and finding.charge_date >= windows.from_date)" -%}
    {%- set by_stay = "rule_type = 'readmission' and (hospital_code, patient_key) in (select hospital_code, patient_key from " ~ t ~ "touched_stays)" -%}
    {%- set by_settlement = "rule_type = 'readmission' and (hospital_code, subject_id) in (select hospital_code, settlement_id from " ~ t ~ "touched_settlements)" -%}
    {{- return({
        'temp_prefix': 'fct_audit_findings__',
        'sets': {
            'touched_windows': audit_mart_touched_windows,
            'touched_visits': audit_mart_touched_visits,
            'touched_claim_visits': audit_mart_touched_claim_visits,
            'touched_lines': audit_rematched_lines,
            'touched_stays': audit_mart_touched_stays,
            'touched_settlements': audit_mart_touched_settlements,
        },
        'models': {
            'int_audit_line_rules': [written],
            'int_audit_claim_rules': [written],
            'int_audit_daily_quantity': [by_visit, by_window],
            'int_audit_min_interval': [by_visit, by_window],
            'int_audit_course_days': [by_visit],
            'int_audit_included_in': [by_visit],
            'int_audit_repeat_exam': [by_visit, by_window],
            'int_audit_readmission': [by_stay, by_settlement],
        },
        'predicates': [by_visit, by_claim_visit, by_line, by_window, by_stay, by_settlement],
        'probed': [by_visit, by_claim_visit],
        'idle_unless': {
            'touched_claim_visits': [(this, claim_visit_types)],
            'touched_stays': [(ref('int_audit_readmission'), 'true'), (this, "rule_type = 'readmission'")],
            'touched_settlements': [(ref('int_audit_readmission'), 'true'), (this, "rule_type = 'readmission'")],
        },
        'probed_sets': {
            by_visit: ('touched_visits', visit_types, visit_types),
            by_claim_visit: ('touched_claim_visits', claim_visit_types, audit_decided_by_settlement()),
        },
    }) -}}
{%- endmacro %}

{#- fct_audit_findings' rows without their lineage columns: every finding of the finding models
    (everything), or those the key predicates select (from the pre-hook's key sets). -#}
{% macro audit_findings_mart_select(everything, wm=none) -%}
    {%- set keys = audit_findings_mart_keys(wm) -%}
    with

    findings as (
        {% for model, predicates in keys.models.items() %}
        {% set model_loop = loop %}
        {% for predicate in (['true'] if everything else predicates) %}
        select
            rule_id, rule_type, severity, hospital_code, subject_type, subject_id, visit_id,
            patient_key, charge_date, item_code, item_name, line_quantity, line_amount,
            flagged_quantity, flagged_amount, is_cross_hospital
        from {{ ref(model) }} as finding
        where {{ predicate }}
        {% if not (model_loop.last and loop.last) %}union{% endif %}
        {% endfor %}
        {% endfor %}
    )

    select
        -- ids
        rule_id,
        hospital_code,
        subject_type,
        subject_id,
        visit_id,
        patient_key,
        -- codes
        rule_type,
        severity,
        item_code,
        -- descriptions
        item_name,
        -- dates
        charge_date,
        date_trunc('month', charge_date)::date as month_start,
        -- quantities and amounts
        line_quantity::numeric(18, 4) as line_quantity,
        line_amount::numeric(18, 2) as line_amount,
        flagged_quantity::numeric(18, 4) as flagged_quantity,
        flagged_amount::numeric(18, 2) as flagged_amount,
        -- flags
        is_cross_hospital
    from findings
{%- endmacro %}

{#- A finding of fct_audit_findings (alias a) that is finding b as it is (every column but the
    lineage; one row per rule x subject, so the first three are hashed). -#}
{% macro audit_findings_same_row(a, b) -%}
    {%- set rest = ['subject_type', 'visit_id', 'patient_key', 'rule_type', 'severity', 'item_code', 'item_name',
                    'charge_date', 'month_start', 'line_quantity', 'line_amount', 'flagged_quantity',
                    'flagged_amount', 'is_cross_hospital'] -%}
    {{ a }}.rule_id = {{ b }}.rule_id
    and {{ a }}.subject_id = {{ b }}.subject_id
    and {{ a }}.hospital_code = {{ b }}.hospital_code
    and ({% for c in rest %}{{ a }}.{{ c }}{% if not loop.last %}, {% endif %}{% endfor %})
        is not distinct from ({% for c in rest %}{{ b }}.{{ c }}{% if not loop.last %}, {% endif %}{% endfor %})
{%- endmacro %}

{#- Pre-hook of fct_audit_findings: the key sets of tonight's build as temporary tables, analysed
    (the model reads them in the same session, like materialize_night_rows); the findings they
    select, copied from the finding models into pg_temp.fct_audit_findings__night, and the stored
    findings the same predicates select, with their ctid, into pg_temp.fct_audit_findings__stored
    (both analysed; one statement per predicate, each an index probe); then only the difference:
    the stored findings the night does not hold as they are are deleted by ctid (and logged), and
    the model inserts the night's findings not stored as they are. Most of the findings re-copied
    for the touched keys are the ones stored (the window groups re-walked to the same findings, the
    other findings of a visit with a late line): on a 30 M-line city 250k findings were deleted and
    written again each night for 154k new ones (docs/scale-out.md §7.9).
    The copy of the night's findings from the finding models is planned with random_page_cost
    1.1 (PostgreSQL's figure for storage whose random reads cost about what sequential ones do:
    the touched keys' pages are mostly in memory), for that statement only: with the default 4,
    the planner hashed the ~59k touched visits of a 1 M-line night against a sequential scan of
    every finding of int_audit_line_rules (3.4 M on a 30 M-line city, growing with every night)
    where one (hospital_code, visit_id) probe per visit reads the visits' findings only: 1.39 s ->
    0.95 s replayed on the history, 0.33 s either way on an empty history, where the finding models
    are small and still hashed (docs/scale-out.md §7.17). Probing every model forced (lateral
    `offset 0` subqueries) took 1.21 s on the history and 1.08 s on nothing: the small models
    cost more probed than hashed.
    The stored findings' read by visit (keys.probed) is planned without hash or merge joins, for
    that statement only (set local, then back to the defaults): for the ~59k visits of a night of
    1 M lines the planner chose a hash semi join over a sequential scan of the whole mart (4.7 M findings on a
    30 M-line city: 2.2 s, and growing with the history), where one (hospital_code, visit_id)
    probe per visit took 0.8 s (docs/scale-out.md §7.6); it probes only the touched visits that do not
    sort after the mart's greatest stored visit of their hospital among the findings it reads
    (pg_temp.fct_audit_findings__<set>_stored; most of a night's visits are new, with nothing
    stored: macro stored_key_bound_join). The R22 reads go through the partial
    index of the readmission findings (the model's post-hook). Everything (the rule library or the
    hospital registry changed): every stored finding deleted, unlogged (no finding is then older
    than fct_audit_summary_monthly, which counts everything again: audit_summary_by_difference). -#}
{#- The deletions log of the findings mart (relation: the mart), beside it in its schema (it is
    swapped with it on publish): per deleting build (_deleted_at, the build's now()), the deleted
    findings counted and summed by fct_audit_summary_monthly's grain and by the build that had
    written them (_row_batch_at, their _batch_at). fct_audit_summary_monthly follows the mart by
    difference with it and empties it (macro audit_summary_merge_night). -#}
{% macro audit_findings_deletions(findings) -%}
    {{- return(findings.incorporate(path={'identifier': findings.identifier ~ '__deletions'})) -}}
{%- endmacro %}

{% macro audit_findings_deletions_table(findings) -%}
    create table if not exists {{ audit_findings_deletions(findings) }} (
        hospital_code text not null,
        month_start date not null,
        rule_type text not null,
        severity text not null,
        finding_count bigint not null,
        flagged_amount numeric not null,
        _row_batch_at timestamptz not null,
        _deleted_at timestamptz not null
    )
{%- endmacro %}

{#- One delete of the findings mart's pre-hook, logged in audit_findings_deletions. -#}
{% macro audit_findings_delete_logged(findings, predicate) -%}
    with deleted as (
        delete from {{ findings }} where {{ predicate }}
        returning hospital_code, month_start, rule_type, severity, flagged_amount, _batch_at
    )
    insert into {{ audit_findings_deletions(findings) }}
    select hospital_code, month_start, rule_type, severity, count(*), coalesce(sum(flagged_amount), 0),
           _batch_at, now()
    from deleted
    group by hospital_code, month_start, rule_type, severity, _batch_at
{%- endmacro %}

{% macro audit_findings_mart_delete_touched() -%}
    {%- if execute and is_incremental() -%}
        {%- set wm = incremental_watermark(ref('stg_load_ledger')) -%}
        {{ audit_findings_deletions_table(this) }};
        {%- if audit_followers_everything(wm, audit_findings_mart_followed()) %}
        {#- not logged: fct_audit_summary_monthly counts everything again after a rebuild -#}
        delete from {{ this }}
        {%- else -%}
            {%- set keys = audit_findings_mart_keys(wm) -%}
            {% for name, sql in keys.sets.items() -%}
            {%- if name in keys.idle_unless and audit_holds_none(keys.idle_unless[name]) %}
            {#- no finding that this set selects, stored or tonight: its keys are not gathered -#}
            {%- do log(this.identifier ~ ": key set " ~ name ~ " not gathered (nothing it selects is held)", info=true) %}
            {{ analysed_temp_table(keys.temp_prefix ~ name, 'select * from (' ~ sql(wm) ~ ') as idle where false') }};
            {%- else %}
            {{ analysed_temp_table(keys.temp_prefix ~ name, sql(wm)) }};
            {%- endif %}
            {% endfor -%}
            set local random_page_cost = 1.1;
            {{ analysed_temp_table(keys.temp_prefix ~ 'night', audit_findings_mart_select(false, wm)) }};
            set local random_page_cost to default;
            drop table if exists pg_temp.{{ keys.temp_prefix }}stored;
            create temporary table {{ keys.temp_prefix }}stored as
            select ctid as row_ctid, * from {{ this }} limit 0;
            {% for predicate in keys.predicates -%}
            {%- if predicate in keys.probed -%}
            {%- set set_name, types, indexed = keys.probed_sets[predicate] -%}
            {%- set touched = 'pg_temp.' ~ keys.temp_prefix ~ set_name -%}
            {{ analysed_temp_table(keys.temp_prefix ~ set_name ~ '_stored',
                'select touched.hospital_code, touched.visit_id from ' ~ touched ~ ' as touched '
                ~ stored_key_bound_join(this, touched, 'touched', ['hospital_code'], 'visit_id', indexed) ~ ' where '
                ~ below_stored_max('touched.visit_id', 'bound', 'visit_id')) }};
            set local enable_hashjoin = off;
            set local enable_mergejoin = off;
            {%- set read = types ~ ' and (hospital_code, visit_id) in (select hospital_code, visit_id from ' ~ touched ~ '_stored)' %}
            {% else -%}
            {%- set read = predicate -%}
            {% endif -%}
            insert into pg_temp.{{ keys.temp_prefix }}stored
            select ctid, * from {{ this }} as finding where {{ read }};
            {%- if predicate in keys.probed %}
            set local enable_hashjoin to default;
            set local enable_mergejoin to default;
            {%- endif %}
            {% endfor -%}
            {{ analyze_temp_table('pg_temp.' ~ keys.temp_prefix ~ 'stored') }};
            {{ audit_findings_delete_logged(this, 'ctid = any (array(
                select row_ctid
                from pg_temp.' ~ keys.temp_prefix ~ 'stored as stored
                where not exists (
                    select 1
                    from pg_temp.' ~ keys.temp_prefix ~ 'night as night
                    where ' ~ audit_findings_same_row('night', 'stored') ~ '
                )
            ))') }}
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- fct_audit_summary_monthly: true when it can follow fct_audit_findings by difference tonight
    (an incremental build, and the mart still holds findings written before this table was: it
    was not rebuilt since). -#}
{% macro audit_summary_by_difference(wm) -%}
    {%- if wm is none -%}
        {{- return(false) -}}
    {%- endif -%}
    {%- set query -%}
        select coalesce(min(_batch_at) <= '{{ wm.batch_at }}'::timestamptz, false)
        from {{ ref('fct_audit_findings') }}
    {%- endset -%}
    {{- return(run_query(query).rows[0][0]) -}}
{%- endmacro %}

{#- Pre-hook of fct_audit_summary_monthly (incremental builds): by difference, the groups the
    findings mart changed since this table was written, with what they hold then (written to
    pg_temp.fct_audit_summary_monthly__merged, read by the model), their stored rows deleted;
    otherwise every stored row deleted (the model counts everything again). -#}
{% macro audit_summary_merge_night() -%}
    {%- if execute and is_incremental() -%}
        {%- set wm = incremental_watermark(ref('stg_load_ledger')) -%}
        {%- set findings = ref('fct_audit_findings') -%}
        {%- set grain = ['hospital_code', 'month_start', 'rule_type', 'severity'] -%}
        {%- if audit_summary_by_difference(wm) -%}
        {{ audit_findings_deletions_table(findings) }};
        drop table if exists pg_temp.{{ this.identifier }}__merged;
        create temporary table {{ this.identifier }}__merged as
        with changes as (
            select {{ grain | join(', ') }}, count(*) as finding_count, sum(flagged_amount) as flagged_amount
            from {{ findings }}
            where _batch_at > '{{ wm.batch_at }}'::timestamptz
            group by {{ grain | join(', ') }}

            union all

            select {{ grain | join(', ') }}, -sum(finding_count), -sum(flagged_amount)
            from {{ audit_findings_deletions(findings) }}
            where _deleted_at > '{{ wm.batch_at }}'::timestamptz
              and _row_batch_at <= '{{ wm.batch_at }}'::timestamptz
            group by {{ grain | join(', ') }}
        ),
        changed as (
            select {{ grain | join(', ') }}, sum(finding_count) as finding_count, sum(flagged_amount) as flagged_amount
            from changes
            group by {{ grain | join(', ') }}
        )
        select
            {% for c in grain %}changed.{{ c }},
            {% endfor -%}
            coalesce(stored.finding_count, 0) + changed.finding_count as finding_count,
            coalesce(stored.flagged_amount, 0) + changed.flagged_amount as flagged_amount
        from changed
        left join {{ this }} as stored
            on {% for c in grain %}stored.{{ c }} = changed.{{ c }}{% if not loop.last %} and {% endif %}{% endfor %};
        delete from {{ this }} as stored
        using pg_temp.{{ this.identifier }}__merged as merged
        where {% for c in grain %}stored.{{ c }} = merged.{{ c }}{% if not loop.last %} and {% endif %}{% endfor %}
        {%- else -%}
        delete from {{ this }}
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- Post-hook of fct_audit_summary_monthly: the findings mart's deletions are counted now (every
    one logged by a build before this one: the builds of a schema run one after the other). -#}
{% macro audit_summary_empty_deletions() -%}
    {%- if execute -%}
        {%- set findings = ref('fct_audit_findings') -%}
        {{ audit_findings_deletions_table(findings) }};
        delete from {{ audit_findings_deletions(findings) }} where _deleted_at <= now()
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
