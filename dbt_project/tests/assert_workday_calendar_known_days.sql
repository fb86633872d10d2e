-- R5: the working-day calendar the build uses still knows docs/worked-example.md's National Day example:
-- 2025-09-28 (Sunday) and 2025-10-11 (Saturday) are adjusted working days, 2025-10-01..08 are
-- holidays, and the 30th working day after 2025-09-28 is 2025-11-14.
with calendar as (

    select * from {{ ref('int_workday_calendar') }}

),

checks as (

    select 'adjusted working days' as check_name,
           bool_and(is_workday) filter (where calendar_date in ('2025-09-28', '2025-10-11')) as ok
    from calendar
    union all
    select 'national day holiday',
           bool_and(not is_workday) filter (where calendar_date between '2025-10-01' and '2025-10-08')
    from calendar
    union all
    select '30th working day after 2025-09-28',
           (select due.calendar_date = date '2025-11-14'
            from calendar as delivery
            inner join calendar as due
                on due.workday_seq = delivery.workday_seq + 30 and due.is_workday
            where delivery.calendar_date = date '2025-09-28')

)

select check_name
from checks
where not coalesce(ok, false)
  and exists (select 1 from calendar where calendar_year = 2025)
