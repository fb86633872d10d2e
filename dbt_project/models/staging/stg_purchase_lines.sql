-- 采购入库明细: latest version of each purchase line delivered through the as-of date.
-- Latest = greatest (business_date, load_id, source_row) per (hospital_code, purchase_line_id).
with latest as (

    {{ latest_version(source('raw', 'purchase'), 'purchase_line_id') }}

),

renamed as (

    select
        -- ids
        hospital_code,
        purchase_line_id,
        invoice_no,
        -- codes
        consumable_code,
        udi_di,
        supplier_uscc,
        -- descriptions
        product_name,
        spec,
        manufacturer,
        -- quantities and amounts
        quantity::numeric(18, 4) as quantity,
        unit_price::numeric(18, 4) as unit_price,
        amount::numeric(18, 2) as amount,
        paid_amount::numeric(18, 2) as paid_amount,
        -- flags
        via_platform as is_via_platform,
        -- dates
        order_date,
        delivery_date,
        paid_date,
        -- lineage
        business_date,
        load_id,
        source_row,
        source_file,
        loaded_at,
        extra as extra_columns

    from latest

)

select * from renamed
