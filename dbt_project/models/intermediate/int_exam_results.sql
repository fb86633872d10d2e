-- Smart audit R21 检查阳性率 (positive_rate, local rules): per hospital of level >= 二级, month of the
-- charge date and exam_class: examined = the matching lines with quantity > 0 and exam_result P or
-- N, positive = those with P; positive_rate = positive / examined (4 decimals, null when none was
-- examined); alert when positive_rate <= threshold (004: 彩超、DR、CT 阳性率应高于 70%).
-- A line matching several rules of one exam_class counts once; the class's threshold is the
-- greatest among the rules its lines matched.

with

matches as (

    select *
    from {{ ref('int_audit_rule_matches') }}
    where rule_type = 'positive_rate'
      and exam_class is not null

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
    ) as is_alert
from counted
