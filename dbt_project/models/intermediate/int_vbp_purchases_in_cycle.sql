-- R2/R3/R5 purchase lines (latest versions) of codes under a VBP batch's category_prefix,
-- delivered within the batch's purchasing cycle; one row per line and batch. is_selected_product
-- marks a selected code of the batch (with its product group and selected price);
-- is_price_violation a selected product bought (quantity > 0) at a unit_price more than 0.01
-- away from its selected price.
with purchases as (

    select *
    from {{ ref('stg_purchase_lines') }}
    where consumable_code is not null
      and delivery_date is not null

),

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

)

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
