{{ config(
    materialized='incremental',
    incremental_strategy='delete_insert_probed',
    unique_key=['hospital_code', 'usage_id'],
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'usage_id'], 'unique': true},
        {'columns': ['_batch_at']},
    ],
    post_hook="{{ last_batch_statistics() }}"
) }}

-- One row per usage line (latest version): R1 reference price and markup excess, R3 payment
-- standard and standard excess, R6 unreasonable excess.
-- Incremental: the lines re-priced upstream since this table was written (this schema may lag
-- a night behind when the pipeline swaps marts_build and marts).

{%- set wm = incremental_watermark() %}

select
    -- ids
    hospital_code,
    usage_id,
    visit_id,
    surgery_id,
    -- codes
    consumable_code,
    dept_code,
    doctor_code,
    payment_standard_batch_id,
    -- timestamps and dates
    used_at,
    usage_date,
    -- quantities and prices
    quantity,
    charge_unit_price,
    charge_amount,
    reference_price,
    reference_purchase_line_id,
    reference_delivery_date,
    payment_standard_price,
    -- amounts
    markup_excess_amount,
    standard_excess_amount,
    unreasonable_excess_amount,
    -- flags
    is_untraceable,
    is_selected_product,
    -- lineage
    business_date,
    load_id,
    {{ as_of_date() }} as _through_as_of,
    now() as _batch_at
from {{ ref('int_usage_priced_against_payment_standard') }}
{% if is_incremental() %}
where _batch_at > '{{ wm.batch_at }}'::timestamptz
{% endif %}
