-- 定点医疗机构: the rows of the latest load of reference/hospitals.csv (reference files are whole snapshots).
with source as (

    select *
    from {{ source('raw', 'ref_hospitals') }}

),

latest_load as (

    select max(load_id) as load_id
    from source

),

renamed as (

    select
        -- ids
        hospital_code,
        -- descriptions
        hospital_name,
        level as hospital_level,
        county_code,
        ownership,
        -- lineage
        source.load_id,
        source.source_row,
        source.loaded_at

    from source
    inner join latest_load
        on source.load_id = latest_load.load_id

)

select * from renamed
