{{ config(
    materialized='incremental',
    incremental_strategy='delete_insert_probed',
    unique_key=['hospital_code', 'purchase_line_id'],
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'purchase_line_id', 'batch_id'], 'unique': true},
        {'columns': ['_batch_at']},
    ],
    post_hook="{{ delete_emptied_groups('batch_id is null') }}"
) }}

-- R2/R3/R5 purchase lines (latest versions) of codes under a VBP batch's category_prefix,
-- delivered within the batch's purchasing cycle; one row per line and batch. is_selected_product
-- marks a selected code of the batch (with its product group and selected price);
-- is_price_violation a selected product bought (quantity > 0) at a unit_price more than 0.01
-- away from its selected price.
--
-- Incremental by purchase line (macros/purchases.sql): the lines with a version loaded since this
-- table was written are matched again (each read through raw.purchase's natural-key index), and
-- their stored rows replaced; a line that now falls under no batch leaves the table. Every line
-- is matched again when the VBP batch or product files changed.

{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = (not is_incremental())
        or reference_changed_since(wm, [ref('stg_vbp_batches'), ref('stg_vbp_products')]) %}

with

{% if everything %}

purchases as (

    select *
    from {{ ref('stg_purchase_lines') }}
    where consumable_code is not null
      and delivery_date is not null

),

{% else %}

touched_lines as (

    select distinct hospital_code, purchase_line_id
    from ({{ purchase_versions_touched(wm) }}) as versions

),

purchases as (

    select latest.*
    from touched_lines
    -- the line's latest version, one probe of the natural-key index per line (`offset 0`: never
    -- turned into a scan of every purchase line)
    cross join lateral (
        select *
        from {{ ref('stg_purchase_lines') }} as lines
        where lines.hospital_code = touched_lines.hospital_code
          and lines.purchase_line_id = touched_lines.purchase_line_id
        offset 0
    ) as latest
    where latest.consumable_code is not null
      and latest.delivery_date is not null

),

{% endif %}

batches as (

    select *
    from {{ ref('stg_vbp_batches') }}

),

selected_codes as (

    select
        batch_id,
        consumable_code,
        min(product_group) as product_group,
        max(selected_price) as selected_price
    from {{ ref('stg_vbp_products') }}
    group by 1, 2

),

-- computed once (`materialized`): joined below to the night's lines, which PostgreSQL estimates at
-- one row, it was nested inside a loop over them and matched every line again for each (201 x 201
-- probes of the natural-key index, 0.36 s, on the 30 M-claim year's night)
matched as materialized (

    select
        -- ids
        purchases.hospital_code,
        purchases.purchase_line_id,
        batches.batch_id,
        selected_codes.product_group,
        -- codes
        purchases.consumable_code,
        batches.category_prefix,
        purchases.supplier_uscc,
        -- quantities, prices and amounts
        purchases.quantity,
        purchases.unit_price,
        purchases.amount,
        selected_codes.selected_price,
        purchases.paid_amount,
        -- flags
        selected_codes.consumable_code is not null as is_selected_product,
        coalesce(
            selected_codes.consumable_code is not null
            and purchases.quantity > 0
            and abs(purchases.unit_price - selected_codes.selected_price) > 0.01,
            false
        ) as is_price_violation,
        -- dates
        purchases.order_date,
        purchases.delivery_date,
        purchases.paid_date,
        batches.cycle_start_date,
        batches.cycle_end_date
    from purchases
    inner join batches
        on left(purchases.consumable_code, length(batches.category_prefix)) = batches.category_prefix
       and purchases.delivery_date between batches.cycle_start_date and batches.cycle_end_date
    left join selected_codes
        on batches.batch_id = selected_codes.batch_id
       and purchases.consumable_code = selected_codes.consumable_code

)

{%- set matched_columns = [
    'batch_id', 'product_group', 'consumable_code', 'category_prefix', 'supplier_uscc', 'quantity',
    'unit_price', 'amount', 'selected_price', 'paid_amount', 'is_selected_product', 'is_price_violation',
    'order_date', 'delivery_date', 'paid_date', 'cycle_start_date', 'cycle_end_date',
] %}

{% if not is_incremental() %}

select
    matched.*,
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from matched

{% else %}

-- the lines matched again: tonight's, or every line stored or matched when the VBP files changed.
-- A line under no batch now gets one row with its key only (batch_id null), which deletes its
-- stored rows (the strategy deletes by line) and is removed by the post-hook.
select
    lines.hospital_code,
    lines.purchase_line_id,
    {%- for c in matched_columns %}
    matched.{{ c }},
    {%- endfor %}
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from (
    {%- if everything %}
    select hospital_code, purchase_line_id from matched
    union
    select hospital_code, purchase_line_id from {{ this }}
    {%- else %}
    select hospital_code, purchase_line_id from touched_lines
    {%- endif %}
) as lines
left join matched
    on matched.hospital_code = lines.hospital_code
   and matched.purchase_line_id = lines.purchase_line_id

{% endif %}
