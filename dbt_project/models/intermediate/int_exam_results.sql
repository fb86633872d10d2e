{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    indexes=[
        {'columns': ['hospital_code', 'month_start']},
        {'columns': ['_batch_at']},
    ],
    pre_hook="{{ audit_exam_results_delete_touched() }}"
) }}

-- Smart audit R21 检查阳性率 (positive_rate, local rules): per hospital of level >= 二级, month of the
-- charge date and exam_class: examined = the matching lines with quantity > 0 and exam_result P or
-- N, positive = those with P; positive_rate = positive / examined (4 decimals, null when none was
-- examined); alert when positive_rate <= threshold (004: 彩超、DR、CT 阳性率应高于 70%).
-- A line matching several rules of one exam_class counts once; the class's threshold is the
-- greatest among the rules its lines matched.
--
-- Incremental: re-counts the (hospital, month) pairs that a positive_rate match written since this
-- table was touches (its charge date, or the charge date its line had before: _prior_keys),
-- reading only those months' exam matches through the (hospital_code, charge_date) index of
-- int_audit_rule_matches (partial to positive_rate matches, with the columns read here included:
-- an index-only scan); a pre-hook writes the pairs
-- to a temporary table and deletes their stored rows. Every pair when the rule library or the
-- hospital registry changed.

-- depends_on: {{ ref('stg_audit_rules') }}
{%- set wm = incremental_watermark(ref('stg_load_ledger')) %}
{%- set everything = audit_everything_since(wm) %}

with

{% if not everything %}
-- written and analysed by the pre-hook
touched_months as (

    select hospital_code, month_start from pg_temp.{{ this.identifier }}__months

),
{% endif %}

matches as (

    select matches.*
    from {{ ref('int_audit_rule_matches') }} as matches
    {% if not everything %}
    inner join touched_months
        on matches.hospital_code = touched_months.hospital_code
       and matches.charge_date >= touched_months.month_start
       and matches.charge_date < (touched_months.month_start + interval '1 month')::date
    {% endif %}
    where matches.rule_type = 'positive_rate'
      and matches.exam_class is not null

),

hospitals as (

    select hospital_code, hospital_level
    from {{ ref('stg_hospitals') }}
    where {{ hospital_level_rank('hospital_level') }} >= 3

),

lines as (

    select
        matches.hospital_code,
        date_trunc('month', matches.charge_date)::date as month_start,
        matches.exam_class,
        matches.fee_line_id,
        bool_or(matches.quantity > 0 and matches.exam_result in ('P', 'N')) as is_examined,
        bool_or(matches.quantity > 0 and matches.exam_result = 'P') as is_positive,
        max(matches.threshold) as threshold
    from matches
    inner join hospitals
        on matches.hospital_code = hospitals.hospital_code
    group by 1, 2, 3, 4

),

counted as (

    select
        hospital_code,
        month_start,
        exam_class,
        count(*) filter (where is_examined) as examined_count,
        count(*) filter (where is_positive) as positive_count,
        max(threshold) as threshold_rate
    from lines
    group by 1, 2, 3

)

select
    hospital_code,
    month_start,
    exam_class,
    examined_count,
    positive_count,
    case
        when examined_count > 0 then round(positive_count::numeric / examined_count, 4)
    end::numeric(9, 4) as positive_rate,
    threshold_rate::numeric(9, 4) as threshold_rate,
    coalesce(
        examined_count > 0 and round(positive_count::numeric / examined_count, 4) <= threshold_rate,
        false
    ) as is_alert,
    {{ incremental_lineage_columns(ref('stg_load_ledger')) }}
from counted
