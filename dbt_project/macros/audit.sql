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
