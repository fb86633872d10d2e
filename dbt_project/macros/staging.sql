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
