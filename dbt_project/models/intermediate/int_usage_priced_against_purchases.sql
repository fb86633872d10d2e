{{ config(
    materialized='incremental',
    incremental_strategy='delete_insert_probed',
    unique_key=['hospital_code', 'usage_id'],
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'usage_id'], 'unique': true},
        {'columns': ['hospital_code', 'consumable_code', 'usage_date']},
        {'columns': ['hospital_code', 'reference_purchase_line_id']},
        {'columns': ['_batch_at']},
    ]
) }}

-- depends_on: {{ ref('stg_purchase_lines') }}

-- R1 zero markup (零差率): each usage line (latest version) priced against the hospital's own
-- purchases. Reference price = unit_price of the purchase line (latest version, quantity > 0) of
-- the same consumable code with the latest delivery_date <= date(used_at); among several that
-- day the highest (int_purchase_reference_prices). markup_excess = max(0, charge - reference)
-- x quantity, rounded half-up to 0.01 per line (a refund line is negative and nets out its
-- original); no purchase on or before the use date = untraceable, no reference, excess 0.
--
-- Incremental: re-prices the usage lines whose latest version is new, plus the stored lines a
-- changed purchase line can affect (it was their reference, or it may now be: same code,
-- delivered on or before the use date and not earlier than their current reference). A purchase
-- line re-sent without a change to what a reference price is made of (the payment filled in, the
-- routine re-send of every line once its supplier is paid) is not a change here: re-pricing the
-- lines it is the reference of rewrote them unchanged, and every model downstream re-derived
-- them and their visits' settlements.

{%- set usage_columns = [
    'hospital_code', 'usage_id', 'visit_id', 'surgery_id', 'patient_key',
    'dept_code', 'doctor_code', 'consumable_code', 'udi_di', 'batch_no',
    'patient_sex', 'patient_birth_year',
    'quantity', 'charge_unit_price', 'charge_amount', 'used_at',
    'business_date', 'load_id', 'source_row',
] %}
{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}

with

{% if is_incremental() %}

changed_usage as (

    select *
    from {{ ref('stg_usage_lines') }}
    where {{ loaded_since(wm) }}

),

changed_purchases as (

    select
        changed.hospital_code,
        changed.purchase_line_id,
        changed.consumable_code,
        changed.delivery_date,
        changed.quantity
    from {{ ref('stg_purchase_lines') }} as changed
    -- the version the stored prices were computed with: the latest one the previous build saw
    -- (one backward probe of the natural-key index)
    left join lateral (
        select
            true as found,
            previous.consumable_code,
            previous.delivery_date,
            previous.unit_price,
            previous.quantity
        from {{ source('raw', 'purchase') }} as previous
        where previous.hospital_code = changed.hospital_code
          and previous.purchase_line_id = changed.purchase_line_id
          and previous.load_id <= {{ wm.load_id }}
          and previous.business_date <= date '{{ wm.as_of }}'
        order by previous.business_date desc, previous.load_id desc, previous.source_row desc
        limit 1
    ) as previous on true
    where {{ loaded_since(wm, 'changed') }}
      -- a re-send that changes nothing a reference price is made of (what
      -- int_purchase_reference_prices reads: code, delivery date, unit price, quantity > 0), such
      -- as the payment filled in when the supplier is paid, re-prices nothing
      and (
          previous.found is null
          or previous.consumable_code is distinct from changed.consumable_code
          or previous.delivery_date is distinct from changed.delivery_date
          or previous.unit_price is distinct from changed.unit_price
          or (previous.quantity > 0) is distinct from (changed.quantity > 0)
      )

),

repriced_keys as (

    select stored.hospital_code, stored.usage_id
    from {{ this }} as stored
    inner join changed_purchases
        on stored.hospital_code = changed_purchases.hospital_code
       and stored.reference_purchase_line_id = changed_purchases.purchase_line_id

    union

    select stored.hospital_code, stored.usage_id
    from {{ this }} as stored
    inner join changed_purchases
        on stored.hospital_code = changed_purchases.hospital_code
       and stored.consumable_code = changed_purchases.consumable_code
       and changed_purchases.quantity > 0
       and changed_purchases.delivery_date <= stored.usage_date
       and (stored.reference_delivery_date is null
            or stored.reference_delivery_date <= changed_purchases.delivery_date)

),

usage_lines as (

    select
        {% for c in usage_columns %}changed_usage.{{ c }},
        {% endfor -%}
        -- visits this line belonged to in versions processed before (for R6 re-deduction)
        (
            select coalesce(jsonb_agg(distinct prior.visit_id order by prior.visit_id), '[]'::jsonb)
            from (
                select jsonb_array_elements_text(stored._prior_visit_ids) as visit_id
                union all
                select stored.visit_id
            ) as prior
            where prior.visit_id is not null
              and prior.visit_id is distinct from changed_usage.visit_id
        ) as _prior_visit_ids
    from changed_usage
    left join {{ this }} as stored
        on changed_usage.hospital_code = stored.hospital_code
       and changed_usage.usage_id = stored.usage_id

    union all

    select
        {% for c in usage_columns %}stored.{{ c }},
        {% endfor -%}
        stored._prior_visit_ids
    from {{ this }} as stored
    inner join repriced_keys
        on stored.hospital_code = repriced_keys.hospital_code
       and stored.usage_id = repriced_keys.usage_id
    -- less the lines changed tonight: `not in` stays a hashed sub-plan (one hash of the night's
    -- lines); as a `not exists` the planner, estimating the night at one row, rescanned the
    -- night's lines once per stored line (2,960 x 3,335 rows, 2.2 s on the 100-hospital year)
    where (stored.hospital_code, stored.usage_id) not in (
        select changed_usage.hospital_code, changed_usage.usage_id
        from changed_usage
    )

),

{% else %}

usage_lines as (

    select
        {% for c in usage_columns %}{{ c }},
        {% endfor -%}
        '[]'::jsonb as _prior_visit_ids
    from {{ ref('stg_usage_lines') }}

),

{% endif %}

priced as (

    select
        usage_lines.*,
        usage_lines.used_at::date as usage_date,
        reference.reference_price,
        reference.reference_purchase_line_id,
        reference.reference_delivery_date
    from usage_lines
    left join lateral (
        select
            prices.reference_price,
            prices.reference_purchase_line_id,
            prices.delivery_date as reference_delivery_date
        from {{ ref('int_purchase_reference_prices') }} as prices
        where prices.hospital_code = usage_lines.hospital_code
          and prices.consumable_code = usage_lines.consumable_code
          and prices.delivery_date <= usage_lines.used_at::date
        order by prices.delivery_date desc
        limit 1
    ) as reference on true

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
    (reference_price is null) as is_untraceable,
    case
        when reference_price is null then 0
        else round(greatest(charge_unit_price - reference_price, 0) * quantity, 2)
    end::numeric(18, 2) as markup_excess_amount,
    -- dates
    used_at,
    usage_date,
    -- lineage
    business_date,
    load_id,
    source_row,
    _prior_visit_ids,
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from priced
