-- 集采约定采购量: the rows of the latest load of reference/vbp_agreed_volumes.csv (reference files are whole snapshots).
with source as (

    select *
    from {{ source('raw', 'ref_vbp_agreed_volumes') }}

),

latest_load as (

    select max(load_id) as load_id
    from source

),

renamed as (

    select
        -- ids
        batch_id,
        hospital_code,
        product_group,
        -- quantities and rates
        base_qty::numeric(18, 4) as base_qty,
        agreed_ratio::numeric(12, 8) as agreed_ratio,
        -- lineage
        source.load_id,
        source.source_row,
        source.loaded_at

    from source
    inner join latest_load
        on source.load_id = latest_load.load_id

)

select * from renamed
