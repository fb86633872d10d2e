-- 集中带量采购批次: the rows of the latest load of reference/vbp_batches.csv (reference files are whole snapshots).
with source as (

    select *
    from {{ source('raw', 'ref_vbp_batches') }}

),

latest_load as (

    select max(load_id) as load_id
    from source

),

renamed as (

    select
        -- ids
        batch_id,
        -- codes
        category_prefix,
        -- descriptions
        batch_name,
        -- dates
        cycle_start as cycle_start_date,
        cycle_end as cycle_end_date,
        -- lineage
        source.load_id,
        source.source_row,
        source.loaded_at

    from source
    inner join latest_load
        on source.load_id = latest_load.load_id

)

select * from renamed
