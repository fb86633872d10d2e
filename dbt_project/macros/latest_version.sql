{#
    The latest version of each natural key of a raw extract, through the as-of date: the row with the
    greatest (business_date, load_id, source_row) per (hospital_code, key). Written as "no newer version
    exists" rather than a window so that a filter on load_id from an incremental model reaches the scan.
    The natural-key index of infra/sql/035_raw_indexes.sql on (hospital_code, key, business_date,
    load_id, source_row) turns the "no newer version" test into one index-only probe per candidate
    row (Index Cond on the key and the row comparison): a night's incremental build checks its own
    rows, never every version ever loaded (without the index, PostgreSQL hashed all of raw).
#}
{% macro latest_version(relation, key) %}
    select source.*
    from {{ relation }} as source
    where source.business_date <= {{ as_of_date() }}
      and source.hospital_code is not null
      and source.{{ key }} is not null
      and not exists (
          select 1
          from {{ relation }} as newer
          where newer.hospital_code = source.hospital_code
            and newer.{{ key }} = source.{{ key }}
            and newer.business_date <= {{ as_of_date() }}
            and (newer.business_date, newer.load_id, newer.source_row)
                > (source.business_date, source.load_id, source.source_row)
      )
{% endmacro %}

{#- The latest versions among the rows that satisfy `since` (a condition on `source`, e.g. the rows
    loaded since a watermark), with _has_other_versions: whether the key has any other version
    through the as-of date. A lateral count over the key's versions reads both facts in the one
    descent of the natural-key index that latest_version's "no newer version" probe costs (every
    version of a key sits in the same index range). For the night's rows only: on a full build it
    would be one probe per raw row where latest_version hashes. -#}
{% macro latest_version_since(relation, key, since) %}
    select source.*, versions.n > 1 as _has_other_versions
    from {{ relation }} as source
    cross join lateral (
        select
            count(*) as n,
            count(*) filter (
                where (other.business_date, other.load_id, other.source_row)
                    > (source.business_date, source.load_id, source.source_row)
            ) as newer
        from {{ relation }} as other
        where other.hospital_code = source.hospital_code
          and other.{{ key }} = source.{{ key }}
          and other.business_date <= {{ as_of_date() }}
    ) as versions
    where source.business_date <= {{ as_of_date() }}
      and source.hospital_code is not null
      and source.{{ key }} is not null
      and {{ since }}
      and versions.newer = 0
{% endmacro %}
