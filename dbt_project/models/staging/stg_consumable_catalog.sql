-- 医保医用耗材目录: the rows of the latest load of reference/consumable_catalog.csv (reference files are whole snapshots).
with source as (

    select *
    from {{ source('raw', 'ref_consumable_catalog') }}

),

latest_load as (

    select max(load_id) as load_id
    from source

),

renamed as (

    select
        -- codes
        consumable_code,
        category_code,
        -- descriptions
        generic_name,
        status as catalog_status,
        -- flags
        is_high_value,
        -- lineage
        source.load_id,
        source.source_row,
        source.loaded_at

    from source
    inner join latest_load
        on source.load_id = latest_load.load_id

)

select * from renamed
