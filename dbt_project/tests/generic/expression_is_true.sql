{#- An arithmetic or logical invariant that must hold on every row: the failing rows are
    returned (a null result counts as a failure). -#}
{% test expression_is_true(model, expression) %}
select *
from {{ model }}
where not coalesce(({{ expression }}), false)
{% endtest %}
