{{ config(
    materialized='incremental',
    incremental_strategy='delete_insert_probed',
    unique_key=['hospital_code', 'consumable_code', 'delivery_date'],
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'consumable_code', 'delivery_date'], 'unique': true},
        {'columns': ['_batch_at']},
    ],
    post_hook="{{ delete_emptied_groups('reference_price is null') }}"
) }}

-- R1 reference-price candidates: per hospital, consumable code and delivery date, the highest
-- unit_price among the latest versions of purchase lines with quantity > 0 (returns never set a
-- reference price). A usage line is priced against the row with the latest delivery_date on or
-- before its use date (int_usage_priced_against_purchases).
--
-- Incremental by touched group (macros/purchases.sql): the (hospital, code, date) groups of every
-- version of the purchase lines loaded since this table was written are computed again, each
-- from the latest versions of its lines (one range of raw.purchase's (hospital_code,
-- delivery_date, consumable_code) index); a group left without a candidate is removed.

{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}

{% if is_incremental() %}

with touched_groups as (

    select distinct hospital_code, consumable_code, delivery_date
    from ({{ purchase_versions_touched(wm) }}) as versions
    where consumable_code is not null
      and delivery_date is not null

),

ranked as (

    select
        touched_groups.hospital_code,
        touched_groups.consumable_code,
        touched_groups.delivery_date,
        highest.unit_price,
        highest.purchase_line_id
    from touched_groups
    -- one probe per group (a lateral `limit`, never flattened into a join of the whole history)
    left join lateral (
        select purchases.unit_price, purchases.purchase_line_id
        from {{ ref('stg_purchase_lines') }} as purchases
        where purchases.hospital_code = touched_groups.hospital_code
          and purchases.consumable_code = touched_groups.consumable_code
          and purchases.delivery_date = touched_groups.delivery_date
          and purchases.quantity > 0
          and purchases.unit_price is not null
        order by purchases.unit_price desc, purchases.purchase_line_id
        limit 1
    ) as highest on true

)

{% else %}

with purchases as (

    select
        hospital_code,
        purchase_line_id,
        consumable_code,
        delivery_date,
        unit_price
    from {{ ref('stg_purchase_lines') }}
    where quantity > 0
      and consumable_code is not null
      and delivery_date is not null
      and unit_price is not null

),

ranked as (

    select
        hospital_code,
        consumable_code,
        delivery_date,
        unit_price,
        purchase_line_id
    from (
        select
            *,
            row_number() over (
                partition by hospital_code, consumable_code, delivery_date
                order by unit_price desc, purchase_line_id
            ) as price_rank
        from purchases
    ) as candidates
    where price_rank = 1

)

{% endif %}

select
    hospital_code,
    consumable_code,
    delivery_date,
    unit_price as reference_price,
    purchase_line_id as reference_purchase_line_id,
    -- lineage
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from ranked
