-- 采购入库明细: latest version of each purchase line delivered through the as-of date.
-- Latest = greatest (business_date, load_id, source_row) per (hospital_code, purchase_line_id).
-- Written as "no newer version exists" (not a window) so that a filter on load_id from an
-- incremental model reaches the raw scan.
with source as (

    select *
    from {{ source('raw', 'purchase') }}
    where business_date <= {{ as_of_date() }}
      and hospital_code is not null
      and purchase_line_id is not null

),

latest as (

    select source.*
    from source
    where not exists (
        select 1
        from {{ source('raw', 'purchase') }} as newer
        where newer.hospital_code = source.hospital_code
          and newer.purchase_line_id = source.purchase_line_id
          and newer.business_date <= {{ as_of_date() }}
          and (newer.business_date, newer.load_id, newer.source_row)
              > (source.business_date, source.load_id, source.source_row)
    )

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
