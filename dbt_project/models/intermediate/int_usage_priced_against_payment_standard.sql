{{ config(
    materialized='incremental',
    incremental_strategy='delete_insert_probed',
    unique_key=['hospital_code', 'usage_id'],
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'usage_id'], 'unique': true},
        {'columns': ['hospital_code', 'visit_id']},
        {'columns': ['_batch_at']},
    ],
    post_hook=[
        "{{ ensure_index(['hospital_code', 'surgery_id']) }}",
        "{{ ensure_index(['usage_date']) }}",
    ]
) }}

-- R3 payment standard (支付标准) and R6 unreasonable excess per usage line.
-- Payment standard of a code under a VBP batch's category_prefix, for a batch whose cycle covers
-- the use date: the selected_price when the code is a selected product of the batch, else the
-- highest selected_price of the batch. When several batches qualify, the one selecting the code
-- wins, then the longest prefix, then the latest cycle start.
-- standard_excess = max(0, charge - standard) x quantity, 0.01 half-up per line.
-- unreasonable_excess = max(markup_excess, standard_excess); for a refund line the negative one
-- of larger magnitude (so a refund cancels its original).
--
-- Incremental: lines R1 re-priced since this table was written; everything when the VBP
-- reference files changed. The (hospital_code, surgery_id) and usage_date indexes serve R9's
-- incremental models (macros/r9.sql: a touched surgery's lines, a touched month's lines).

{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = (not is_incremental())
        or reference_changed_since(wm, [ref('stg_vbp_batches'), ref('stg_vbp_products')]) %}

with batches as (

    select
        batches.batch_id,
        batches.category_prefix,
        batches.cycle_start_date,
        batches.cycle_end_date,
        max(products.selected_price) as highest_selected_price
    from {{ ref('stg_vbp_batches') }} as batches
    inner join {{ ref('stg_vbp_products') }} as products
        on batches.batch_id = products.batch_id
    group by 1, 2, 3, 4

),

selected_codes as (

    select
        batch_id,
        consumable_code,
        max(selected_price) as selected_price
    from {{ ref('stg_vbp_products') }}
    group by 1, 2

),

lines as (

    select *
    from {{ ref('int_usage_priced_against_purchases') }}
    {% if not everything %}
    where _batch_at > '{{ wm.batch_at }}'::timestamptz
    {% endif %}

),

standards as (

    select
        lines.*,
        standard.batch_id as payment_standard_batch_id,
        standard.payment_standard_price,
        coalesce(standard.is_selected_product, false) as is_selected_product
    from lines
    left join lateral (
        select
            batches.batch_id,
            coalesce(selected_codes.selected_price, batches.highest_selected_price)::numeric(18, 4)
                as payment_standard_price,
            selected_codes.consumable_code is not null as is_selected_product
        from batches
        left join selected_codes
            on batches.batch_id = selected_codes.batch_id
           and selected_codes.consumable_code = lines.consumable_code
        where left(lines.consumable_code, length(batches.category_prefix)) = batches.category_prefix
          and lines.usage_date between batches.cycle_start_date and batches.cycle_end_date
        order by
            (selected_codes.consumable_code is not null) desc,
            length(batches.category_prefix) desc,
            batches.cycle_start_date desc,
            batches.batch_id
        limit 1
    ) as standard on true

),

excess as (

    select
        standards.*,
        case
            when payment_standard_price is null then 0
            else round(greatest(charge_unit_price - payment_standard_price, 0) * quantity, 2)
        end::numeric(18, 2) as standard_excess_amount
    from standards

)

select
    -- ids
    hospital_code,
    usage_id,
    visit_id,
    surgery_id,
    patient_key,
    -- codes
    dept_code,
    doctor_code,
    consumable_code,
    udi_di,
    batch_no,
    payment_standard_batch_id,
    -- patient attributes
    patient_sex,
    patient_birth_year,
    -- quantities, prices and amounts
    quantity,
    charge_unit_price,
    charge_amount,
    reference_price,
    reference_purchase_line_id,
    reference_delivery_date,
    payment_standard_price,
    markup_excess_amount,
    standard_excess_amount,
    case
        when quantity < 0 then least(markup_excess_amount, standard_excess_amount)
        else greatest(markup_excess_amount, standard_excess_amount)
    end::numeric(18, 2) as unreasonable_excess_amount,
    -- flags
    is_untraceable,
    is_selected_product,
    -- dates
    used_at,
    usage_date,
    -- lineage
    business_date,
    load_id,
    source_row,
    _prior_visit_ids,
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from excess
