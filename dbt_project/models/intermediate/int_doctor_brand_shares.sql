{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'doctor_code', 'period_month', 'category_prefix'], 'unique': true},
        {'columns': ['period_month']},
        {'columns': ['_batch_at']},
    ],
    pre_hook="{{ r9_brand_shares_delete_touched() }}"
) }}

-- R9 single-brand concentration (异常使用预警): per hospital, doctor, month of use and VBP
-- category_prefix, the net quantity used (refunds net out) and the share of the largest brand.
-- Brand = the 5-digit 生产企业 segment of the consumable code (characters 16-20).
-- top_brand_share is for display; the alert threshold compares the exact quantities.
--
-- Incremental by month (macros/r9.sql): the pre-hook deletes the months touched since this table
-- was written (the months, now and before, of every usage line re-priced since: a late,
-- refunded or corrected line of any month); this query re-derives those months whole from the
-- lines dated in them (through the usage_date index). Every month on the first build and when
-- the VBP batches changed.


-- depends_on: {{ ref('stg_usage_line_versions') }}
{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = r9_everything(wm, [ref('stg_vbp_batches')]) %}

with usage_lines as (

    select
        lines.hospital_code,
        lines.doctor_code,
        lines.consumable_code,
        substr(lines.consumable_code, 16, 5) as brand_code,
        date_trunc('month', lines.used_at)::date as period_month,
        lines.quantity
    from {{ ref('int_usage_priced_against_payment_standard') }} as lines
    {% if not everything %}
    inner join {{ r9_touched_table() }} as touched
        on {{ r9_in_touched_month('lines') }}
    {% endif %}
    where lines.doctor_code is not null
      and lines.used_at is not null
      and length(lines.consumable_code) >= 20

),

categories as (

    select distinct category_prefix
    from {{ ref('stg_vbp_batches') }}
    where category_prefix is not null

),

brand_quantities as (

    select
        usage_lines.hospital_code,
        usage_lines.doctor_code,
        usage_lines.period_month,
        categories.category_prefix,
        usage_lines.brand_code,
        sum(usage_lines.quantity) as brand_quantity
    from usage_lines
    inner join categories
        on left(usage_lines.consumable_code, length(categories.category_prefix)) = categories.category_prefix
    group by 1, 2, 3, 4, 5

),

ranked as (

    select
        *,
        sum(brand_quantity) over (
            partition by hospital_code, doctor_code, period_month, category_prefix
        ) as net_quantity,
        row_number() over (
            partition by hospital_code, doctor_code, period_month, category_prefix
            order by brand_quantity desc, brand_code
        ) as brand_rank,
        count(*) over (
            partition by hospital_code, doctor_code, period_month, category_prefix
        ) as brand_count
    from brand_quantities

)

select
    -- ids
    hospital_code,
    doctor_code,
    period_month,
    category_prefix,
    brand_code as top_brand_code,
    -- measures
    brand_count::integer as brand_count,
    net_quantity::numeric(18, 4) as net_quantity,
    brand_quantity::numeric(18, 4) as top_brand_quantity,
    case when net_quantity > 0 then round(brand_quantity / net_quantity, 10) end::numeric(18, 10)
        as top_brand_share,
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from ranked
where brand_rank = 1
