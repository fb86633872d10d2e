{{ config(
    materialized='incremental',
    incremental_strategy='delete_insert_probed',
    unique_key='business_date',
    on_schema_change='fail',
    indexes=[
        {'columns': ['business_date', 'hospital_code', 'file_kind'], 'unique': true},
        {'columns': ['_batch_at']},
    ],
    post_hook="{{ last_batch_statistics() }}"
) }}

-- 加载汇总 for operators and BI: per business date, hospital and extract, the files seen, rows
-- read, loaded, quarantined and held back (the data rows of rejected files), and the quarantine
-- and file-rejection reasons with counts. rows_read = rows_loaded + rows_quarantined +
-- rows_held_back.
-- Reference files (no business date) are not included.
--
-- Incremental by business date: a night re-aggregates whole the business dates of the ledger
-- rows written since this table was (a file and its quarantined rows are written in one
-- transaction, and neither is changed afterwards), not the whole ledger (110k files a year).

{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}

with files as (

    select *
    from {{ ref('stg_load_ledger') }}
    where business_date is not null
      and business_date <= {{ as_of_date() }}
      {%- if is_incremental() %}
      -- the night's dates as an array: the ledger is read through its business_date index (as a
      -- semi-join the planner hashed the dates against a scan of the whole ledger, and found
      -- them by a scan as well: 97 ms against 11 ms on a year's 110k files; docs/scale-out.md §6)
      and business_date = any (array(
          select distinct business_date
          from {{ ref('stg_load_ledger') }}
          where {{ loaded_since(wm) }}
      ))
      {%- endif %}

),

file_totals as (

    select
        business_date,
        hospital_code,
        file_kind,
        count(*) as file_count,
        count(*) filter (where load_status = 'loaded') as loaded_file_count,
        count(*) filter (where load_status = 'rejected') as rejected_file_count,
        sum(rows_read) as rows_read,
        sum(rows_loaded) as rows_loaded,
        sum(rows_quarantined) as rows_quarantined,
        coalesce(sum(rows_held), 0) as rows_held_back,
        sum(load_seconds) as load_seconds,
        max(loaded_at) as last_loaded_at
    from files
    group by 1, 2, 3

),

rejections as (

    select
        business_date,
        hospital_code,
        file_kind,
        jsonb_object_agg(reason, file_count) as rejected_files_by_reason
    from (
        select business_date, hospital_code, file_kind,
               coalesce(reject_reason_code, 'unknown') as reason, count(*) as file_count
        from files
        where load_status = 'rejected'
        group by 1, 2, 3, 4
    ) as reasons
    group by 1, 2, 3

),

quarantine as (

    select
        business_date,
        hospital_code,
        file_kind,
        jsonb_object_agg(reason_code, row_count) as quarantined_rows_by_reason,
        sum(row_count) as quarantine_row_count
    from (
        select files.business_date, files.hospital_code, files.file_kind,
               quarantine.reason_code, count(*) as row_count
        from {{ ref('stg_quarantine_rows') }} as quarantine
        inner join files
            on quarantine.load_id = files.load_id
        group by 1, 2, 3, 4
    ) as reasons
    group by 1, 2, 3

)

select
    -- ids
    file_totals.business_date,
    file_totals.hospital_code,
    file_totals.file_kind,
    -- counts
    file_totals.file_count::integer as file_count,
    file_totals.loaded_file_count::integer as loaded_file_count,
    file_totals.rejected_file_count::integer as rejected_file_count,
    file_totals.rows_read::bigint as rows_read,
    file_totals.rows_loaded::bigint as rows_loaded,
    file_totals.rows_quarantined::bigint as rows_quarantined,
    file_totals.rows_held_back::bigint as rows_held_back,
    coalesce(quarantine.quarantine_row_count, 0)::bigint as quarantine_row_count,
    -- reasons
    coalesce(quarantine.quarantined_rows_by_reason, '{}'::jsonb) as quarantined_rows_by_reason,
    coalesce(rejections.rejected_files_by_reason, '{}'::jsonb) as rejected_files_by_reason,
    -- timing
    file_totals.load_seconds::numeric(12, 3) as load_seconds,
    file_totals.last_loaded_at,
    -- lineage
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from file_totals
left join rejections
    on file_totals.business_date = rejections.business_date
   and file_totals.hospital_code is not distinct from rejections.hospital_code
   and file_totals.file_kind = rejections.file_kind
left join quarantine
    on file_totals.business_date = quarantine.business_date
   and file_totals.hospital_code is not distinct from quarantine.hospital_code
   and file_totals.file_kind = quarantine.file_kind
