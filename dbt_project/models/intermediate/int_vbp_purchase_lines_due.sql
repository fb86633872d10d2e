{{ config(post_hook="{{ assert_workday_calendar_covers() }}") }}

-- R5 direct settlement to suppliers (医保基金与企业直接结算): purchase lines (quantity > 0) of a
-- selected code of a VBP batch whose cycle covers the delivery date. due_date = the 30th working
-- day after delivery (day 1 = the first working day after the delivery date). Status at the
-- as-of date: paid_on_time (paid_date <= due_date), paid_late, open_not_due (unpaid,
-- as-of <= due_date), overdue (unpaid, as-of > due_date); a paid_date after the as-of date is
-- not yet paid. overdue_workdays = working days in (due_date, paid_date] for paid_late,
-- in (due_date, as-of] for overdue, else 0.
-- calendar_missing_year: the first year this line needs that the working-day calendar does not
-- cover; the post-hook fails the build when any line has one.
with calendar as (

    select calendar_date, calendar_year, is_workday, workday_seq
    from {{ ref('int_workday_calendar') }}

),

covered as (

    select array_agg(distinct calendar_year) as years
    from calendar

),

vbp_lines as (

    select distinct on (hospital_code, purchase_line_id) *
    from {{ ref('int_vbp_purchases_in_cycle') }}
    where is_selected_product
      and quantity > 0
    order by hospital_code, purchase_line_id, cycle_start_date desc, batch_id desc

),

due as (

    select
        vbp_lines.*,
        due_day.calendar_date as due_date,
        due_day.workday_seq as due_seq
    from vbp_lines
    left join calendar as delivery_day
        on vbp_lines.delivery_date = delivery_day.calendar_date
    left join calendar as due_day
        on due_day.workday_seq = delivery_day.workday_seq + 30
       and due_day.is_workday

),

status as (

    select
        due.*,
        case
            when paid_date is not null and paid_date <= {{ as_of_date() }}
                then case when paid_date <= due_date then 'paid_on_time' else 'paid_late' end
            when {{ as_of_date() }} <= due_date then 'open_not_due'
            else 'overdue'
        end as payment_status
    from due

),

counted as (

    select
        status.*,
        case status.payment_status
            when 'paid_late' then status.paid_date
            when 'overdue' then {{ as_of_date() }}
        end as overdue_until_date
    from status

),

checked as (

    select
        counted.*,
        until_day.workday_seq as until_seq,
        (
            select min(years.year)
            from generate_series(
                extract(year from counted.delivery_date)::int,
                case
                    when counted.due_date is null then greatest(
                        extract(year from counted.delivery_date)::int,
                        (select max(y) from unnest(covered.years) as y) + 1
                    )
                    else extract(year from greatest(counted.due_date, counted.overdue_until_date))::int
                end
            ) as years (year)
            where not (years.year = any (covered.years))
        ) as calendar_missing_year
    from counted
    cross join covered
    left join calendar as until_day
        on counted.overdue_until_date = until_day.calendar_date

)

select
    -- ids
    hospital_code,
    purchase_line_id,
    batch_id,
    product_group,
    -- codes
    consumable_code,
    supplier_uscc,
    -- quantities, prices and amounts
    quantity,
    unit_price,
    amount,
    paid_amount,
    -- dates
    delivery_date,
    due_date,
    paid_date,
    -- status
    payment_status,
    case
        when payment_status in ('paid_late', 'overdue') then until_seq - due_seq
        else 0
    end::integer as overdue_workdays,
    calendar_missing_year
from checked
