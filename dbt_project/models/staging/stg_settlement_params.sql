-- 年终清算参数: the rows of the latest load of reference/settlement_params.csv (reference files are whole snapshots).
with source as (

    select *
    from {{ source('raw', 'ref_settlement_params') }}

),

latest_load as (

    select max(load_id) as load_id
    from source

),

renamed as (

    select
        -- ids
        year as settlement_year,
        -- rates
        surplus_retention_rate::numeric(12, 8) as surplus_retention_rate,
        overspend_share_rate::numeric(12, 8) as overspend_share_rate,
        -- lineage
        source.load_id,
        source.source_row,
        source.loaded_at

    from source
    inner join latest_load
        on source.load_id = latest_load.load_id

)

select * from renamed
