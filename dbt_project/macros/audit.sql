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

{#- int_audit_rule_matches, incremental: the fee lines to (re)match tonight, as a predicate on
    stg_fee_lines; none when every line is (first build, or the rule library changed). -#}
{% macro audit_matches_changed_lines(wm) -%}
    {%- if wm is none or reference_changed_since(wm, [ref('stg_audit_rules')]) -%}
        {{- return(none) -}}
    {%- endif -%}
    {{- return(loaded_since(wm)) -}}
{%- endmacro %}

{#- Incremental fee-line finding models (R11-R13, R15-R18, R20). Each re-derives, from
    int_audit_rule_matches, every group of its rule (the window the rule decides over, e.g.
    patient x rule for R16) that a match written since the model's watermark touches, whether by
    its current keys or by the keys the line had before (_prior_keys): a pre-hook deletes the
    stored findings of those groups, the model appends the findings it re-derives for them. A
    group is read whole (the patient's history for that rule), nothing else is read.
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

{% macro audit_touched_groups(wm, rule_types, group_columns) -%}
    {%- set types = "'" ~ (rule_types | join("', '")) ~ "'" -%}
    select distinct {{ group_columns | join(', ') }}
    from (
        select {{ group_columns | join(', ') }}
        from {{ ref('int_audit_rule_matches') }}
        where _batch_at > '{{ wm.batch_at }}'::timestamptz
          and rule_type in ({{ types }})

        union all

        select
            {% for c in group_columns %}{{ audit_prior_key_column(c) }} as {{ c }}{% if not loop.last %}, {% endif %}{% endfor %}
        from {{ ref('int_audit_rule_matches') }} as matches
        cross join lateral jsonb_array_elements(matches._prior_keys) as prior (key)
        where matches._batch_at > '{{ wm.batch_at }}'::timestamptz
          and prior.key ->> 'rule_type' in ({{ types }})
    ) as touched
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

{#- Predicate on the matches a finding model reads. -#}
{% macro audit_touched_filter(wm, everything, rule_types, group_columns, alias='') -%}
    {%- if everything -%}
        true
    {%- else -%}
        {%- set p = (alias ~ '.') if alias else '' -%}
        ({% for c in group_columns %}{{ p }}{{ c }}{% if not loop.last %}, {% endif %}{% endfor %}) in (
            {{ audit_touched_groups(wm, rule_types, group_columns) }}
        )
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook: delete the stored findings of the groups re-derived tonight. -#}
{% macro audit_findings_delete_touched(rule_types, group_columns, references=[]) -%}
    {%- if execute and is_incremental() -%}
        {%- set wm = incremental_watermark(ref('stg_load_ledger')) -%}
        {%- if audit_findings_everything(wm, references) -%}
            delete from {{ this }}
        {%- else -%}
            delete from {{ this }} as stored
            using ({{ audit_touched_groups(wm, rule_types, group_columns) }}) as groups
            where {% for c in group_columns -%}
                stored.{{ 'subject_id' if c == 'fee_line_id' else c }} = groups.{{ c }}
                {%- if not loop.last %} and {% endif %}
            {%- endfor %}
              and stored.rule_type in ('{{ rule_types | join("', '") }}')
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
