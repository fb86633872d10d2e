-- R5 direct settlement to suppliers: one row per VBP purchase line (quantity > 0, selected code,
-- delivered within the batch cycle) with its due date (30th working day after delivery) and
-- payment status at the as-of date.
select
    -- ids
    hospital_code,
    purchase_line_id,
    batch_id,
    product_group,
    -- codes
    consumable_code,
    supplier_uscc,
    -- dates
    delivery_date,
    due_date,
    paid_date,
    {{ as_of_date() }} as as_of_date,
    -- status
    payment_status,
    overdue_workdays,
    -- quantities and amounts
    quantity,
    unit_price,
    amount::numeric(18, 2) as amount,
    paid_amount::numeric(18, 2) as paid_amount
from {{ ref('int_vbp_purchase_lines_due') }}
