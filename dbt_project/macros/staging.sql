{#- stg_fee_lines' renaming of raw.fee_detail rows (`relation`: a CTE of raw rows), shared with
    stg_fee_lines_since below so that the two read the same columns the same way. `extra`: more
    columns of `relation` to pass through. -#}
{% macro stg_fee_lines_renamed(relation, extra=[]) %}
    select
        -- ids
        hospital_code,
        fee_line_id,
        visit_id,
        patient_key,
        -- codes
        item_type,
        item_code,
        dept_code,
        doctor_code,
        exam_result,
        -- descriptions
        item_name,
        -- patient attributes (pseudonymised at load; age in completed days on the charge date)
        patient_sex,
        patient_age_days,
        -- quantities and amounts
        quantity::numeric(18, 4) as quantity,
        unit_price::numeric(18, 4) as unit_price,
        amount::numeric(18, 2) as amount,
        -- dates and timestamps
        charged_at,
        charged_at::date as charge_date,
        -- lineage
        business_date,
        load_id,
        source_row,
        source_file,
        loaded_at
        {%- for column in extra %},
        {{ column }}
        {%- endfor %}
    from {{ relation }}
{% endmacro %}

{#- The rows of stg_fee_lines loaded since an incremental model's watermark (macro loaded_since),
    with _has_other_versions: whether the line has any other version in raw through the as-of date.
    For int_audit_rule_matches' pre-hook, which must find the stored matches of a line's earlier
    versions: one descent of the natural-key index per row gives both facts (macro
    latest_version_since), so the stored matches are probed only for the lines that have another
    version (~2 % of a night's lines), not for every line (docs/scale-out.md §7.7). Raw is
    append-only (the loader deletes only duplicate keys of the load it is writing), so a line whose
    only version is tonight's has nothing stored. -#}
{% macro stg_fee_lines_since(wm) %}
    with latest as (
        {{ latest_version_since(source('raw', 'fee_detail'), 'fee_line_id', loaded_since(wm, 'source')) }}
    )
    {{ stg_fee_lines_renamed('latest', ['_has_other_versions']) }}
{% endmacro %}

{#- stg_claims' renaming of raw.claim rows (`relation`: a CTE of raw rows), shared with
    stg_claims_since below. `extra`: more columns of `relation` to pass through. -#}
{% macro stg_claims_renamed(relation, extra=[]) %}
    select
        -- ids
        hospital_code,
        settlement_id,
        visit_id,
        patient_key,
        nullif(trim(reversal_of), '') as reversal_of,
        -- codes
        insurance_type as insurance_type_code,
        medical_category as medical_category_code,
        principal_diagnosis as principal_diagnosis_code,
        drg_code,
        -- patient attributes (pseudonymised at load)
        patient_sex,
        patient_birth_year,
        -- amounts
        total_amount::numeric(18, 2) as total_amount,
        fund_paid::numeric(18, 2) as fund_paid_amount,
        other_fund_paid::numeric(18, 2) as other_fund_paid_amount,
        account_paid::numeric(18, 2) as account_paid_amount,
        cash_paid::numeric(18, 2) as cash_paid_amount,
        negotiated_drug_amount::numeric(18, 2) as negotiated_drug_amount,
        -- dates and timestamps
        admission_date,
        discharge_date,
        settled_at,
        -- lineage
        business_date,
        load_id,
        source_row,
        source_file,
        loaded_at,
        extra as extra_columns
        {%- for column in extra %},
        {{ column }}
        {%- endfor %}
    from {{ relation }}
{% endmacro %}

{#- The rows of stg_claims loaded since an incremental model's watermark (macro loaded_since), with
    _has_other_versions, as stg_fee_lines_since: for int_claims_with_deductions' pre-hook, so that
    it probes its stored settlements only for the night's settlements with another version in raw
    (~2 % of a night). A settlement whose only version is tonight's has nothing stored: raw is
    append-only, and a stored row was read from a version loaded before the watermark. -#}
{% macro stg_claims_since(wm) %}
    with latest as (
        {{ latest_version_since(source('raw', 'claim'), 'settlement_id', loaded_since(wm, 'source')) }}
    )
    {{ stg_claims_renamed('latest', ['_has_other_versions']) }}
{% endmacro %}
