-- 集采中选产品: the rows of the latest load of reference/vbp_products.csv (reference files are whole snapshots).
with source as (

    select *
    from {{ source('raw', 'ref_vbp_products') }}

),

latest_load as (

    select max(load_id) as load_id
    from source

),

renamed as (

    select
        -- ids
        batch_id,
        product_group,
        -- codes
        consumable_code,
        -- descriptions
        manufacturer,
        -- prices
        selected_price::numeric(18, 4) as selected_price,
        pre_vbp_price::numeric(18, 4) as pre_vbp_price,
        -- lineage
        source.load_id,
        source.source_row,
        source.loaded_at

    from source
    inner join latest_load
        on source.load_id = latest_load.load_id

)

select * from renamed
