{#- The purchase models built by touched groups (int_purchase_reference_prices,
    fct_platform_purchasing_monthly). A year of a city's purchase lines is small against its
    settlements (61k lines against 29 M), but rebuilt whole every night they were the largest reads
    of the history dbt still made, and they grow with every year kept (docs/scale-out.md §6). -#}

{#- Every version, through the as-of date, of the purchase lines with a version the model has not
    seen (loaded since its watermark, macro loaded_since): the night's rows through raw.purchase's
    BRIN index on load_id, then each line's versions through its natural-key index. A group
    (hospital, code, date or month) one of these versions is in may have changed tonight: it gained
    the line, lost it (the line was re-sent with another code or date, or as a return), or the line
    changed in it. Every other group holds the same latest versions as when it was written. -#}
{% macro purchase_versions_touched(wm) -%}
    select distinct
        versions.hospital_code,
        versions.purchase_line_id,
        versions.consumable_code,
        versions.delivery_date
    from {{ source('raw', 'purchase') }} as night
    inner join {{ source('raw', 'purchase') }} as versions
        on versions.hospital_code = night.hospital_code
       and versions.purchase_line_id = night.purchase_line_id
       and versions.business_date <= {{ as_of_date() }}
    where {{ loaded_since(wm, 'night') }}
      and night.business_date <= {{ as_of_date() }}
      and night.hospital_code is not null
      and night.purchase_line_id is not null
{%- endmacro %}

{#- Post-hook of a model built by touched groups: a touched group left without a purchase line is
    written as a row marked by `empty` (so that the delete of the strategy removes its stored row),
    then removed here, in the build's transaction, through the _batch_at index (rows of this build
    only: a full build writes no such row). -#}
{% macro delete_emptied_groups(empty) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where _batch_at = now() and ({{ empty }})
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
