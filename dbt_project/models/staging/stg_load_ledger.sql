-- 加载台账: one row per landing file the loader has seen (loaded or rejected).
-- Not limited to the as-of date: the incremental models read the greatest load_id from it.
with source as (

    select *
    from {{ source('raw', 'load_ledger') }}

),

renamed as (

    select
        -- ids
        load_id,
        hospital_code,
        -- codes
        file_kind,
        status as load_status,
        reject_reason as reject_reason_code,
        -- descriptions
        source_file,
        sha256,
        reject_detail,
        -- counts
        rows_read,
        rows_loaded,
        rows_quarantined,
        rows_held,
        seconds as load_seconds,
        -- dates and timestamps
        business_date,
        loaded_at

    from source

)

select * from renamed
