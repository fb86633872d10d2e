-- 工作日调整 (法定节假日与调休): the rows of the latest load of reference/workday_overrides.csv (reference files are whole snapshots).
with source as (

    select *
    from {{ source('raw', 'ref_workday_overrides') }}

),

latest_load as (

    select max(load_id) as load_id
    from source

),

renamed as (

    select
        -- dates
        date as calendar_date,
        -- flags
        is_workday,
        -- lineage
        source.load_id,
        source.source_row,
        source.loaded_at

    from source
    inner join latest_load
        on source.load_id = latest_load.load_id

)

select * from renamed
