-- 日期 dimension: every day of every year the working-day calendar covers, with its working-day
-- flag (statutory holidays and 调休 included) and calendar attributes.
select
    -- ids
    calendar_date,
    -- calendar attributes
    calendar_year,
    extract(quarter from calendar_date)::int as calendar_quarter,
    extract(month from calendar_date)::int as calendar_month,
    date_trunc('month', calendar_date)::date as month_start,
    date_trunc('quarter', calendar_date)::date as quarter_start,
    extract(isodow from calendar_date)::int as iso_day_of_week,
    extract(doy from calendar_date)::int as day_of_year,
    (make_date(calendar_year, 12, 31) - make_date(calendar_year, 1, 1) + 1) as days_in_year,
    -- working days
    is_workday,
    day_kind,
    holiday_name,
    workday_source,
    workday_seq
from {{ ref('int_workday_calendar') }}
