{{ config(
    indexes=[
        {'columns': ['hospital_code', 'consumable_code', 'delivery_date'], 'unique': true},
    ]
) }}

-- R1 reference-price candidates: per hospital, consumable code and delivery date, the highest
-- unit_price among the latest versions of purchase lines with quantity > 0 (returns never set a
-- reference price). A usage line is priced against the row with the latest delivery_date on or
-- before its use date (int_usage_priced_against_purchases).
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
        *,
        row_number() over (
            partition by hospital_code, consumable_code, delivery_date
            order by unit_price desc, purchase_line_id
        ) as price_rank
    from purchases

)

select
    hospital_code,
    consumable_code,
    delivery_date,
    unit_price as reference_price,
    purchase_line_id as reference_purchase_line_id
from ranked
where price_rank = 1
