-- R21 检查阳性率: hospital (level >= 二级) x month of charge date x exam_class, with the examined and
-- positive counts, the positive rate (null when none was examined) and the alert (rate <= threshold).

select
    -- ids
    hospital_code,
    -- dates
    month_start,
    -- codes
    exam_class,
    -- counts and rates
    examined_count,
    positive_count,
    positive_rate,
    threshold_rate,
    -- flags
    is_alert
from {{ ref('int_exam_results') }}
