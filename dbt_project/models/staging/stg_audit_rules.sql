{{ config(materialized='table') }}

-- 智能审核规则库 (effective library): the rows of the latest load of the packaged national library
-- (ledger file_kind reference:audit_rules_national) and of the latest load of the bureau's own
-- reference/audit_rules.csv (reference:audit_rules); a bureau row replaces the national row of the
-- same rule_id. Either file may be absent (no rows from it).
--
-- A table, where the rest of staging is views: the incremental audit models ask every night whether
-- the library changed since their watermark (macro reference_changed_since: its max(load_id)),
-- thirteen times in a night; through the view each question recomputed the library (15,113 rows,
-- 40-160 ms; about a second a night on the 30 M-claim year, docs/scale-out.md §6).
with source as (

    select
        rules.*,
        case ledger.file_kind
            when 'reference:audit_rules_national' then 'national'
            when 'reference:audit_rules' then 'bureau'
        end as library
    from {{ source('raw', 'ref_audit_rules') }} as rules
    inner join {{ source('raw', 'load_ledger') }} as ledger
        on rules.load_id = ledger.load_id
    where ledger.file_kind in ('reference:audit_rules_national', 'reference:audit_rules')

),

latest_load as (

    select library, max(load_id) as load_id
    from source
    group by library

),

latest as (

    select source.*
    from source
    inner join latest_load
        on source.library = latest_load.library
       and source.load_id = latest_load.load_id

),

effective as (

    select *
    from latest
    where library = 'bureau'
       or not exists (
           select 1
           from latest as bureau
           where bureau.library = 'bureau'
             and bureau.rule_id = latest.rule_id
       )

),

renamed as (

    select
        -- ids
        rule_id,
        -- codes
        rule_type,
        nullif(trim(item_prefix), '') as item_prefix,
        severity,
        library,
        -- parameters (only those its rule_type uses are filled)
        nullif(trim(allowed_sex), '') as allowed_sex,
        min_age_days,
        max_age_days,
        nullif(trim(min_hospital_level), '') as min_hospital_level,
        max_quantity::numeric(18, 4) as max_quantity,
        days,
        nullif(trim(main_item_prefix), '') as main_item_prefix,
        nullif(trim(diagnosis_prefixes), '') as diagnosis_prefixes,
        nullif(trim(exam_class), '') as exam_class,
        threshold::numeric(9, 4) as threshold,
        -- dates (an empty bound is open)
        coalesce(effective_from, date '0001-01-01') as effective_from,
        coalesce(effective_to, date '9999-12-31') as effective_to,
        -- descriptions
        item_name,
        source as rule_source,
        -- lineage
        load_id,
        source_row,
        loaded_at

    from effective

)

select * from renamed
