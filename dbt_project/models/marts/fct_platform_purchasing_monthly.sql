{{ config(
    materialized='incremental',
    incremental_strategy='delete_insert_probed',
    unique_key=['hospital_code', 'purchase_month'],
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'purchase_month'], 'unique': true},
        {'columns': ['_batch_at']},
    ],
    post_hook="{{ delete_emptied_groups('purchase_line_count = 0') }}"
) }}

-- R4 platform purchasing (阳光采购): per hospital and month of delivery, the amount of purchase
-- lines (latest versions, returns net out) bought off the provincial platform (via_platform = N).
--
-- Incremental by touched group (macros/purchases.sql): the (hospital, month) groups of every
-- version of the purchase lines loaded since this table was written are aggregated again, each
-- from the latest versions of its lines (one range of raw.purchase's (hospital_code,
-- delivery_date, consumable_code) index); a month left without a line is removed.

{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}

{% if is_incremental() %}

with touched_months as (

    select distinct
        hospital_code,
        date_trunc('month', delivery_date)::date as purchase_month
    from ({{ purchase_versions_touched(wm) }}) as versions
    where delivery_date is not null

),

totals as (

    select
        touched_months.hospital_code,
        touched_months.purchase_month,
        month_totals.*
    from touched_months
    -- one index range per month (an aggregate in a lateral sub-query is never flattened into a
    -- join of the whole history)
    cross join lateral (
        select
            sum(purchases.amount) as purchase_amount,
            sum(purchases.amount) filter (where not purchases.is_via_platform) as off_platform_amount,
            count(*) as purchase_line_count,
            count(*) filter (where not purchases.is_via_platform) as off_platform_line_count
        from {{ ref('stg_purchase_lines') }} as purchases
        where purchases.hospital_code = touched_months.hospital_code
          and purchases.delivery_date >= touched_months.purchase_month
          and purchases.delivery_date < (touched_months.purchase_month + interval '1 month')::date
    ) as month_totals

)

{% else %}

with purchases as (

    select
        hospital_code,
        date_trunc('month', delivery_date)::date as purchase_month,
        amount,
        is_via_platform
    from {{ ref('stg_purchase_lines') }}
    where delivery_date is not null

),

totals as (

    select
        hospital_code,
        purchase_month,
        sum(amount) as purchase_amount,
        sum(amount) filter (where not is_via_platform) as off_platform_amount,
        count(*) as purchase_line_count,
        count(*) filter (where not is_via_platform) as off_platform_line_count
    from purchases
    group by 1, 2

)

{% endif %}

select
    -- ids
    hospital_code,
    purchase_month,
    -- amounts
    purchase_amount::numeric(18, 2) as purchase_amount,
    coalesce(off_platform_amount, 0)::numeric(18, 2) as off_platform_amount,
    -- counts
    purchase_line_count::integer as purchase_line_count,
    off_platform_line_count::integer as off_platform_line_count,
    -- rates
    case
        when purchase_amount <> 0
            then round(coalesce(off_platform_amount, 0) / purchase_amount, 4)
    end::numeric(9, 4) as off_platform_share,
    -- lineage
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from totals
